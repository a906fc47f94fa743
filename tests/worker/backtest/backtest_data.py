"""Market data and signal builders shared by the backtest tests (imported by name)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """backtesting.py's frames (Open/High/…, naive index) in ktrdr's canonical ohlcv shape."""
    out = frame.rename(columns=str.lower)[["open", "high", "low", "close", "volume"]]
    out = out.astype(np.float64)
    out.index = pd.DatetimeIndex(out.index).tz_localize("UTC")
    return out


def make_bars(
    opens: list[float],
    closes: list[float] | None = None,
    freq: str = "1h",
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """A canonical frame with the given opens and closes (closes default to the opens)."""
    o = np.asarray(opens, dtype=np.float64)
    c = o if closes is None else np.asarray(closes, dtype=np.float64)
    index = pd.date_range(start, periods=o.size, freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "open": o,
            "high": np.maximum(o, c),
            "low": np.minimum(o, c),
            "close": c,
            "volume": 1.0,
        },
        index=index,
    )


def random_walk(n: int, seed: int, freq: str = "1h") -> pd.DataFrame:
    """A seeded geometric random walk with gaps between close and next open."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    prev = np.concatenate(([100.0], close[:-1]))
    opens = prev * np.exp(rng.normal(0.0, 0.002, n))
    return make_bars(list(opens), list(close), freq=freq)


def random_targets(n: int, seed: int, changes: int, allow_short: bool = True) -> np.ndarray:
    """Targets in {-1, 0, 1} (or {0, 1}) that change value at ``changes`` random bars."""
    rng = np.random.default_rng(seed)
    values = [-1, 0, 1] if allow_short else [0, 1]
    at = np.sort(rng.choice(np.arange(1, n), size=changes, replace=False))
    out = np.zeros(n, dtype=np.int8)
    current = 0
    for start, stop in zip(at, [*at[1:], n], strict=True):
        current = rng.choice([v for v in values if v != current])
        out[start:stop] = current
    return out


def follow_targets_strategy(target: np.ndarray, position_size: float) -> type:
    """A backtesting.py Strategy that trades to precomputed targets the way our engine does:
    a change decided at bar t fills at t+1's open, a flip closes then reopens, and a change
    on the last bar is ignored (it could not fill). Shared by the cross-check and the bench.
    """
    from backtesting import Strategy

    last_bar = len(target) - 1

    class FollowTargets(Strategy):
        def init(self) -> None:
            self.current = 0

        def next(self) -> None:
            bar = len(self.data) - 1
            wanted = int(target[bar])
            if bar == last_bar or wanted == self.current:
                return
            if self.position:
                self.position.close()
            if wanted == 1:
                self.buy(size=position_size)
            elif wanted == -1:
                self.sell(size=position_size)
            self.current = wanted

    return FollowTargets
