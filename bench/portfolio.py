"""Portfolio backtest cost: a model on two real daily series against its sleeves run alone.

The two-symbol test strategy (``tests.support.stack.TWO_SYMBOL_STRATEGY``: GOOG from the
`backtesting` wheel, the S&P 500 from the `arch` wheel, 2004-2013) is trained once; then, best
of ``--repeat`` runs each, on the bundle's test period:

- the reference: ``backtest_model`` on each symbol with its sleeve's capital, one after the
  other (what a user would run without portfolios), each writing its page series;
- ``backtest_portfolio``: the same sleeves (``simulate_symbol``, no series each) plus the union
  of their bar times, the summed equity, the union-calendar metrics and one series document.

Measured here (2 shared cores, 410 union bars) when each run still drew a PNG chart:
reference 0.14 s, portfolio 0.09 s (0.64×); not re-measured since the series replaced them.

Prints the seconds of each and the ratio; exits 1 when the portfolio takes more than
``MAX_OVER_SLEEVES`` × the reference (its extra work is linear in the union's bars).

    .venv/bin/python bench/portfolio.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the test helpers: tests/support

MAX_OVER_SLEEVES = 1.5


def best_of(repeat: int, run) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from ktrdr_worker.models.backtest import backtest_model
    from ktrdr_worker.models.pipeline import train_strategy
    from ktrdr_worker.models.portfolio import backtest_portfolio
    from tests.support.indicator_reference import load_real_frames
    from tests.support.stack import TWO_SYMBOL_STRATEGY

    frames = load_real_frames()
    pair = {"GOOG": frames["GOOG"], "SP500": frames["SP500"].loc["2004-01-01":"2013-03-01"]}
    bundle = train_strategy(TWO_SYMBOL_STRATEGY + "\n", pair, threads=1).bundle
    report = backtest_portfolio(bundle, pair, inference="numpy").report
    weights = report["portfolio"]["weights"]
    capital = report["portfolio"]["capital"]

    def sleeves() -> None:
        for symbol, weight in weights.items():
            backtest_model(bundle, pair[symbol], symbol=symbol, start=report["start"],
                           end=report["end"], backtest={"capital": capital * weight},
                           inference="numpy")  # fmt: skip

    alone = best_of(args.repeat, sleeves)
    together = best_of(args.repeat, lambda: backtest_portfolio(bundle, pair, inference="numpy"))
    ratio = together / alone
    print(f"{'run':<40} {'seconds':>8} {'ratio':>6}")
    print(f"{'two single-symbol backtests (reference)':<40} {alone:>8.3f} {1.0:>6.2f}")
    print(f"{'portfolio of both':<40} {together:>8.3f} {ratio:>6.2f}")
    print(f"bars: {report['bars']} on the union; target: ratio <= {MAX_OVER_SLEEVES}")
    return 0 if ratio <= MAX_OVER_SLEEVES else 1


if __name__ == "__main__":
    sys.exit(main())
