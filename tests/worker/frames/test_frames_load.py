"""load_ohlcv: the canonical frame, from every accepted file variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ktrdr_core.market_data import OHLCVValidationError, validate_ohlcv_csv
from ktrdr_worker.frames import check_ohlcv, frame_from_validation, load_ohlcv
from tests.support.bars import OHLCV

CANONICAL = (
    "timestamp,open,high,low,close,volume\n"
    "2024-01-02T14:00:00Z,100.5,101.25,99.75,101,1200\n"
    "2024-01-02T15:00:00Z,101,102,100.5,101.5,900\n"
)


def test_returns_exactly_the_canonical_frame() -> None:
    frame = load_ohlcv(CANONICAL, "1h")
    assert list(frame.columns) == OHLCV
    assert (frame.dtypes == np.float64).all()
    assert isinstance(frame.index, pd.DatetimeIndex)
    assert str(frame.index.dtype) == "datetime64[us, UTC]"
    assert frame.index.name == "timestamp"
    expected = pd.DataFrame(
        {
            "open": [100.5, 101.0],
            "high": [101.25, 102.0],
            "low": [99.75, 100.5],
            "close": [101.0, 101.5],
            "volume": [1200.0, 900.0],
        },
        index=pd.DatetimeIndex(["2024-01-02 14:00", "2024-01-02 15:00"], name="timestamp")
        .tz_localize("UTC")
        .as_unit("us"),
    )
    pd.testing.assert_frame_equal(frame, expected)
    check_ohlcv(frame, "1h")


def test_variants_load_to_the_same_frame(tmp_path: Path) -> None:
    variant = (
        "Volume,Date,Close,Low,High,Open,Symbol\n"
        "1200,1704204000000,101,99.75,101.25,100.5,X\n"
        "900,1704207600000,101.5,100.5,102,101,X\n"
    )
    path = tmp_path / "variant.csv"
    path.write_text(variant)
    pd.testing.assert_frame_equal(load_ohlcv(path, "1h"), load_ohlcv(CANONICAL, "1h"))
    pd.testing.assert_frame_equal(
        load_ohlcv(variant.encode(), None), load_ohlcv(CANONICAL.encode(), "1h")
    )


def test_real_file_matches_its_numbers(goog: pd.DataFrame, goog_path: Path) -> None:
    raw = pd.read_csv(goog_path, index_col=0, parse_dates=True)
    assert len(goog) == len(raw) == 2148
    np.testing.assert_array_equal(goog["close"].to_numpy(), raw["Close"].to_numpy(float))
    np.testing.assert_array_equal(goog["volume"].to_numpy(), raw["Volume"].to_numpy(float))
    assert (goog.index == raw.index.tz_localize("UTC")).all()


def test_broken_files_raise_with_every_line() -> None:
    broken = CANONICAL + "2024-01-02T15:00:00Z,1,1,1,1,1\n2024-01-02T16:30:00Z,1,1,1,1,1\n"
    with pytest.raises(OHLCVValidationError) as info:
        load_ohlcv(broken, "1h")
    assert [(i.line, i.rule) for i in info.value.issues] == [
        (4, "duplicate_timestamp"),
        (5, "timestamp_alignment"),
    ]
    with pytest.raises(OHLCVValidationError):
        frame_from_validation(validate_ohlcv_csv(broken, "1h"))


def test_check_ohlcv_says_what_is_wrong() -> None:
    frame = load_ohlcv(CANONICAL, "1h")
    with pytest.raises(ValueError, match="columns must be exactly"):
        check_ohlcv(frame[["close", "open", "high", "low", "volume"]])
    with pytest.raises(ValueError, match="tz-aware UTC"):
        check_ohlcv(frame.tz_convert("Europe/Paris"))
    with pytest.raises(ValueError, match="strictly increase"):
        check_ohlcv(frame.iloc[::-1])
    with pytest.raises(ValueError, match="not a 4h bar open"):
        check_ohlcv(frame, "4h")
    with pytest.raises(ValueError, match="float64"):
        check_ohlcv(frame.astype({"volume": "int64"}))
    with_nan = frame.copy()
    with_nan.iloc[0, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN values in \['high'\]"):
        check_ohlcv(with_nan)
