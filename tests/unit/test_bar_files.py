"""Reading bar files: layouts, timestamps, merging, and the errors bad files get (DESIGN rule 6)."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.files import BarDataError, BarFrame, load_bars, write_bars
from tests.factories import MINUTE, T0

HEADER = "timestamp,symbol,open,high,low,close,volume\n"
GOOD_ROWS = [
    "2024-01-02T14:31:00Z,AAA,10,11,9,10.5,100",
    "2024-01-02T14:31:00Z,BBB,20,21,19,20.5,200",
    "2024-01-02T14:32:00Z,AAA,10.5,12,10,11,150",
    "2024-01-02T14:32:00Z,BBB,20.5,21,20,20.75,250",
]
T1 = T0 + MINUTE  # 14:31 UTC, the first bar above


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text(header + "".join(r + "\n" for r in rows))
    return path


def write_parquet(path: Path, **columns) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def frame_of(rows: int, symbol: str = "AAA", start: int = T1) -> BarFrame:
    closes = 100.0 + np.arange(rows)
    return BarFrame.from_columns(start + np.arange(rows) * MINUTE, [symbol] * rows, open=closes,
                                 high=closes + 1, low=closes - 1, close=closes,
                                 volume=np.full(rows, 1000.0))


# --- layouts -------------------------------------------------------------------------------


def test_load_when_long_csv_then_every_row_in_ts_symbol_order(tmp_path):
    path = write_csv(tmp_path / "bars.csv", [GOOD_ROWS[i] for i in (1, 0, 3, 2)])

    frame = load_bars([path])

    assert len(frame) == 4
    assert frame.symbols == ("AAA", "BBB")
    assert list(frame.rows())[0] == (T1, "AAA", 10.0, 11.0, 9.0, 10.5, 100.0)
    assert frame.ts.tolist() == [T1, T1, T1 + MINUTE, T1 + MINUTE]
    assert frame.symbol.tolist() == ["AAA", "BBB", "AAA", "BBB"]
    assert frame.sources == (str(path),)


def test_load_when_file_has_no_symbol_column_then_symbol_is_upper_cased_file_stem(tmp_path):
    header = "Date,Open,High,Low,Close,Volume\n"
    plain = write_csv(tmp_path / "aapl.csv", ["2024-01-02,10,11,9,10,5"], header)
    zipped = tmp_path / "brk.b.csv.gz"
    zipped.write_bytes(gzip.compress((header + "2024-01-02,20,21,19,20,5\n").encode()))

    frame = load_bars([plain, zipped])

    assert frame.symbols == ("AAPL", "BRK.B")
    assert frame.close.tolist() == [10.0, 20.0]


def test_load_when_column_names_differ_in_case_and_alias_then_they_are_matched(tmp_path):
    path = write_csv(tmp_path / "x.csv", ["2024-01-02 14:31:00,aaa,1,2,0.5,1.5,7,ignored"],
                     "DateTime,SYMBOL,Open,HIGH,low,Close,Volume,Extra\n")

    frame = load_bars([path])

    assert frame.symbols == ("aaa",)
    assert frame.ts.tolist() == [T1]


def test_load_when_directory_given_then_its_bar_files_are_read_in_name_order(tmp_path):
    write_csv(tmp_path / "b.csv", [GOOD_ROWS[1]])
    write_csv(tmp_path / "a.csv", [GOOD_ROWS[0]])
    (tmp_path / "notes.txt").write_text("not bars")

    frame = load_bars([tmp_path])

    assert frame.sources == (str(tmp_path / "a.csv"), str(tmp_path / "b.csv"))
    assert frame.symbols == ("AAA", "BBB")


def test_load_when_csv_and_parquet_mixed_then_merged_by_ts_then_symbol(tmp_path):
    csv_file = write_csv(tmp_path / "z.csv", [GOOD_ROWS[1], GOOD_ROWS[3]])  # BBB at 14:31, 14:32
    parquet_file = write_parquet(
        tmp_path / "a.parquet", timestamp=pa.array([T1 + MINUTE, T1], pa.timestamp("ns", "UTC")),
        symbol=["CCC", "AAA"], open=[5.0, 5.0], high=[6.0, 6.0], low=[4.0, 4.0], close=[5.0, 5.0],
        volume=pa.array([1, 2], pa.int64()))

    frame = load_bars([csv_file, parquet_file])

    assert frame.symbol.tolist() == ["AAA", "BBB", "BBB", "CCC"]
    assert frame.ts.tolist() == [T1, T1, T1 + MINUTE, T1 + MINUTE]
    assert frame.volume.tolist() == [2.0, 200.0, 250.0, 1.0]


def test_load_when_same_file_named_twice_then_it_is_read_once(tmp_path):
    path = write_csv(tmp_path / "a.csv", GOOD_ROWS)

    assert len(load_bars([path, tmp_path])) == 4


def test_write_then_load_when_each_format_then_arrays_round_trip_exactly(tmp_path):
    original = BarFrame.concat([frame_of(50, "AAA"), frame_of(50, "BBB")])
    # Thirds have no short decimal form: a lossy float format would show up here.
    thirds = original.to_pandas()
    thirds[["open", "high", "low", "close"]] /= 3
    original = BarFrame.from_pandas(thirds)

    for name in ("bars.csv", "bars.csv.gz", "bars.parquet", "bars.pq"):
        loaded = load_bars([write_bars(original, tmp_path / name)])
        for column in ("ts", "symbol_code", "open", "high", "low", "close", "volume"):
            assert np.array_equal(getattr(loaded, column), getattr(original, column)), (name, column)
        assert loaded.symbols == original.symbols


# --- timestamps ----------------------------------------------------------------------------


def test_load_when_timestamps_naive_or_zoned_then_all_become_utc(tmp_path):
    path = write_csv(tmp_path / "x.csv", [
        "2024-01-02T14:31:00,A,1,1,1,1,1",            # naive: UTC
        "2024-01-02T09:31:00-05:00,B,1,1,1,1,1",      # New York winter time
        "2024-01-02T15:31:00+01:00,C,1,1,1,1,1",      # Paris
        "2024-01-02T14:31:00Z,D,1,1,1,1,1",
    ])

    assert load_bars([path]).ts.tolist() == [T1] * 4


def test_load_when_parquet_timestamps_zoned_or_naive_then_all_become_utc(tmp_path):
    zoned = pd.Series(pd.to_datetime(["2024-01-02 09:31"])).dt.tz_localize("America/New_York")
    write_parquet(tmp_path / "ny.parquet", timestamp=pa.array(zoned), open=[1.0], high=[1.0],
                  low=[1.0], close=[1.0], volume=[1.0])
    write_parquet(tmp_path / "utc.parquet", timestamp=pa.array([T1], pa.timestamp("ns")),
                  open=[1.0], high=[1.0], low=[1.0], close=[1.0], volume=[1.0])

    frame = load_bars([tmp_path])

    assert frame.ts.tolist() == [T1, T1]
    assert frame.symbols == ("NY", "UTC")


def test_load_when_dates_only_then_bars_at_midnight_utc(tmp_path):
    path = write_csv(tmp_path / "x.csv", ["2024-01-02,A,1,1,1,1,1", "2024-01-03,A,1,1,1,1,1"])

    stamps = pd.to_datetime(load_bars([path]).ts, utc=True)

    assert [str(s) for s in stamps] == ["2024-01-02 00:00:00+00:00", "2024-01-03 00:00:00+00:00"]


@pytest.mark.parametrize("scale", [1, 1_000, 1_000_000, 1_000_000_000], ids=["s", "ms", "us", "ns"])
def test_load_when_epoch_numbers_then_unit_follows_magnitude(tmp_path, scale):
    seconds = T1 // 1_000_000_000
    path = write_csv(tmp_path / "x.csv", [f"{seconds * scale},A,1,1,1,1,1",
                                          f"{(seconds + 60) * scale},A,1,1,1,1,1"])

    assert load_bars([path]).ts.tolist() == [T1, T1 + MINUTE]


# --- bad files -----------------------------------------------------------------------------

BAD_ROWS = [  # (replacement for the 3rd data row, i.e. line 4, and a piece of the reason)
    ("yesterday,AAA,10.5,12,10,11,150", "unparseable timestamp 'yesterday'"),
    ("2024-01-02T14:32:00Z,AAA,,12,10,11,150", "open is empty"),
    ("2024-01-02T14:32:00Z,AAA,10.5,12,10,abc,150", "close is empty or not a number ('abc')"),
    ("2024-01-02T14:32:00Z,AAA,10.5,12,10,11,NaN", "volume is empty or not a number"),
    ("2024-01-02T14:32:00Z,AAA,0,12,-1,11,150", "open 0 is not positive"),
    ("2024-01-02T14:32:00Z,AAA,10.5,9,10,9.5,150", "high 9 is below low 10"),
    ("2024-01-02T14:32:00Z,AAA,10.5,10.4,10,10.2,150", "high 10.4 is below open 10.5"),
    ("2024-01-02T14:32:00Z,AAA,10.5,11,10,11.5,150", "high 11 is below close 11.5"),
    ("2024-01-02T14:32:00Z,AAA,10.5,12,10.6,11,150", "low 10.6 is above open 10.5"),
    ("2024-01-02T14:32:00Z,AAA,10.5,12,10,9.9,150", "low 10 is above close 9.9"),
    ("2024-01-02T14:32:00Z,AAA,10.5,12,10,11,-1", "volume -1 is negative"),
    ("2024-01-02T14:31:00Z,AAA,10.5,12,10,11,150",
     "duplicate timestamp 2024-01-02T14:31:00Z for AAA (earlier bar at line 2)"),
    ("2024-01-02T14:30:00Z,AAA,10.5,12,10,11,150",
     "timestamp 2024-01-02T14:30:00Z for AAA is earlier than the bar before it"),
    ("2024-01-02T14:32:00Z,,10.5,12,10,11,150", "symbol is empty"),
]


@pytest.mark.parametrize(("row", "reason"), BAD_ROWS, ids=[r for _, r in BAD_ROWS])
def test_load_when_csv_row_is_bad_then_error_names_file_line_and_reason(tmp_path, row, reason):
    path = write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0], GOOD_ROWS[1], row, GOOD_ROWS[3]])

    with pytest.raises(BarDataError) as caught:
        load_bars([path])

    error = caught.value
    assert (error.path, error.row, error.where) == (str(path), 4, "line 4")
    assert reason in error.reason
    assert str(error).startswith(f"{path}, line 4: ")


def test_load_when_column_missing_then_error_points_at_header(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["2024-01-02,AAA,1,1,1,1"],
                     "timestamp,symbol,open,high,low,close\n")

    with pytest.raises(BarDataError, match=r"bad\.csv, line 1: missing column volume"):
        load_bars([path])


def test_load_when_two_timestamp_aliases_then_error_says_ambiguous(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["2024-01-02,09:31,1,1,1,1,1"],
                     "date,time,open,high,low,close,volume\n")

    with pytest.raises(BarDataError, match="line 1: ambiguous timestamp columns: date, time"):
        load_bars([path])


def test_load_when_several_rows_bad_then_first_one_reported_with_all_its_reasons(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [
        GOOD_ROWS[0],
        "2024-01-02T14:31:00Z,BBB,20,19,21,20,-5",   # line 3: high < low, high < open, ... volume
        "2024-01-02T14:32:00Z,AAA,,12,10,11,150",    # line 4: also bad, but later
    ])

    with pytest.raises(BarDataError) as caught:
        load_bars([path])

    assert caught.value.row == 3
    assert caught.value.reason.split("; ")[0] == "high 19 is below low 21"
    assert "volume -5 is negative" in caught.value.reason


def test_load_when_blank_lines_precede_bad_row_then_line_number_still_exact(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + GOOD_ROWS[0] + "\n\n\n" + "2024-01-02T14:32:00Z,AAA,1,1,1,-1,1\n")

    with pytest.raises(BarDataError) as caught:
        load_bars([path])

    assert caught.value.row == 5


def test_load_when_row_has_wrong_field_count_then_error_names_line(tmp_path):
    path = write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0], "2024-01-02T14:32:00Z,AAA,1,1,1"])

    with pytest.raises(BarDataError, match="line 3: expected 7 fields, found 5"):
        load_bars([path])


def test_load_when_bad_cell_is_far_past_first_block_then_its_line_is_reported(tmp_path):
    rows = [f"{T1 // 1_000_000_000 + 60 * i},AAA,10,11,9,10,100" for i in range(60_000)]
    rows[55_000] = rows[55_000].replace(",10,100", ",ten,100")

    with pytest.raises(BarDataError) as caught:
        load_bars([write_csv(tmp_path / "big.csv", rows)])

    assert caught.value.row == 55_002
    assert "close is empty or not a number ('ten')" in caught.value.reason


def test_load_when_parquet_row_is_bad_then_error_names_one_based_row(tmp_path):
    path = write_parquet(tmp_path / "bad.parquet", timestamp=[T1, T1 + MINUTE, T1 + 2 * MINUTE],
                         symbol=["A", "A", "A"], open=[1.0, 1.0, 1.0], high=[2.0, 2.0, 2.0],
                         low=[0.5, 0.5, 3.0], close=[1.0, 1.0, 1.0], volume=[1.0, 1.0, 1.0])

    with pytest.raises(BarDataError, match=r"bad\.parquet, row 3: high 2 is below low 3"):
        load_bars([path])


def test_load_when_bar_repeats_across_files_then_error_names_both_files(tmp_path):
    first = write_csv(tmp_path / "a.csv", GOOD_ROWS[:2])
    second = write_csv(tmp_path / "b.csv", [GOOD_ROWS[2], GOOD_ROWS[1]])

    with pytest.raises(BarDataError) as caught:
        load_bars([first, second])

    message = str(caught.value)
    assert message.startswith(f"{second}, line 3: duplicate bar for BBB at 2024-01-02T14:31:00Z")
    assert f"also in {first}, line 3" in message


def test_load_when_one_of_several_files_is_bad_then_call_raises_and_returns_nothing(tmp_path):
    good = write_csv(tmp_path / "a.csv", GOOD_ROWS)
    bad = write_csv(tmp_path / "b.csv", ["2024-01-02T14:31:00Z,CCC,1,1,1,1,-1"])
    result = None

    with pytest.raises(BarDataError, match="b.csv, line 2"):
        result = load_bars([good, bad])

    assert result is None
    assert issubclass(BarDataError, ValueError)


@pytest.mark.parametrize(("name", "reason"), [
    ("missing.csv", "no such file or directory"),
    ("bars.xlsx", "unsupported file type"),
    ("empty_dir", "directory holds no bar files"),
])
def test_load_when_path_is_not_a_bar_source_then_error_names_it(tmp_path, name, reason):
    path = tmp_path / name
    if name == "bars.xlsx":
        path.write_text("x")
    elif name == "empty_dir":
        path.mkdir()

    with pytest.raises(BarDataError, match=reason) as caught:
        load_bars([path])

    assert caught.value.path == str(path)


# --- BarFrame ------------------------------------------------------------------------------


def test_concat_when_frames_overlap_in_time_then_rows_sorted_and_ties_keep_frame_order():
    late = frame_of(2, "ZZZ", start=T1)
    early = frame_of(2, "AAA", start=T1 + MINUTE)
    twin = frame_of(1, "ZZZ", start=T1)

    merged = BarFrame.concat([late, early, twin])

    assert merged.symbol.tolist() == ["ZZZ", "ZZZ", "AAA", "ZZZ", "AAA"]
    assert merged.ts.tolist() == [T1, T1, T1 + MINUTE, T1 + MINUTE, T1 + 2 * MINUTE]
    assert merged.close.tolist()[:2] == [late.close[0], twin.close[0]]


def test_frame_when_built_then_arrays_are_read_only():
    frame = frame_of(3)

    with pytest.raises(ValueError, match="read-only"):
        frame.close[0] = 1.0


def test_pandas_round_trip_when_converted_then_frame_unchanged():
    frame = BarFrame.concat([frame_of(5, "AAA"), frame_of(5, "BBB")])

    back = BarFrame.from_pandas(frame.to_pandas())

    assert np.array_equal(back.ts, frame.ts) and back.symbols == frame.symbols
    assert np.array_equal(back.symbol_code, frame.symbol_code)
    assert np.array_equal(back.close, frame.close)


def test_load_when_epoch_column_read_as_text_then_nanoseconds_stay_exact(tmp_path):
    # A date in the same column forces the whole column to text; ns epochs must not pass
    # through float64 (19 digits) on the way.
    path = write_csv(tmp_path / "x.csv", [f"{T1 + 1},A,1,1,1,1,1", "2024-01-03,A,1,1,1,1,1"])

    assert load_bars([path]).ts.tolist()[0] == T1 + 1


def test_load_when_quoted_field_spans_lines_then_later_line_numbers_still_exact(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('timestamp,symbol,open,high,low,close,volume,note\n'
                    '2024-01-02T14:31:00Z,AAA,1,1,1,1,1,"two\nlines"\n'
                    '2024-01-02T14:32:00Z,AAA,1,1,1,1,-1,plain\n')

    with pytest.raises(BarDataError) as caught:
        load_bars([path])

    assert caught.value.row == 4


def test_load_when_epoch_seconds_beyond_year_2262_then_unparseable_timestamp(tmp_path):
    path = write_csv(tmp_path / "bad.csv", ["1704205860,A,1,1,1,1,1", "50000000000,A,1,1,1,1,1"])

    with pytest.raises(BarDataError, match="line 3: unparseable timestamp 50000000000"):
        load_bars([path])
