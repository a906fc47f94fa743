"""A seeded market simulator for running ktrdr without network access.

Standard library only, so the CLI can make data anywhere. The price path has:

- regimes (bull, bear, sideways) that switch as a Markov chain, each with its own
  drift and volatility level, so trends and ranges alternate as in real markets;
- volatility clustering: a GARCH(1, 1) variance around the regime's level, so calm
  and turbulent stretches follow each other;
- a mild pull back towards a two-week average after stretched moves (short-term
  mean reversion, as seen in many markets), so oscillator zones such as RSI's carry
  some information and a model has something real to find;
- bars built from sub-steps, so high and low are real extremes of the path and
  every bar satisfies low ≤ open, close ≤ high.

Same seed, same arguments → the same bars, on every machine. The output is
synthetic: anything made from it must say so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from ktrdr_core.timeframes import Timeframe, parse_timeframe

SYNTHETIC_NOTE = "synthetic data from ktrdr's seeded market simulator — not a real market"


@dataclass(frozen=True)
class Regime:
    name: str
    drift: float  # expected log return per day
    daily_vol: float  # volatility level per day (fraction)


REGIMES = (
    Regime("bull", 0.0008, 0.016),
    Regime("sideways", 0.0, 0.013),
    Regime("bear", -0.0010, 0.026),
)
# Daily probabilities of switching: regimes last weeks to months.
SWITCH = (
    (0.985, 0.010, 0.005),
    (0.012, 0.978, 0.010),
    (0.010, 0.020, 0.970),
)
SUB_STEPS = 8  # path points inside each bar: high/low are extremes of this path
REVERSION_DAYS = 10.0  # span of the average that stretched prices are pulled back to
REVERSION = 0.35  # daily pull, in daily-volatility units, per unit of stretch (z-score)


@dataclass(frozen=True)
class Bar:
    timestamp: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


def simulate_bars(
    bars: int,
    timeframe: str | Timeframe = "1h",
    *,
    seed: int = 0,
    start: datetime = datetime(2020, 1, 6, tzinfo=UTC),
    start_price: float = 100.0,
) -> Iterator[Bar]:
    """Yield `bars` consecutive bars (24/7 calendar, bar open times in UTC) from `start`.

    Drift and volatility are set per day and scaled to the timeframe, so daily and
    hourly series from the same seed look alike in character.
    """
    if bars < 1:
        raise ValueError(f"bars must be at least 1, got {bars}")
    tf = parse_timeframe(timeframe)
    start = tf.bar_open(start)
    rng = random.Random(seed)
    days = tf.seconds / 86_400
    regime = 1
    price = start_price
    variance = REGIMES[regime].daily_vol ** 2
    alpha, beta = 0.08, 0.90  # GARCH(1,1): shock weight and persistence, per day
    anchor = math.log(price)  # exponential average of log price over REVERSION_DAYS
    smoothing = 1.0 - math.exp(-days / REVERSION_DAYS)
    for index in range(bars):
        # Regime switches happen on a per-day clock, whatever the bar size.
        stay = SWITCH[regime][regime] ** days
        if rng.random() > stay:
            others = [i for i in range(len(REGIMES)) if i != regime]
            weights = [SWITCH[regime][i] for i in others]
            regime = rng.choices(others, weights)[0]
        level = REGIMES[regime].daily_vol ** 2
        step_var = variance * days / SUB_STEPS
        daily_vol = math.sqrt(variance)
        stretch = (math.log(price) - anchor) / (daily_vol * math.sqrt(REVERSION_DAYS))
        daily_drift = REGIMES[regime].drift - REVERSION * stretch * daily_vol
        drift = daily_drift * days / SUB_STEPS
        open_ = price
        high = low = price
        shock_sum = 0.0
        for _ in range(SUB_STEPS):
            shock = rng.gauss(0.0, 1.0) * math.sqrt(step_var)
            shock_sum += shock
            price *= math.exp(drift - step_var / 2 + shock)
            high = max(high, price)
            low = min(low, price)
        daily_shock = (shock_sum / math.sqrt(days)) ** 2 if days > 0 else 0.0
        weight = min(1.0, days)
        variance = (1 - weight) * variance + weight * (
            (1 - alpha - beta) * level + alpha * daily_shock + beta * variance
        )
        anchor += smoothing * (math.log(price) - anchor)
        activity = 1.0 + 40.0 * abs(math.log(price / open_))  # busier markets trade more
        volume = round(1_000_000 * days * activity * rng.uniform(0.7, 1.3), 2)
        yield Bar(
            timestamp=datetime.fromtimestamp(start.timestamp() + index * tf.seconds, UTC),
            open=round(open_, 6),
            high=round(high, 6),
            low=round(low, 6),
            close=round(price, 6),
            volume=volume,
        )


def simulate_csv(bars: int, timeframe: str | Timeframe = "1h", *, seed: int = 0) -> str:
    """The simulated bars as a canonical OHLCV CSV text (header included)."""
    lines = ["timestamp,open,high,low,close,volume"]
    for bar in simulate_bars(bars, timeframe, seed=seed):
        stamp = bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{bar.open!r},{bar.high!r},{bar.low!r},{bar.close!r},{bar.volume!r}")
    return "\n".join(lines) + "\n"
