"""Market data for the tests: real OHLCV files shipped inside installed wheels (found without
importing their packages), canonical CSV rows, and bar-open calendars for the gap reports."""

from __future__ import annotations

import csv
import importlib.util
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo


def packaged_file(package: str, *parts: str) -> Path:
    """A data file shipped inside an installed package, found without importing it (importing
    backtesting or arch pulls in plotting and statistics stacks: seconds per test session)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed; run scripts/setup-env")
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    if not path.is_file():
        raise FileNotFoundError(f"{package} does not ship {'/'.join(parts)} (looked at {path})")
    return path


def packaged_csv(name: str) -> Path:
    """A real OHLCV file shipped in the `backtesting` wheel (a test dependency of the
    workspace): GOOG.csv (daily, 2004-2013), EURUSD.csv (hourly, 2017-2018), ..."""
    return packaged_file("backtesting", "test", name)


def eurusd_csv(dest: Path) -> Path:
    """The EURUSD hourly bars shipped in the `backtesting` wheel, rewritten as a canonical
    ktrdr CSV (``timestamp,open,high,low,close,volume``, ISO-8601 UTC), without pandas."""
    with packaged_csv("EURUSD.csv").open(newline="") as raw, dest.open("w", newline="") as out:
        rows = csv.reader(raw)
        header = next(rows)
        assert header[1:] == ["Open", "High", "Low", "Close", "Volume"], header
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for stamp, *values in rows:
            writer.writerow([stamp.replace(" ", "T") + "Z", *values])
    return dest


def sp500_daily_csv(dest: Path, first: str = "2004-01-01", last: str = "2013-03-01") -> Path:
    """The S&P 500's real daily bars shipped in the `arch` wheel (1999-2018), from ``first`` to
    ``last`` (YYYY-MM-DD, both included), rewritten as a canonical ktrdr CSV without pandas."""
    import gzip

    path = packaged_file("arch", "data", "sp500", "sp500.csv.gz")
    with gzip.open(path, "rt", newline="") as raw, dest.open("w", newline="") as out:
        rows = csv.reader(raw)
        assert next(rows) == ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for day, open_, high, low, close, _adjusted, volume in rows:
            month, dom, year = (int(part) for part in day.split("/"))
            stamp = date(year, month, dom).isoformat()
            if first <= stamp <= last:
                writer.writerow([f"{stamp}T00:00:00Z", open_, high, low, close, volume])
    return dest


def goog_canonical_csv(dest: Path) -> Path:
    """GOOG's real daily bars (the `backtesting` wheel, 2004-08-19 to 2013-03-01) as a
    canonical ktrdr CSV."""
    with packaged_csv("GOOG.csv").open(newline="") as raw, dest.open("w", newline="") as out:
        rows = csv.reader(raw)
        assert next(rows)[1:] == ["Open", "High", "Low", "Close", "Volume"]
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for day, *values in rows:
            writer.writerow([f"{day}T00:00:00Z", *values])
    return dest


HEADER = "timestamp,open,high,low,close,volume"

# Three good hourly bars, in canonical form (lines 2..4 of the file under HEADER).
GOOD_ROWS = [
    "2024-01-02T14:00:00Z,100.5,101.25,99.75,101,1200",
    "2024-01-02T15:00:00Z,101,102,100.5,101.5,900",
    "2024-01-02T16:00:00Z,101.5,101.75,100,100.25,0",
]

_DAY = 86_400


def epoch(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    """Epoch seconds of a UTC wall-clock time."""
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def continuous_opens(start: int, end: int, step: int) -> list[int]:
    """Every bar open in [start, end): a market that never closes."""
    return list(range(start, end, step))


def nyse_opens(
    first: date, last: date, step_minutes: int, holidays: set[date] = frozenset()
) -> list[int]:
    """Bar opens (epoch s) of a 09:30-16:00 New York session, Mon-Fri, in UTC.

    Daylight saving time moves the session by an hour in UTC (14:30-21:00 in winter,
    13:30-20:00 in summer), as it does in real intraday stock data.
    """
    new_york = ZoneInfo("America/New_York")
    opens: list[int] = []
    day = first
    while day <= last:
        if day.weekday() < 5 and day not in holidays:
            t = datetime(day.year, day.month, day.day, 9, 30, tzinfo=new_york)
            close = datetime(day.year, day.month, day.day, 16, 0, tzinfo=new_york)
            while t < close:
                opens.append(int(t.timestamp()))
                t += timedelta(minutes=step_minutes)
        day += timedelta(days=1)
    return opens


def goog_daily_csv(dest: Path, *, without: tuple[str, ...] = ()) -> Path:
    """GOOG's real daily bars as the `backtesting` wheel ships them: every NYSE session from
    2004-08-19 to 2013-03-01 (2,148 bars), less the sessions in ``without`` (YYYY-MM-DD),
    removed on purpose to make holes a calendar must find."""
    lines = packaged_csv("GOOG.csv").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(tuple(without))]
    missing = len(lines) - len(kept)
    assert missing == len(without), f"GOOG.csv lacks some of {without}"
    dest.write_text("".join(kept))
    return dest
