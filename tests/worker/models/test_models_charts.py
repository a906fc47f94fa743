"""The equity-and-drawdown chart: a valid PNG and a valid SVG, drawn without matplotlib."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
import zlib

import numpy as np
import pandas as pd

from ktrdr_worker.models.charts import BLUE, RED_FILL, encode_png, render_equity_chart


def _decode_png(data: bytes) -> np.ndarray:
    """Read back an 8-bit RGB PNG with filter 0 (what encode_png writes), checking CRCs."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, colour, *_ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 2)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8)
    rows = raw.reshape(height, 1 + width * 3)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(height, width, 3)


def test_png_encoder_round_trips_pixels():
    pixels = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(_decode_png(encode_png(pixels)), pixels)


def test_chart_draws_equity_and_drawdown_in_both_formats():
    index = pd.date_range("2023-01-02", periods=2000, freq="h", tz="UTC")
    values = 10_000 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 2000)))
    equity = pd.Series(values, index=index)
    hold = pd.Series(np.linspace(10_000, 12_000, 2000), index=index)
    images = render_equity_chart(equity, buy_and_hold=hold, title="demo", width=640, height=400)

    pixels = _decode_png(images.png)
    assert pixels.shape == (400, 640, 3)
    colours = {tuple(p) for p in pixels.reshape(-1, 3)[::7]}
    assert BLUE in colours and RED_FILL in colours  # the equity line and the drawdown area

    svg = ET.fromstring(images.svg)
    assert svg.get("width") == "640"
    tags = [element.tag.split("}")[1] for element in svg.iter()]
    assert tags.count("polyline") >= 3 and "polygon" in tags
    texts = [element.text for element in svg.iter() if element.tag.endswith("text")]
    assert "demo" in texts and "2023-01-02" in texts
