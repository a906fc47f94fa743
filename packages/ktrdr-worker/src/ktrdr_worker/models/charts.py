"""Equity-and-drawdown charts as SVG and PNG, drawn without a plotting library.

The worker image carries no matplotlib, so the chart is laid out once as a few primitives
(lines, filled areas, text) and rendered twice: as SVG text, and as a PNG through a small
numpy rasteriser (a 5×7 bitmap font for the labels) and a zlib PNG encoder.

Layout: the top panel shows the strategy's equity and, in grey, buy-and-hold over the same
bars; the bottom panel shows the drawdown below the running equity peak as a red area. The
horizontal axis counts bars (no gaps for weekends or nights), labelled with dates.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["ChartImages", "encode_png", "render_equity_chart", "write_equity_chart"]

Colour = tuple[int, int, int]
BLUE: Colour = (31, 95, 170)
GREY: Colour = (150, 150, 150)
RED: Colour = (200, 50, 50)
RED_FILL: Colour = (240, 190, 190)
INK: Colour = (40, 40, 40)
GRID: Colour = (225, 225, 225)
WHITE: Colour = (255, 255, 255)


@dataclass(frozen=True)
class _Line:
    xs: np.ndarray
    ys: np.ndarray
    colour: Colour
    width: float


@dataclass(frozen=True)
class _Area:
    xs: np.ndarray  # pixel columns
    top: np.ndarray
    bottom: np.ndarray
    colour: Colour


@dataclass(frozen=True)
class _Text:
    x: float
    y: float  # baseline-ish: the glyphs' bottom edge
    text: str
    anchor: str  # start | middle | end
    scale: int
    colour: Colour


@dataclass(frozen=True)
class ChartImages:
    """A chart in both formats: PNG bytes and SVG text."""

    png: bytes
    svg: str


# ---------------------------------------------------------------------------- 5×7 bitmap font
# Each glyph: 7 rows of 5 pixels, "#" = ink. Lower-case letters are drawn as capitals.
_GLYPHS_TEXT = {
    "0": ".###.|#...#|#..##|#.#.#|##..#|#...#|.###.",
    "1": "..#..|.##..|..#..|..#..|..#..|..#..|.###.",
    "2": ".###.|#...#|....#|...#.|..#..|.#...|#####",
    "3": "#####|...#.|..#..|...#.|....#|#...#|.###.",
    "4": "...#.|..##.|.#.#.|#..#.|#####|...#.|...#.",
    "5": "#####|#....|####.|....#|....#|#...#|.###.",
    "6": "..##.|.#...|#....|####.|#...#|#...#|.###.",
    "7": "#####|....#|...#.|..#..|.#...|.#...|.#...",
    "8": ".###.|#...#|#...#|.###.|#...#|#...#|.###.",
    "9": ".###.|#...#|#...#|.####|....#|...#.|.##..",
    "A": ".###.|#...#|#...#|#####|#...#|#...#|#...#",
    "B": "####.|#...#|#...#|####.|#...#|#...#|####.",
    "C": ".###.|#...#|#....|#....|#....|#...#|.###.",
    "D": "###..|#..#.|#...#|#...#|#...#|#..#.|###..",
    "E": "#####|#....|#....|####.|#....|#....|#####",
    "F": "#####|#....|#....|####.|#....|#....|#....",
    "G": ".###.|#...#|#....|#.###|#...#|#...#|.####",
    "H": "#...#|#...#|#...#|#####|#...#|#...#|#...#",
    "I": ".###.|..#..|..#..|..#..|..#..|..#..|.###.",
    "J": "..###|...#.|...#.|...#.|...#.|#..#.|.##..",
    "K": "#...#|#..#.|#.#..|##...|#.#..|#..#.|#...#",
    "L": "#....|#....|#....|#....|#....|#....|#####",
    "M": "#...#|##.##|#.#.#|#.#.#|#...#|#...#|#...#",
    "N": "#...#|#...#|##..#|#.#.#|#..##|#...#|#...#",
    "O": ".###.|#...#|#...#|#...#|#...#|#...#|.###.",
    "P": "####.|#...#|#...#|####.|#....|#....|#....",
    "Q": ".###.|#...#|#...#|#...#|#.#.#|#..#.|.##.#",
    "R": "####.|#...#|#...#|####.|#.#..|#..#.|#...#",
    "S": ".####|#....|#....|.###.|....#|....#|####.",
    "T": "#####|..#..|..#..|..#..|..#..|..#..|..#..",
    "U": "#...#|#...#|#...#|#...#|#...#|#...#|.###.",
    "V": "#...#|#...#|#...#|#...#|#...#|.#.#.|..#..",
    "W": "#...#|#...#|#...#|#.#.#|#.#.#|#.#.#|.#.#.",
    "X": "#...#|#...#|.#.#.|..#..|.#.#.|#...#|#...#",
    "Y": "#...#|#...#|.#.#.|..#..|..#..|..#..|..#..",
    "Z": "#####|....#|...#.|..#..|.#...|#....|#####",
    " ": ".....|.....|.....|.....|.....|.....|.....",
    "-": ".....|.....|.....|#####|.....|.....|.....",
    "+": ".....|..#..|..#..|#####|..#..|..#..|.....",
    ".": ".....|.....|.....|.....|.....|.##..|.##..",
    ",": ".....|.....|.....|.....|.##..|..#..|.#...",
    ":": ".....|.##..|.##..|.....|.##..|.##..|.....",
    "%": "##...|##..#|...#.|..#..|.#...|#..##|...##",
    "/": ".....|....#|...#.|..#..|.#...|#....|.....",
    "(": "...#.|..#..|.#...|.#...|.#...|..#..|...#.",
    ")": ".#...|..#..|...#.|...#.|...#.|..#..|.#...",
    "_": ".....|.....|.....|.....|.....|.....|#####",
    "=": ".....|.....|#####|.....|#####|.....|.....",
    "&": ".##..|#..#.|#.#..|.#...|#.#.#|#..#.|.##.#",
    "?": ".###.|#...#|....#|...#.|..#..|.....|..#..",
    "*": ".....|..#..|#.#.#|.###.|#.#.#|..#..|.....",
}
_GLYPHS = {
    char: np.array([[c == "#" for c in row] for row in rows.split("|")], dtype=bool)
    for char, rows in _GLYPHS_TEXT.items()
}
_GLYPH_W, _GLYPH_H, _ADVANCE = 5, 7, 6


def _text_width(text: str, scale: int) -> int:
    return len(text) * _ADVANCE * scale


# ---------------------------------------------------------------------------- layout


def _nice_step(span: float, target_ticks: int) -> float:
    raw = span / max(target_ticks, 1)
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    return 10 * magnitude


def _ticks(low: float, high: float, target: int = 5) -> tuple[float, float, list[float]]:
    if not (math.isfinite(low) and math.isfinite(high)):
        low, high = 0.0, 1.0
    if high - low < 1e-12 * max(1.0, abs(high)):
        pad = abs(high) * 0.01 or 1.0
        low, high = low - pad, high + pad
    step = _nice_step(high - low, target)
    start = math.floor(low / step) * step
    stop = math.ceil(high / step) * step
    count = round((stop - start) / step)
    return start, stop, [start + i * step for i in range(count + 1)]


def _money(value: float) -> str:
    size = abs(value)
    if size >= 1e9:
        return f"{value / 1e9:.4g}B"
    if size >= 1e6:
        return f"{value / 1e6:.4g}M"
    if size >= 1e4:
        return f"{value / 1e3:.4g}K"
    return f"{value:.6g}"


def _reduce(values: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~4 points per pixel column (first, min, max, last in time order), so a long
    series draws fast and keeps its extremes. Returns (positions in bars, values)."""
    n = values.size
    if n <= 4 * columns:
        return np.arange(n, dtype=np.float64), values
    edges = np.linspace(0, n, columns + 1).astype(np.int64)
    xs: list[float] = []
    ys: list[float] = []
    for left, right in itertools.pairwise(edges):
        if right <= left:
            continue
        chunk = values[left:right]
        lo, hi = int(np.argmin(chunk)), int(np.argmax(chunk))
        for k in sorted({0, lo, hi, len(chunk) - 1}):
            xs.append(float(left + k))
            ys.append(float(chunk[k]))
    return np.asarray(xs), np.asarray(ys)


