"""CSV rows shared by the market-data tests (a plain module: conftest is not importable)."""

HEADER = "timestamp,open,high,low,close,volume"

# Three good hourly bars, in canonical form (lines 2..4 of the file under HEADER).
GOOD_ROWS = [
    "2024-01-02T14:00:00Z,100.5,101.25,99.75,101,1200",
    "2024-01-02T15:00:00Z,101,102,100.5,101.5,900",
    "2024-01-02T16:00:00Z,101.5,101.75,100,100.25,0",
]
