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
  every bar satisfies low ≤ open, close ≤ high;
- optionally (``planted=``, off by default), one documented effect of known strength that
  a model should be able to find: see :class:`PlantedEffect`. Data made with it says so.

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
class PlantedEffect:
    """A known effect planted in the simulated market, so a learning model has a ground truth.

    Mean reversion after RSI extremes: after a bar whose close puts the Wilder RSI over
    ``rsi_period`` closes at or below ``oversold``, the next ``bars`` bars drift upwards by
    ``strength`` daily volatilities per day (on top of the regime's drift and noise); at or
    above ``overbought``, downwards by as much. A new extreme restarts the count, so in
    practice the push lasts until the opposite extreme. The effect reads only closes already
    made, so nothing in the data looks ahead; it is what the ``rsi_zones`` example's RSI
    zones and momentum inputs can see.

    Strength, for scale: with the default 1.0, a day's expected move while the effect lasts
    equals one day's noise (one standard deviation), so a push is clear over a week or two
    but any single bar still goes against it about one time in six. Half that strength
    (0.5) leaves too little for the example to find on 4,000 daily bars
    (``bench/planted.py`` measures both, beside the market without the effect).
    """

    rsi_period: int = 14
    oversold: float = 30.0
    overbought: float = 70.0
    strength: float = 1.0  # drift in daily-volatility units per day while the effect lasts
    bars: int = 40  # at most how many bars after an extreme the drift lasts

    def __post_init__(self) -> None:
        if self.rsi_period < 2:
            raise ValueError(f"planted.rsi_period must be at least 2, got {self.rsi_period}")
        if not 0 < self.oversold < self.overbought < 100:
            raise ValueError(
                "planted: expected 0 < oversold < overbought < 100, got "
                f"{self.oversold} and {self.overbought}"
            )
        if self.strength <= 0 or self.bars < 1:
            raise ValueError(
                f"planted: strength must be > 0 and bars ≥ 1, got {self.strength} and {self.bars}"
            )

    def describe(self) -> str:
        """One sentence for the people who read the data's results."""
        unit = "daily volatility" if self.strength == 1 else "daily volatilities"
        return (
            f"after a close with RSI({self.rsi_period}) ≤ {self.oversold:g} the price drifts up, "
            f"after one ≥ {self.overbought:g} down, by {self.strength:g} {unit} a day for up "
            f"to {self.bars} bars (until the opposite extreme)"
        )


RSI_REVERSION = PlantedEffect()
"""The planted effect ``ktrdr quickstart`` uses (and the examples' tests)."""


class _WilderRsi:
    """Wilder's RSI over closes, one close at a time (None until ``period`` changes seen)."""

    def __init__(self, period: int):
        self.period = period
        self.previous: float | None = None
        self.seen = 0
        self.gain = self.loss = 0.0

    def update(self, close: float) -> float | None:
        if self.previous is None:
            self.previous = close
            return None
        change, self.previous = close - self.previous, close
        up, down = max(change, 0.0), max(-change, 0.0)
        self.seen += 1
        if self.seen <= self.period:  # the first average is a plain mean
            self.gain += up / self.period
            self.loss += down / self.period
            if self.seen < self.period:
                return None
        else:
            self.gain += (up - self.gain) / self.period
            self.loss += (down - self.loss) / self.period
        if self.loss == 0.0:
            return 100.0
        return 100.0 - 100.0 / (1.0 + self.gain / self.loss)


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
    planted: PlantedEffect | None = None,
) -> Iterator[Bar]:
    """Yield `bars` consecutive bars (24/7 calendar, bar open times in UTC) from `start`.

    Drift and volatility are set per day and scaled to the timeframe, so daily and
    hourly series from the same seed look alike in character. ``planted``: an effect to
    plant (:class:`PlantedEffect`); the random draws are the same with and without it, so
    the planted market differs from the plain one by the effect alone.
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
    rsi = _WilderRsi(planted.rsi_period) if planted else None
    push, push_left = 0.0, 0  # the planted drift's sign and the bars it still lasts
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
        if push_left > 0:
            assert planted is not None
            daily_drift += push * planted.strength * daily_vol
            push_left -= 1
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
        if rsi is not None:
            assert planted is not None
            value = rsi.update(price)
            if value is not None and (value <= planted.oversold or value >= planted.overbought):
                push = 1.0 if value <= planted.oversold else -1.0
                push_left = planted.bars
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


def simulate_csv(
    bars: int,
    timeframe: str | Timeframe = "1h",
    *,
    seed: int = 0,
    planted: PlantedEffect | None = None,
) -> str:
    """The simulated bars as a canonical OHLCV CSV text (header included)."""
    lines = ["timestamp,open,high,low,close,volume"]
    for bar in simulate_bars(bars, timeframe, seed=seed, planted=planted):
        stamp = bar.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{stamp},{bar.open!r},{bar.high!r},{bar.low!r},{bar.close!r},{bar.volume!r}")
    return "\n".join(lines) + "\n"