def _date_label(stamp: pd.Timestamp, span: pd.Timedelta) -> str:
    if span <= pd.Timedelta(days=3):
        return stamp.strftime("%m-%d %H:%M")
    return stamp.strftime("%Y-%m-%d")


def _layout(
    times: pd.DatetimeIndex,
    equity: np.ndarray,
    buy_and_hold: np.ndarray | None,
    drawdown: np.ndarray,
    title: str,
    width: int,
    height: int,
) -> list[_Line | _Area | _Text]:
    left, right, top, bottom = 78, 16, 34, 44
    gap = 26
    plot_w = width - left - right
    plot_h = height - top - bottom - gap
    eq_h = int(plot_h * 0.68)
    dd_h = plot_h - eq_h
    eq_top, dd_top = top, top + eq_h + gap
    n = equity.size
    items: list[_Line | _Area | _Text] = []

    def x_of(bars: np.ndarray) -> np.ndarray:
        return left + bars / max(n - 1, 1) * plot_w

    # Equity panel.
    series = [equity] + ([buy_and_hold] if buy_and_hold is not None else [])
    finite = np.concatenate([s[np.isfinite(s)] for s in series]) if n else np.array([0.0])
    low, high, ticks = _ticks(float(finite.min()), float(finite.max()))

    def y_eq(values: np.ndarray) -> np.ndarray:
        return eq_top + (high - values) / (high - low) * eq_h

    for tick in ticks:
        y = float(y_eq(np.array([tick]))[0])
        items.append(_Line(np.array([left, left + plot_w]), np.array([y, y]), GRID, 1))
        items.append(_Text(left - 6, y + 4, _money(tick), "end", 1, INK))
    if buy_and_hold is not None:
        bx, by = _reduce(buy_and_hold, plot_w)
        items.append(_Line(x_of(bx), y_eq(by), GREY, 1.5))
    ex, ey = _reduce(equity, plot_w)
    items.append(_Line(x_of(ex), y_eq(ey), BLUE, 2))

    # Drawdown panel (drawn downwards from 0).
    worst = float(np.nanmax(drawdown)) if n and np.isfinite(drawdown).any() else 0.0
    _, dd_high, dd_ticks = _ticks(0.0, max(worst, 1e-4), 3)

    def y_dd(values: np.ndarray) -> np.ndarray:
        return dd_top + values / dd_high * dd_h

    for tick in dd_ticks:
        y = float(y_dd(np.array([tick]))[0])
        items.append(_Line(np.array([left, left + plot_w]), np.array([y, y]), GRID, 1))
        label = f"-{tick * 100:.3g}%" if tick > 0 else "0%"
        items.append(_Text(left - 6, y + 4, label, "end", 1, INK))
    dx, dy = _reduce(np.nan_to_num(drawdown), plot_w)
    columns = np.arange(left, left + plot_w + 1, dtype=np.float64)
    fill = np.interp(columns, x_of(dx), dy) if n else np.zeros_like(columns)
    items.append(_Area(columns, np.full_like(columns, dd_top), y_dd(fill), RED_FILL))
    items.append(_Line(x_of(dx), y_dd(dy), RED, 1))

    # Frames, date ticks, titles, legend.
    for panel_top, panel_h in ((eq_top, eq_h), (dd_top, dd_h)):
        xs = np.array([left, left + plot_w, left + plot_w, left, left], dtype=np.float64)
        ys = np.array([panel_top, panel_top, panel_top + panel_h, panel_top + panel_h, panel_top])
        items.append(_Line(xs, ys.astype(np.float64), INK, 1))
    if n:
        span = times[-1] - times[0]
        positions = np.unique(np.linspace(0, n - 1, 6).round().astype(int))
        for k, position in enumerate(positions):
            x = float(x_of(np.array([float(position)]))[0])
            # The outer labels align with the frame so they are never cut off.
            anchor = "start" if k == 0 else "end" if k == len(positions) - 1 else "middle"
            label = _date_label(times[position], span)
            items.append(_Text(x, dd_top + dd_h + 16, label, anchor, 1, INK))
    items.append(_Text(left, 22, title, "start", 2, INK))
    legend_x = left + plot_w - 6
    labels = [("EQUITY", BLUE)] + ([("BUY & HOLD", GREY)] if buy_and_hold is not None else [])
    for label, colour in reversed(labels):
        items.append(_Text(legend_x, eq_top + 16, label, "end", 1, colour))
        legend_x -= _text_width(label, 1) + 14
    items.append(_Text(left, dd_top - 6, "DRAWDOWN", "start", 1, RED))
    return items


