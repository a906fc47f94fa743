"""Labels: hand-worked series, bar-by-bar reference implementations on real data, the end of
the series left undetermined (and stable when more bars arrive), and degenerate results
rejected with advice that works."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from ktrdr_worker.labels import (
    BUY,
    CLASS_NAMES,
    HOLD,
    SELL,
    LabelError,
    forward_return_labels,
    triple_barrier_labels,
    volatility,
    zigzag_labels,
    zigzag_pivots,
)

NAN = math.nan


def as_list(series: pd.Series) -> list[float]:
    return [NAN if math.isnan(v) else int(v) for v in series.to_numpy()]


def same(a: list[float], b: list[float]) -> bool:
    return all((math.isnan(x) and math.isnan(y)) or x == y for x, y in zip(a, b, strict=True))


def test_class_indices_are_fixed() -> None:
    # Models, bundles and backtests rely on these exact indices.
    assert (BUY, HOLD, SELL) == (0, 1, 2)
    assert CLASS_NAMES == ("BUY", "HOLD", "SELL")


# --------------------------------------------------------------------------- zigzag

ZIGZAG_CLOSES = [100, 103, 106, 110, 104, 100, 97, 99, 103, 104, 104, 104, 104]


def test_zigzag_pivots_hand_worked() -> None:
    # Low 100 (bar 0) confirmed by 106 at bar 2 (+6 %), high 110 (bar 3) confirmed by 104 at
    # bar 4 (-5.5 %), low 97 (bar 6) confirmed by 103 at bar 8 (+6.2 %); the last leg is open.
    pivots = zigzag_pivots(np.array(ZIGZAG_CLOSES, dtype=float), 0.05)
    assert pivots.index.tolist() == [0, 3, 6]
    assert pivots.kind.tolist() == [-1, 1, -1]
    assert pivots.confirmed.tolist() == [2, 4, 8]


def test_zigzag_labels_hand_worked(from_closes) -> None:
    result = zigzag_labels(from_closes(ZIGZAG_CLOSES), threshold=0.05, lookahead=4)
    # Bars 0 and 1 start a swing to 110 confirmed by bar 4; bar 2 is only 3.8 % below it.
    # Bar 3's next low (bar 6) is confirmed at bar 8, beyond its 4-bar lookahead; bar 4 sees
    # it (-6.7 %); bar 5 is only 3 % above it. Bars 6-8 have no confirmed swing ahead.
    # The last 4 bars lack a full lookahead.
    expected = [BUY, BUY, HOLD, HOLD, SELL, HOLD, HOLD, HOLD, HOLD, NAN, NAN, NAN, NAN]
    assert same(as_list(result.labels), expected)
    assert result.report.counts == {"BUY": 2, "HOLD": 6, "SELL": 1}
    assert result.report.shares == pytest.approx({"BUY": 2 / 9, "HOLD": 6 / 9, "SELL": 1 / 9})
    assert result.report.undetermined == 4 and result.report.labelled == 9
    assert result.report.timeframe == "1h"
    assert result.labelled().tolist() == [BUY, BUY, HOLD, HOLD, SELL, HOLD, HOLD, HOLD, HOLD]


def test_zigzag_lookahead_limits_how_far_the_swing_may_end(from_closes) -> None:
    # With 3 bars of lookahead bar 4 no longer sees the low's confirmation at bar 8.
    with pytest.raises(LabelError, match=r"no SELL") as info:
        zigzag_labels(from_closes(ZIGZAG_CLOSES), threshold=0.05, lookahead=3)
    assert info.value.report is not None and info.value.report.counts["BUY"] == 1


def test_zigzag_does_not_take_a_smaller_move_for_a_reversal() -> None:
    # 100 → 72 is -28 %, short of 30 %: the high at 100 is confirmed only by 60 (-40 %).
    closes = np.array([50, 100, 72, 95, 60, 90], dtype=float)
    pivots = zigzag_pivots(closes, 0.3)
    assert pivots.index.tolist() == [0, 1, 4]
    assert pivots.kind.tolist() == [-1, 1, -1]


def reference_pivots(close: np.ndarray, threshold: float) -> list[tuple[int, int, int]]:
    """The textbook bar-by-bar zigzag state machine."""
    trend, hi, lo, out = 0, 0, 0, []
    for i in range(1, close.size):
        c = close[i]
        if trend == 0:
            hi = i if c > close[hi] else hi
            lo = i if c < close[lo] else lo
            if c <= close[hi] * (1 - threshold):
                out.append((hi, 1, i))
                trend, lo = -1, i
            elif c >= close[lo] * (1 + threshold):
                out.append((lo, -1, i))
                trend, hi = 1, i
        elif trend == 1:
            if c > close[hi]:
                hi = i
            elif c <= close[hi] * (1 - threshold):
                out.append((hi, 1, i))
                trend, lo = -1, i
        else:
            if c < close[lo]:
                lo = i
            elif c >= close[lo] * (1 + threshold):
                out.append((lo, -1, i))
                trend, hi = 1, i
    return out


def as_triples(pivots) -> list[tuple[int, int, int]]:
    return list(
        zip(pivots.index.tolist(), pivots.kind.tolist(), pivots.confirmed.tolist(), strict=True)
    )


def reference_zigzag_labels(close: np.ndarray, threshold: float, lookahead: int) -> list[float]:
    """Per bar: replay the state machine on the closes up to t + lookahead only."""
    out: list[float] = []
    for t in range(close.size):
        if t + lookahead >= close.size:
            out.append(NAN)
            continue
        ahead = [p for p in reference_pivots(close[: t + lookahead + 1], threshold) if p[0] > t]
        label: float = HOLD
        if ahead:
            index, kind, _ = ahead[0]
            move = close[index] / close[t] - 1
            if kind == 1 and move >= threshold:
                label = BUY
            elif kind == -1 and move <= -threshold:
                label = SELL
        out.append(label)
    return out


def test_zigzag_labels_match_replaying_the_state_machine_bar_by_bar(eurusd) -> None:
    frame = eurusd.iloc[:600]
    close = frame["close"].to_numpy()
    result = zigzag_labels(frame, threshold=0.002, lookahead=12)
    assert same(as_list(result.labels), reference_zigzag_labels(close, 0.002, 12))


@pytest.mark.parametrize("threshold", [0.001, 0.003, 0.01])
def test_zigzag_pivots_match_the_bar_by_bar_state_machine(eurusd, threshold: float) -> None:
    close = eurusd["close"].to_numpy()
    assert as_triples(zigzag_pivots(close, threshold)) == reference_pivots(close, threshold)


def test_zigzag_pivots_match_reference_on_a_long_random_walk() -> None:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, 20_000)))
    pivots = zigzag_pivots(close, 0.02)
    assert len(pivots.index) > 50
    assert as_triples(pivots) == reference_pivots(close, 0.02)


def test_zigzag_legs_alternate_and_reverse_by_the_threshold(goog) -> None:
    close = goog["close"].to_numpy()
    pivots = zigzag_pivots(close, 0.08)
    index, kind = pivots.index, pivots.kind
    assert np.all(np.diff(index) > 0) and np.all(kind[1:] == -kind[:-1])
    assert np.all(pivots.confirmed > index)
    moves = np.abs(close[index[1:]] / close[index[:-1]] - 1)
    assert np.all(moves >= 0.08)


# --------------------------------------------------------------------------- forward return


def test_forward_return_hand_worked(from_closes) -> None:
    frame = from_closes([100, 100.5, 99, 100, 100.5, 103, 97])
    result = forward_return_labels(frame, horizon=1, buy_threshold=0.01, sell_threshold=-0.01)
    # Returns: +0.5 %, -1.49 %, +1.01 %, +0.5 %, +2.49 %, -5.8 %, (none).
    assert same(as_list(result.labels), [HOLD, SELL, BUY, HOLD, BUY, SELL, NAN])
    assert result.report.counts == {"BUY": 2, "HOLD": 2, "SELL": 2}


def test_forward_return_thresholds_are_strict(from_closes) -> None:
    # Returns exactly +50 % and -50 % are not beyond the thresholds: HOLD.
    frame = from_closes([4, 6, 3, 6, 2, 4])
    result = forward_return_labels(frame, horizon=1, buy_threshold=0.5, sell_threshold=-0.5)
    assert same(as_list(result.labels), [HOLD, HOLD, BUY, SELL, BUY, NAN])


def test_forward_return_matches_a_loop_on_real_data(goog) -> None:
    close = goog["close"].to_numpy()
    horizon, up, down = 5, 0.02, -0.015
    result = forward_return_labels(goog, horizon=horizon, buy_threshold=up, sell_threshold=down)
    expected = []
    for t in range(close.size):
        if t + horizon >= close.size:
            expected.append(NAN)
            continue
        r = close[t + horizon] / close[t] - 1
        expected.append(BUY if r > up else SELL if r < down else HOLD)
    assert same(as_list(result.labels), expected)
    assert result.report.undetermined == horizon


# --------------------------------------------------------------------------- triple barrier


def reference_triple_barrier(
    close: np.ndarray, vol: np.ndarray, pt: float, sl: float, hold: int
) -> list[float]:
    out: list[float] = []
    for t in range(close.size):
        if not np.isfinite(vol[t]):
            out.append(NAN)
            continue
        upper, lower = close[t] * (1 + pt * vol[t]), close[t] * (1 - sl * vol[t])
        label: float = NAN
        for k in range(1, hold + 1):
            if t + k >= close.size:
                break
            if close[t + k] >= upper:
                label = BUY
                break
            if close[t + k] <= lower:
                label = SELL
                break
        else:
            label = HOLD
        out.append(label)
    return out


@pytest.mark.parametrize(
    ("method", "window", "pt", "sl", "hold"),
    [("std", 20, 2.0, 2.0, 10), ("std", 50, 3.0, 1.5, 30), ("atr", 14, 1.0, 1.0, 12)],
)
def test_triple_barrier_matches_a_loop_on_real_data(
    eurusd, method: str, window: int, pt: float, sl: float, hold: int
) -> None:
    result = triple_barrier_labels(
        eurusd, pt, sl, hold, volatility_method=method, volatility_window=window
    )
    close = eurusd["close"].to_numpy()
    vol = volatility(eurusd, method, window)  # type: ignore[arg-type]
    assert same(as_list(result.labels), reference_triple_barrier(close, vol, pt, sl, hold))
    assert result.report.undetermined >= window - (1 if method == "std" else 0)


def test_volatility_std_is_a_rolling_std_of_returns(goog) -> None:
    vol = volatility(goog, "std", 20)
    expected = goog["close"].pct_change().rolling(20).std().to_numpy()
    np.testing.assert_allclose(vol, expected, rtol=1e-12, equal_nan=True)
    assert np.isnan(vol[:20]).all() and np.isfinite(vol[20:]).all()


def test_triple_barrier_hand_worked(from_closes) -> None:
    # Window-2 std of returns; up then down moves big enough to hit either barrier.
    closes = [100, 101, 100, 101, 104, 101, 97, 98]
    frame = from_closes(closes)
    vol = pd.Series(closes, dtype=float).pct_change().rolling(2).std().to_numpy()
    result = triple_barrier_labels(
        frame, profit_take=1.0, stop_loss=1.0, max_holding_bars=2, volatility_window=2
    )
    expected: list[float] = [NAN, NAN]  # volatility warm-up
    for t in range(2, len(closes)):
        up, down = closes[t] * (1 + vol[t]), closes[t] * (1 - vol[t])
        ahead = closes[t + 1 : t + 3]
        first = next((c for c in ahead if c >= up or c <= down), None)
        if first is None:
            expected.append(HOLD if len(ahead) == 2 else NAN)
        else:
            expected.append(BUY if first >= up else SELL)
    # Bar 3 (101, vol ≈ 1.4 %) sees 104 next: BUY. Bar 4 (104) sees 101 and 97: SELL.
    assert expected[3] == BUY and expected[4] == SELL and math.isnan(expected[-1])
    assert same(as_list(result.labels), expected)


# --------------------------------------------------------------------------- the future


@pytest.mark.parametrize(
    ("label", "kwargs"),
    [
        (zigzag_labels, {"threshold": 0.003, "lookahead": 24}),
        (forward_return_labels, {"horizon": 6, "buy_threshold": 0.001, "sell_threshold": -0.001}),
        (triple_barrier_labels, {"profit_take": 2.0, "stop_loss": 2.0, "max_holding_bars": 24}),
    ],
)
def test_a_label_once_given_never_changes_when_more_bars_arrive(eurusd, label, kwargs) -> None:
    full = label(eurusd, **kwargs).labels
    for cut in (700, 1811, 3000, 4444):
        part = label(eurusd.iloc[:cut], **kwargs).labels
        known = part.notna()
        assert known.sum() > cut * 0.8
        pd.testing.assert_series_equal(part[known], full.iloc[:cut][known])
        # What the shorter series could not settle is left open, not guessed.
        assert part.iloc[-1:].isna().all()


# --------------------------------------------------------------------------- degenerate


def suggested(message: str, name: str) -> float:
    found = re.search(rf"{name} (-?[0-9.e-]+)–(-?[0-9.e-]+)", message)
    assert found, message
    return (float(found.group(1)) + float(found.group(2))) / 2


def test_zigzag_threshold_too_wide_for_hourly_data_is_an_error_with_working_advice(
    eurusd,
) -> None:
    with pytest.raises(LabelError) as info:
        zigzag_labels(eurusd, threshold=0.01, lookahead=20)
    message = str(info.value)
    assert "zigzag threshold 0.01" in message and "% HOLD" in message and "1h data" in message
    assert info.value.report is not None and info.value.report.shares["HOLD"] > 0.9
    # The suggested threshold gives a usable labelling.
    result = zigzag_labels(eurusd, threshold=suggested(message, "threshold"), lookahead=20)
    assert 0.2 < result.report.shares["HOLD"] < 0.8


def test_forward_return_missing_classes_is_an_error_with_working_advice(eurusd) -> None:
    with pytest.raises(LabelError) as info:
        forward_return_labels(eurusd, horizon=5, buy_threshold=0.05, sell_threshold=-0.05)
    message = str(info.value)
    assert "100% HOLD (no BUY, no SELL)" in message
    up, down = suggested(message, "buy_threshold"), suggested(message, "sell_threshold")
    assert down == pytest.approx(-up)
    result = forward_return_labels(eurusd, horizon=5, buy_threshold=up, sell_threshold=down)
    assert 0.3 < result.report.shares["HOLD"] < 0.7


def test_forward_return_thresholds_too_tight_leave_no_hold(goog) -> None:
    with pytest.raises(LabelError, match=r"no HOLD"):
        forward_return_labels(goog, horizon=20, buy_threshold=1e-9, sell_threshold=-1e-9)


def test_triple_barrier_too_wide_is_an_error_with_working_advice(goog) -> None:
    with pytest.raises(LabelError) as info:
        triple_barrier_labels(goog, profit_take=8, stop_loss=8, max_holding_bars=10)
    message = str(info.value)
    assert "triple_barrier" in message and "HOLD" in message and "1d data" in message
    m = suggested(message, "profit_take and stop_loss")
    result = triple_barrier_labels(goog, profit_take=m, stop_loss=m, max_holding_bars=10)
    assert 0.3 < result.report.shares["HOLD"] < 0.7


def test_too_little_data_labels_nothing_and_says_so(from_closes) -> None:
    with pytest.raises(LabelError, match="labels no bar of the 3"):
        forward_return_labels(from_closes([1, 2, 3]), 5, 0.01, -0.01)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda f: zigzag_labels(f, threshold=5, lookahead=10), "threshold is a fraction"),
        (lambda f: zigzag_labels(f, threshold=-0.1, lookahead=10), "threshold must be > 0"),
        (lambda f: zigzag_labels(f, threshold=0.1, lookahead=0), "lookahead must be a whole"),
        (lambda f: forward_return_labels(f, 2.5, 0.01, -0.01), "horizon must be a whole"),
        (lambda f: forward_return_labels(f, 2, 0.01, 0.01), "signed return between -1 and 0"),
        (lambda f: triple_barrier_labels(f, 1, 1, 5, "garch"), "'std' or 'atr'"),
        (lambda f: triple_barrier_labels(f, 1, 1, 5, "std", 1), "volatility_window ≥ 2"),
        (lambda f: zigzag_labels(f.drop(columns="close"), 0.1, 5), "'close' column"),
    ],
)
def test_bad_parameters_are_rejected(from_closes, call, fragment: str) -> None:
    with pytest.raises(LabelError) as info:
        call(from_closes([100.0, 101, 102, 103, 104, 105]))
    assert fragment in str(info.value)


def test_non_positive_prices_are_named(from_closes) -> None:
    frame = from_closes([100.0, 0.0, 102])
    with pytest.raises(LabelError, match=r"1 are not \(first at 2024-01-01 01:00:00\+00:00\)"):
        forward_return_labels(frame, 1, 0.01, -0.01)


def test_report_is_json_ready(goog) -> None:
    import json

    report = zigzag_labels(goog, threshold=0.05, lookahead=20).report
    data = json.loads(json.dumps(report.to_dict()))
    assert data["method"] == "zigzag" and data["timeframe"] == "1d"
    assert sum(data["counts"].values()) == data["labelled"]
    assert sum(data["shares"].values()) == pytest.approx(1.0)
    assert "BUY" in str(report) and "undetermined" in str(report)


# --------------------------------------------------------------------------- from a strategy


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("rsi_zones", "zigzag"),
        ("macd_bollinger_mtf", "forward_return"),
        ("volatility_triple_barrier", "triple_barrier"),
    ],
)
def test_make_labels_follows_the_strategy_labels_section(name, method, goog, eurusd) -> None:
    from ktrdr_core.examples import load_example
    from ktrdr_worker.frames import resample_ohlcv
    from ktrdr_worker.labels import make_labels

    strategy = load_example(name)
    data = {
        "1d": goog,
        "1h": eurusd,
        "4h": resample_ohlcv(eurusd, "1h", "4h", drop_incomplete=True),
    }[strategy.data.timeframe.value]
    result = make_labels(strategy.labels, data)
    config = strategy.labels.config.model_dump()
    assert result.report.method == method == strategy.labels.method
    direct = {
        "zigzag": lambda: zigzag_labels(data, **config),
        "forward_return": lambda: forward_return_labels(data, **config),
        "triple_barrier": lambda: triple_barrier_labels(data, **config),
    }[method]()
    pd.testing.assert_series_equal(result.labels, direct.labels)
    if method != "triple_barrier":  # a barrier hit before the end settles a late bar
        # The last `horizon` bars (the embargo's default size) have no label.
        horizon = strategy.labels.horizon
        assert result.labels.iloc[-horizon:].isna().all()
        assert result.labels.iloc[:-horizon].notna().all()
