"""Data for the model tests: small synthetic sample sets, a market with a planted signal (and
the strategy that should find it), `backtesting`'s frames in canonical form (microsecond UTC
index named ``timestamp``, as the training pipeline produces), and examples retargeted for
fast tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import yaml

from ktrdr_core.examples import read_example
from ktrdr_core.strategy.loading import load_strategy
from ktrdr_core.strategy.schema import Strategy
from ktrdr_worker.fuzzy import membership
from ktrdr_worker.models.datasets import Samples, build_samples

OVERSOLD = [None, 0.0, 30.0, 45.0]  # the planted membership's trapezoid, in RSI points


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """A `backtesting.test` frame (Open, High, …, naive index) as a canonical ohlcv frame."""
    out = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = out.astype("float64")
    out.index = pd.DatetimeIndex(out.index).tz_localize("UTC").as_unit("us")
    out.index.name = "timestamp"
    return out


def noisy_samples(
    n: int = 900, n_features: int = 5, window: int = 1, seed: int = 0
) -> tuple[Samples, Samples]:
    """Train and validation samples where class depends (noisily) on feature 0."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, n_features))
    score = x[:, 0] - 0.5 + 0.25 * rng.standard_normal(n)
    y = np.where(score > 0.12, 0, np.where(score < -0.12, 2, 1)).astype(float)
    samples, _ = build_samples([(x, y)], window)
    cut = int(len(samples) * 0.75)
    return samples.subset(np.arange(cut)), samples.subset(np.arange(cut, len(samples)))


def _wilder_rsi(avg_gain: float, avg_loss: float) -> float:
    return 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)


def planted_market(n: int = 3000, seed: int = 0, strength: float = 3.0) -> pd.DataFrame:
    """Hourly bars whose next return follows the RSI-oversold membership degree.

    Each bar's log return is ``σ·ε + strength·σ·(oversold(RSI) − 0.5)``, with RSI the 14-bar
    Wilder RSI of the closes so far and ``oversold`` the trapezoid ``OVERSOLD``: a high degree
    means the next bar tends to rise, a low one that it tends to fall. High/low ranges and
    volume are independent noise, so range and volume indicators carry no signal.
    """
    rng = np.random.default_rng(seed)
    sigma, period = 0.004, 14
    close = np.empty(n)
    close[0] = 100.0
    gains: list[float] = []
    avg_gain = avg_loss = 0.0
    drift = 0.0
    for t in range(1, n):
        close[t] = close[t - 1] * np.exp(sigma * rng.standard_normal() + drift)
        change = close[t] - close[t - 1]
        if len(gains) < period:
            gains.append(change)
            if len(gains) == period:
                avg_gain = float(np.mean([max(c, 0.0) for c in gains]))
                avg_loss = float(np.mean([max(-c, 0.0) for c in gains]))
            else:
                continue
        else:
            avg_gain = (avg_gain * (period - 1) + max(change, 0.0)) / period
            avg_loss = (avg_loss * (period - 1) + max(-change, 0.0)) / period
        degree = membership("trapezoidal", np.array([_wilder_rsi(avg_gain, avg_loss)]), OVERSOLD)
        drift = strength * sigma * (float(degree[0]) - 0.5)
    index = pd.date_range("2021-01-04", periods=n, freq="h", tz="UTC", name="timestamp")
    index = index.as_unit("us")
    spread = np.abs(rng.normal(0.0, sigma, n)) * close
    open_ = np.r_[close[0], close[:-1]]
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread * rng.random(n),
            "low": np.minimum(open_, close) - spread * rng.random(n),
            "close": close,
            "volume": rng.lognormal(8.0, 0.5, n),
        },
        index=index,
    )