# ---------------------------------------------------------------------------- SVG


def _hex(colour: Colour) -> str:
    return "#{:02x}{:02x}{:02x}".format(*colour)


def _svg(items: Sequence[_Line | _Area | _Text], width: int, height: int) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for item in items:
        if isinstance(item, _Line):
            points = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(item.xs, item.ys, strict=True))
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{_hex(item.colour)}" '
                f'stroke-width="{item.width:g}" stroke-linejoin="round"/>'
            )
        elif isinstance(item, _Area):
            upper = [f"{x:.1f},{y:.1f}" for x, y in zip(item.xs, item.top, strict=True)]
            lower = [
                f"{x:.1f},{y:.1f}" for x, y in zip(item.xs[::-1], item.bottom[::-1], strict=True)
            ]
            out.append(
                f'<polygon points="{" ".join(upper + lower)}" fill="{_hex(item.colour)}" '
                'stroke="none"/>'
            )
        else:
            size = 11 if item.scale == 1 else 16
            out.append(
                f'<text x="{item.x:.1f}" y="{item.y:.1f}" font-size="{size}" '
                f'text-anchor="{item.anchor}" fill="{_hex(item.colour)}">{escape(item.text)}</text>'
            )
    out.append("</svg>")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------- raster


def _stroke(
    canvas: np.ndarray, xs: np.ndarray, ys: np.ndarray, colour: Colour, width: float
) -> None:
    """Draw a polyline by stamping square dots every half pixel along each segment."""
    if xs.size == 0:
        return
    if xs.size == 1:
        xs, ys = np.repeat(xs, 2), np.repeat(ys, 2)
    dx, dy = np.diff(xs), np.diff(ys)
    steps = np.maximum(1, np.ceil(np.hypot(dx, dy) * 2)).astype(np.int64)
    seg = np.repeat(np.arange(dx.size), steps)
    offsets = np.arange(seg.size) - np.repeat(np.cumsum(steps) - steps, steps)
    t = offsets / steps[seg]
    px = xs[:-1][seg] + dx[seg] * t
    py = ys[:-1][seg] + dy[seg] * t
    px = np.append(px, xs[-1])
    py = np.append(py, ys[-1])
    half = max(0.0, (width - 1) / 2)
    radius = math.ceil(half)
    h, w, _ = canvas.shape
    for ox in range(-radius, radius + 1):
        for oy in range(-radius, radius + 1):
            if abs(ox) > half + 0.5 or abs(oy) > half + 0.5:
                continue
            cx = np.rint(px + ox).astype(np.int64)
            cy = np.rint(py + oy).astype(np.int64)
            ok = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
            canvas[cy[ok], cx[ok]] = colour


