"""OHLCV CSV validation: every rule with its line number, accepted variants, normalisation."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ktrdr_core.market_data import (
    CANONICAL_HEADER,
    RULES,
    OHLCVValidationError,
    normalise,
    validate_ohlcv_csv,
)
from tests.support.market_data import GOOD_ROWS, HEADER

CANONICAL = HEADER + "\n" + "\n".join(GOOD_ROWS) + "\n"


def only_issue(text: str | bytes, timeframe: str | None = "1h"):
    result = validate_ohlcv_csv(text, timeframe)
    assert not result.ok
    assert result.error_count == 1, [str(i) for i in result.issues]
    return result.issues[0]


# --- the canonical file ---------------------------------------------------------------


def test_canonical_file_is_accepted_as_is() -> None:
    result = validate_ohlcv_csv(CANONICAL, "1h")
    assert result.ok and result.issues == [] and result.error_count == 0
    assert result.row_count == 3
    assert result.first == datetime(2024, 1, 2, 14, tzinfo=UTC)
    assert result.last == datetime(2024, 1, 2, 16, tzinfo=UTC)
    assert result.notes == []
    assert result.canonical_csv() == CANONICAL
    rows = list(result.rows())
    assert rows[0] == (datetime(2024, 1, 2, 14, tzinfo=UTC), 100.5, 101.25, 99.75, 101.0, 1200.0)


def test_summary_is_json_ready() -> None:
    summary = validate_ohlcv_csv(CANONICAL, "1h").to_dict()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["first"] == "2024-01-02T14:00:00Z"
    assert summary["bar_count"] == 3 and summary["ok"] is True


# --- one broken rule at a time, always on line 4 (header on 1, good rows on 2, 3, 5) --------

BAD_ROWS = [
    ("field_count", "2024-01-02T16:00:00Z,1,1,1,1", None),
    ("timestamp_format", "02/01/2024 16:00,1,1,1,1,1", "timestamp"),
    ("timestamp_format", ",1,1,1,1,1", "timestamp"),
    ("timestamp_format", "20240102,1,1,1,1,1", "timestamp"),  # 8 digits: not an epoch
    ("timestamp_mixed_format", "1704211200,1,1,1,1,1", "timestamp"),
    ("timestamp_mixed_tz", "2024-01-02T16:00:00,1,1,1,1,1", "timestamp"),
    ("timestamp_order", "2024-01-02T13:00:00Z,1,1,1,1,1", "timestamp"),
    ("duplicate_timestamp", "2024-01-02T15:00:00Z,1,1,1,1,1", "timestamp"),
    ("timestamp_alignment", "2024-01-02T15:30:00Z,1,1,1,1,1", "timestamp"),
    ("timestamp_alignment", "2024-01-02T15:59:59.5Z,1,1,1,1,1", "timestamp"),
    ("price_format", "2024-01-02T16:00:00Z,1,abc,1,1,1", "high"),
    ("price_format", "2024-01-02T16:00:00Z,1,1,,1,1", "low"),
    ("price_not_finite", "2024-01-02T16:00:00Z,1,inf,1,1,1", "high"),
    ("price_not_finite", "2024-01-02T16:00:00Z,nan,1,1,1,1", "open"),
    ("price_not_positive", "2024-01-02T16:00:00Z,0,1,0.5,1,1", "open"),
    ("price_not_positive", "2024-01-02T16:00:00Z,1,1,1,-1,1", "close"),
    ("ohlc_consistency", "2024-01-02T16:00:00Z,1,2,1.5,1.8,1", None),  # low > open
    ("ohlc_consistency", "2024-01-02T16:00:00Z,1,2,0.5,2.5,1", None),  # close > high
    ("ohlc_consistency", "2024-01-02T16:00:00Z,1,0.9,1,1,1", None),  # high < low
    ("volume_format", "2024-01-02T16:00:00Z,1,1,1,1,many", "volume"),
    ("volume_format", "2024-01-02T16:00:00Z,1,1,1,1,", "volume"),
    ("volume_not_finite", "2024-01-02T16:00:00Z,1,1,1,1,inf", "volume"),
    ("volume_negative", "2024-01-02T16:00:00Z,1,1,1,1,-5", "volume"),
]


@pytest.mark.parametrize(("rule", "row", "column"), BAD_ROWS, ids=[r[0] for r in BAD_ROWS])
def test_each_row_rule_names_its_line_and_rule(
    rule: str, row: str, column: str | None, make_csv: Callable[..., str]
) -> None:
    text = make_csv([GOOD_ROWS[0], GOOD_ROWS[1], row, "2024-01-02T17:00:00Z,1,1,1,1,1"])
    issue = only_issue(text)
    assert (issue.line, issue.rule, issue.column) == (4, rule, column)
    assert str(issue).startswith(f"line 4 [{rule}]: ")


def test_alignment_messages_say_the_rule_for_daily_and_weekly(make_csv: Callable) -> None:
    daily = make_csv(["2024-01-02T00:00:00+00:00,1,1,1,1,1", "2024-01-03T00:00:00-05:00,1,1,1,1,1"])
    issue = only_issue(daily, "1d")
    assert issue.line == 3 and "1d bars open at 00:00 UTC" in issue.message
    assert "2024-01-03T05:00:00Z" in issue.message  # the offset was applied
    weekly = make_csv(["2024-01-01,1,1,1,1,1", "2024-01-09,1,1,1,1,1"])  # 9th is a Tuesday
    issue = only_issue(weekly, "1w")
    assert issue.line == 3 and "Monday" in issue.message


def test_lines_are_file_lines_even_with_blank_and_quoted_multiline_rows() -> None:
    text = (
        "timestamp,open,high,low,close,volume,comment\n"  # line 1
        '2024-01-02T14:00:00Z,1,1,1,1,1,"two\nlines"\n'  # lines 2-3
        "\n"  # line 4
        "2024-01-02T15:00:00Z,1,1,1,1,-1,x\n"  # line 5
    )
    issue = only_issue(text)
    assert (issue.line, issue.rule) == (5, "volume_negative")


def test_every_error_is_counted_and_the_first_n_are_kept(make_csv: Callable) -> None:
    rows = [f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z,1,1,1,1,-1" for i in range(250)]
    rows[10] = rows[10].replace(",1,1,1,1,-1", ",1,0.5,1,1,1")  # plus one other rule
    result = validate_ohlcv_csv(make_csv(rows), "1h", max_errors=20)
    assert result.error_count == 250
    assert result.error_counts == {"volume_negative": 249, "ohlc_consistency": 1}
    assert len(result.issues) == 20
    assert [i.line for i in result.issues] == list(range(2, 22))
    assert result.issues[10].rule == "ohlc_consistency"
    assert len(result.timestamps) == 0 and result.first is None  # nothing usable is kept
    with pytest.raises(OHLCVValidationError) as info:
        result.raise_for_errors()
    error = info.value
    assert error.error_count == 250 and len(error.issues) == 20
    assert "250 error(s)" in str(error) and "and 230 more" in str(error)
    assert "line 2 [volume_negative]" in str(error)


def test_descending_files_get_advice(make_csv: Callable) -> None:
    result = validate_ohlcv_csv(make_csv(list(reversed(GOOD_ROWS))), "1h")
    assert result.error_counts == {"timestamp_order": 2}
    assert any("descending" in note for note in result.notes)


# --- header rules ----------------------------------------------------------------------


def test_missing_header_is_reported_on_line_1(make_csv: Callable) -> None:
    issue = only_issue("\n".join(GOOD_ROWS) + "\n")
    assert (issue.line, issue.rule) == (1, "header")
    assert CANONICAL_HEADER in issue.message


def test_missing_columns_are_each_named(make_csv: Callable) -> None:
    result = validate_ohlcv_csv(
        make_csv(["2024-01-02T14:00:00Z,1,1,1"], header="timestamp,open,high,close"), "1h"
    )
    assert [(i.line, i.rule, i.column) for i in result.issues] == [
        (1, "missing_column", "low"),
        (1, "missing_column", "volume"),
    ]
    assert "write 0 when the volume is unknown" in result.issues[1].message


def test_duplicate_and_ambiguous_columns(make_csv: Callable) -> None:
    issue = only_issue(make_csv(GOOD_ROWS, header="timestamp,open,high,low,close,close,volume"))
    assert (issue.line, issue.rule, issue.column) == (1, "duplicate_column", "close")
    issue = only_issue(make_csv([], header="date,time,open,high,low,close,volume"))
    assert issue.rule == "header" and "ambiguous" in issue.message
    issue = only_issue(make_csv([], header="Date,open,high,low,close,volume,date"))
    assert (issue.rule, issue.column) == ("duplicate_column", "timestamp")


def test_empty_inputs() -> None:
    issue = only_issue("\n\n")
    assert issue.rule == "source" and issue.line is None
    issue = only_issue(HEADER + "\n")
    assert issue.rule == "source" and "no data rows" in issue.message


def test_non_utf8_bytes_name_the_line() -> None:
    data = (CANONICAL + "2024-01-02T17:00:00Z,1,1,1,1,1 caf\xe9\n").encode("latin-1")
    issue = only_issue(data)
    assert (issue.line, issue.rule) == (5, "encoding")


# --- accepted variants -----------------------------------------------------------------


def test_columns_in_any_order_and_case_normalise_to_canonical(make_csv: Callable) -> None:
    rows = [
        "101,1200,2024-01-02T14:00:00Z,100.5,99.75,101.25",
        "101.5,900,2024-01-02T15:00:00Z,101,100.5,102",
        "100.25,0,2024-01-02T16:00:00Z,101.5,100,101.75",
    ]
    header = " Close,VOLUME,TimeStamp,Open,Low,High"
    result = validate_ohlcv_csv(make_csv(rows, header=header), "1h")
    assert result.ok, result.issues
    assert result.canonical_csv() == CANONICAL
    assert any("renamed" in note for note in result.notes)


@pytest.mark.parametrize("name", ["date", "Date", "datetime", "Time", ""])
def test_time_column_spellings(name: str, make_csv: Callable) -> None:
    header = f"{name},open,high,low,close,volume"
    result = validate_ohlcv_csv(make_csv(GOOD_ROWS, header=header), "1h")
    assert result.ok, result.issues
    assert result.canonical_csv() == CANONICAL
    if name == "":
        assert any("unnamed first column" in note for note in result.notes)


def test_extra_columns_are_ignored_and_reported(make_csv: Callable) -> None:
    rows = [row + ",AAPL,42.0" for row in GOOD_ROWS]
    result = validate_ohlcv_csv(make_csv(rows, header=HEADER + ",Symbol,Adj Close"), "1h")
    assert result.ok
    assert result.canonical_csv() == CANONICAL
    assert "ignored extra column(s): 'Symbol', 'Adj Close'" in result.notes


@pytest.mark.parametrize(
    ("stamps", "note"),
    [
        (["1704204000", "1704207600", "1704211200"], "epoch seconds"),
        (["1704204000000", "1704207600000", "1704211200000"], "epoch milliseconds"),
        (["1704204000.0", "1704207600.0", "1704211200.0"], "epoch seconds"),
        (["2024-01-02T16:00:00+02:00", "2024-01-02 17:00+02:00", "2024-01-02T11:00-05:00"], "UTC"),
        (["2024-01-02 14:00:00", "2024-01-02T15:00", "2024-01-02 16:00:00"], "read as UTC"),
    ],
    ids=["epoch_s", "epoch_ms", "epoch_s_float", "offsets", "naive"],
)
def test_timestamp_variants_are_converted_to_utc(
    stamps: list[str], note: str, make_csv: Callable
) -> None:
    rows = [stamp + row[row.index(",") :] for stamp, row in zip(stamps, GOOD_ROWS, strict=True)]
    result = validate_ohlcv_csv(make_csv(rows), "1h")
    assert result.ok, result.issues
    assert result.canonical_csv() == CANONICAL
    assert any(note in n for n in result.notes), result.notes


def test_mixing_naive_and_offset_timestamps_is_an_error(make_csv: Callable) -> None:
    rows = [
        "2024-01-02T14:00:00,1,1,1,1,1",
        "2024-01-02T15:00:00Z,1,1,1,1,1",
        "2024-01-02T16:00:00,1,1,1,1,1",
        "2024-01-02T17:00:00+01:00,1,1,1,1,1",
    ]
    result = validate_ohlcv_csv(make_csv(rows), "1h")
    assert [(i.line, i.rule) for i in result.issues] == [
        (3, "timestamp_mixed_tz"),
        (5, "timestamp_mixed_tz"),
    ]
    assert "line 2" in result.issues[0].message  # points at the line that set the convention


def test_epoch_seconds_and_milliseconds_may_not_mix(make_csv: Callable) -> None:
    rows = ["1704204000,1,1,1,1,1", "1704207600000,1,1,1,1,1"]
    issue = only_issue(make_csv(rows))
    assert (issue.line, issue.rule) == (3, "timestamp_mixed_format")


def test_line_endings_bom_blank_lines_and_spaces() -> None:
    text = "\ufeff" + CANONICAL.replace("\n", "\r\n")
    text = text.replace("\r\n2024-01-02T15", "\r\n\r\n 2024-01-02T15")
    result = validate_ohlcv_csv(text, "1h")
    assert result.ok, result.issues
    assert result.canonical_csv() == CANONICAL
    assert "skipped 1 blank line(s)" in result.notes
    assert validate_ohlcv_csv(text.encode("utf-8"), "1h").canonical_csv() == CANONICAL


def test_without_timeframe_alignment_is_not_checked(make_csv: Callable) -> None:
    rows = ["2024-01-02T14:07:00Z,1,1,1,1,1", "2024-01-02T14:31:00Z,1,1,1,1,1"]
    result = validate_ohlcv_csv(make_csv(rows), None)
    assert result.ok
    assert any("alignment was not checked" in note for note in result.notes)
    assert validate_ohlcv_csv(make_csv(rows), "1m").ok
    assert validate_ohlcv_csv(make_csv(rows), "5m").error_counts == {"timestamp_alignment": 2}


def test_numbers_are_written_in_one_canonical_spelling(make_csv: Callable) -> None:
    rows = ["2024-01-02T14:00:00Z, 1.50 ,2.0,1e0,+1.5,1_000"]
    result = validate_ohlcv_csv(make_csv(rows), "1h")
    assert result.canonical_csv().splitlines()[1] == "2024-01-02T14:00:00Z,1.5,2,1,1.5,1000"


# --- real files ------------------------------------------------------------------------


def test_real_pandas_exports_validate(goog_csv: Path, eurusd_csv: Path) -> None:
    goog = validate_ohlcv_csv(goog_csv, "1d")
    assert goog.ok, goog.issues[:5]
    assert goog.row_count == 2148
    assert goog.first == datetime(2004, 8, 19, tzinfo=UTC)
    assert goog.source == str(goog_csv)
    eurusd = validate_ohlcv_csv(str(eurusd_csv), "1h")
    assert eurusd.ok, eurusd.issues[:5]
    assert eurusd.row_count == 5000
    assert eurusd.last == datetime(2018, 2, 7, 15, tzinfo=UTC)
    # The same file read as 4h bars breaks alignment on three rows out of four.
    as_4h = validate_ohlcv_csv(eurusd_csv, "4h")
    assert set(as_4h.error_counts) == {"timestamp_alignment"}
    assert 3000 < as_4h.error_count < 4000


# --- normalise ------------------------------------------------------------------------


def test_normalise_writes_canonical_csv(tmp_path: Path, make_csv: Callable) -> None:
    source = tmp_path / "in.csv"
    source.write_text(make_csv(GOOD_ROWS, header="Date,Open,High,Low,Close,Volume"))
    dest = tmp_path / "AAPL_1h.csv"
    result = normalise(source, "1h", dest)
    assert dest.read_text() == CANONICAL
    assert result.row_count == 3
    # Normalising the canonical file again changes nothing.
    assert normalise(dest, "1h").canonical_csv() == CANONICAL


def test_normalise_refuses_broken_files_and_writes_nothing(
    tmp_path: Path, make_csv: Callable
) -> None:
    dest = tmp_path / "out.csv"
    text = make_csv([GOOD_ROWS[0], GOOD_ROWS[0], "2024-01-02T15:00:00Z,1,1,2,1,1"])
    with pytest.raises(OHLCVValidationError) as info:
        normalise(text, "1h", dest)
    assert [(i.line, i.rule) for i in info.value.issues] == [
        (3, "duplicate_timestamp"),
        (4, "ohlc_consistency"),
    ]
    assert not dest.exists()


def test_path_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="a str without a newline is read as a path"):
        validate_ohlcv_csv(str(tmp_path / "missing.csv"), "1h")
    with pytest.raises(TypeError):
        validate_ohlcv_csv(42, "1h")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid timeframes"):
        validate_ohlcv_csv(CANONICAL, "2h")


def test_malformed_csv_is_reported_where_the_broken_row_starts() -> None:
    unclosed = f'{HEADER}\n{GOOD_ROWS[0]}\n"2024-01-02T15:00:00Z,1,1,1,1,1\n{GOOD_ROWS[2]}\n'
    issue = only_issue(unclosed)
    assert (issue.line, issue.rule) == (3, "csv_syntax")
    assert "never closed" in issue.message
    # A field over the csv module's limit is an issue, not an exception.
    giant = f'{HEADER},note\n{GOOD_ROWS[0]},"{"x" * 200_000}"\n'
    assert (only_issue(giant).line, only_issue(giant).rule) == (2, "csv_syntax")


def test_bars_of_a_longer_timeframe_are_refused_naming_the_spacing_found() -> None:
    # Daily bars pass every per-row rule under 1h (each opens on a whole hour).
    daily = "\n".join(
        [HEADER, *(f"2024-01-{day:02d}T00:00:00Z,1,1,1,1,1" for day in (1, 2, 3, 4, 5, 8, 9))]
    )
    result = validate_ohlcv_csv(daily + "\n", "1h")
    [issue] = result.issues
    assert issue.rule == "timeframe_mismatch"
    assert "bars are 1 day apart (median), which is 1d, never 1h apart; you said 1h" in (
        issue.message
    )
    assert validate_ohlcv_csv(daily + "\n", "1d").ok
    # Monthly bars under 1d: the median spacing is told in days.
    monthly = "\n".join(
        [HEADER, *(f"2024-{month:02d}-01T00:00:00Z,1,1,1,1,1" for month in (1, 2, 3, 4))]
    )
    [issue] = validate_ohlcv_csv(monthly + "\n", "1d").issues
    assert "bars are 31 days apart (median), never 1d apart" in issue.message
    # Hourly bars with a weekend and holes are still hourly: one pair one hour apart is enough.
    sparse = "\n".join(
        [HEADER, *(f"2024-01-{d}T{h}:00:00Z,1,1,1,1,1" for d, h in
                   (("05", "20"), ("05", "21"), ("08", "03"), ("08", "09")))]
    )  # fmt: skip
    assert validate_ohlcv_csv(sparse + "\n", "1h").ok


# Rules exercised by the named tests above rather than by BAD_ROWS.
OTHER_RULE_TESTS = {
    "timeframe_mismatch": test_bars_of_a_longer_timeframe_are_refused_naming_the_spacing_found,
    "csv_syntax": test_malformed_csv_is_reported_where_the_broken_row_starts,
    "source": test_empty_inputs,
    "encoding": test_non_utf8_bytes_name_the_line,
    "header": test_missing_header_is_reported_on_line_1,
    "missing_column": test_missing_columns_are_each_named,
    "duplicate_column": test_duplicate_and_ambiguous_columns,
}


def test_every_rule_has_a_test() -> None:
    covered = {rule for rule, _, _ in BAD_ROWS} | set(OTHER_RULE_TESTS)
    assert covered == set(RULES), set(RULES) ^ covered