PLANTED_STRATEGY = """
name: planted
description: RSI-oversold degree drives the next bar; volatility and money flow are noise.
data:
  symbols: [SYN]
  timeframe: 1h
  split: {train: 0.6, validation: 0.2, test: 0.2}
  embargo_bars: 1
indicators:
  rsi_14: {type: rsi, params: {period: 14}}
  natr_14: {type: natr, params: {period: 14}}
  cmf_20: {type: cmf, params: {period: 20}}
fuzzy_sets:
  rsi_zone:
    indicator: rsi_14
    oversold: {type: trapezoidal, params: [null, 0, 30, 45]}
    overbought: {type: trapezoidal, params: [55, 70, 100, null]}
  volatility:
    indicator: natr_14
    calm: {type: sigmoid, params: [0.7, -20.0]}
    wild: {type: sigmoid, params: [0.7, 20.0]}
  flow:
    indicator: cmf_20
    outflow: {type: sigmoid, params: [0.0, -20.0]}
    inflow: {type: sigmoid, params: [0.0, 20.0]}
inputs:
  - fuzzy_set: rsi_zone
  - fuzzy_set: volatility
  - fuzzy_set: flow
model: {type: mlp, hidden_layers: [16], dropout: 0.0}
training:
  epochs: 25
  batch_size: 128
  learning_rate: 0.005
  seed: 3
  device: cpu
  early_stopping: {patience: 5}
labels:
  forward_return: {horizon: 1, buy_threshold: 0.002, sell_threshold: -0.002}
decisions: {confidence_threshold: 0.4, min_separation_bars: 0, mode: long_short}
backtest: {capital: 10000.0, commission: 0.0, slippage: 0.0, position_size: 1.0}
"""


def example_for(name: str, symbol: str, **changes: dict) -> Strategy:
    """An example strategy retargeted at one symbol, with sections updated by ``changes``
    (e.g. ``training={"epochs": 3}``) and the date range opened to the whole file."""
    data = yaml.safe_load(read_example(name))
    data["data"].update(symbols=[symbol], start=None, end=None)
    for section, values in changes.items():
        data[section].update(values)
    return load_strategy(data)


# The three examples trained on real data for the inference checks (numpy against torch):
# name -> (symbol, base timeframe, model changes that keep training short on 2 cores). GOOG is
# backtesting.test's daily file, EURUSD its hourly one (4h: resampled). Used by
# tests/worker/models/test_inference_engines.py, bench/inference.py and bench/gpu_check.py.
INFERENCE_EXAMPLES = {
    "rsi_zones": ("GOOG", "1d", {}),  # MLP [32, 16], relu, dropout 0.2
    "macd_bollinger_mtf": ("EURUSD", "1h", {"hidden_layers": [24, 12], "window": 12}),  # GRU ×2
    "volatility_triple_barrier": ("EURUSD", "4h", {"window": 12}),  # LSTM [48]
}


def inference_example(
    name: str, goog: pd.DataFrame, eurusd: pd.DataFrame, *, epochs: int = 2, device: str = "cpu"
) -> tuple[Strategy, str, pd.DataFrame]:
    """One of :data:`INFERENCE_EXAMPLES`, ready to train: (strategy, symbol, its bars)."""
    from ktrdr_worker.frames import resample_ohlcv

    symbol, timeframe, model = INFERENCE_EXAMPLES[name]
    bars = {"1d": goog, "1h": eurusd}
    bars["4h"] = resample_ohlcv(eurusd, "1h", "4h", drop_incomplete=True)
    strategy = example_for(name, symbol, training={"epochs": epochs, "device": device}, model=model)
    return strategy, symbol, bars[timeframe]


def simulated_market(
    bars: int = 4000, timeframe: str = "1d", *, seed: int = 7, planted: object = None
) -> pd.DataFrame:
    """``ktrdr_core.simulator``'s bars (with its ``planted`` effect, if given) as a canonical
    frame: the market ``ktrdr quickstart`` imports."""
    import io

    from ktrdr_core.simulator import simulate_csv

    text = simulate_csv(bars, timeframe, seed=seed, planted=planted)  # type: ignore[arg-type]
    frame = pd.read_csv(io.StringIO(text), index_col="timestamp")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.index, utc=True)).as_unit("us")
    return frame.astype("float64")