def _fill(canvas: np.ndarray, area: _Area) -> None:
    h, w, _ = canvas.shape
    for x, top, bottom in zip(area.xs, area.top, area.bottom, strict=True):
        col = round(x)
        if 0 <= col < w:
            lo, hi = sorted((round(top), round(bottom)))
            canvas[max(lo, 0) : min(hi + 1, h), col] = area.colour


def _draw_text(canvas: np.ndarray, item: _Text) -> None:
    scale = item.scale
    text = item.text.upper()
    width = _text_width(text, scale)
    x0 = item.x - (width / 2 if item.anchor == "middle" else width if item.anchor == "end" else 0)
    x0 = round(x0)
    y0 = round(item.y) - _GLYPH_H * scale
    h, w, _ = canvas.shape
    for i, char in enumerate(text):
        glyph = _GLYPHS.get(char, _GLYPHS["?"])
        big = np.kron(glyph, np.ones((scale, scale), dtype=bool))
        gx = x0 + i * _ADVANCE * scale
        rows, cols = np.nonzero(big)
        rows, cols = rows + y0, cols + gx
        ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
        canvas[rows[ok], cols[ok]] = item.colour


def _raster(items: Sequence[_Line | _Area | _Text], width: int, height: int) -> np.ndarray:
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    for item in items:
        if isinstance(item, _Area):
            _fill(canvas, item)
    for item in items:
        if isinstance(item, _Line):
            _stroke(canvas, item.xs, item.ys, item.colour, item.width)
        elif isinstance(item, _Text):
            _draw_text(canvas, item)
    return canvas


