"""Target positions for the backtest tests, and a backtesting.py strategy that trades them
the way ktrdr's engine does (the cross-check test's and bench/backtest.py's, one copy)."""

from __future__ import annotations

import numpy as np


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