def encode_png(pixels: np.ndarray) -> bytes:
    """PNG bytes of an RGB image (uint8 array ``(height, width, 3)``): 8-bit truecolour,
    no interlace, every row with filter type 0, deflated with zlib."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(
            f"expected a uint8 (height, width, 3) array, got {pixels.dtype} {pixels.shape}"
        )
    height, width, _ = pixels.shape
    raw = np.concatenate(
        [np.zeros((height, 1), dtype=np.uint8), pixels.reshape(height, width * 3)], axis=1
    ).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# ---------------------------------------------------------------------------- public


def render_equity_chart(
    equity: pd.Series,
    *,
    buy_and_hold: pd.Series | None = None,
    title: str = "",
    width: int = 1000,
    height: int = 560,
) -> ChartImages:
    """Draw equity (top) and drawdown (bottom) as PNG and SVG.

    ``equity``: equity at each bar's close (quote currency) on a DatetimeIndex;
    ``buy_and_hold``: the value of holding the asset with the same capital, same index;
    ``title``: one line above the chart. Sizes in pixels.
    """
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise TypeError("equity must be indexed by a DatetimeIndex")
    values = equity.to_numpy(dtype=np.float64)
    peak = np.fmax.accumulate(values) if values.size else values
    with np.errstate(divide="ignore", invalid="ignore"):
        drawdown = np.where(peak > 0, 1.0 - values / peak, 0.0)
    hold = None if buy_and_hold is None else buy_and_hold.to_numpy(dtype=np.float64)
    items = _layout(equity.index, values, hold, drawdown, title, width, height)
    return ChartImages(
        png=encode_png(_raster(items, width, height)), svg=_svg(items, width, height)
    )


def write_equity_chart(folder: str | Path, stem: str, images: ChartImages) -> dict[str, Path]:
    """Write ``{stem}.png`` and ``{stem}.svg`` into ``folder``; returns format → path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / f"{stem}.png", "svg": out / f"{stem}.svg"}
    paths["png"].write_bytes(images.png)
    paths["svg"].write_text(images.svg, encoding="utf-8")
    return paths
