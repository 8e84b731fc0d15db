"""The durable local event log: round trips, recovery of torn tails, seeks, digests."""
from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from firetape.eventlog import (CorruptLogError, EventLog, LogLockedError, ReadOnlyLogError,
                               Record, merge_partitions)
from firetape.eventlog.layout import FILE_HEADER_SIZE, MAX_RECORD_BYTES, record_size

T0 = 1_704_205_800_000_000_000
SECOND = 1_000_000_000


def fill_partition(log: EventLog, count: int, topic: str = "md.bars", partition: int = 0,
                   ts_step: int = SECOND) -> list[tuple[bytes, bytes, int, int]]:
    """Append `count` distinct records of varied sizes; return what was appended."""
    rows = [(f"SYM{i % 7}".encode(), f"value-{i}-".encode() * (1 + i % 5), T0 + i * ts_step,
             T0 + 10 * i) for i in range(count)]
    for key, value, ts_event, ts_wall in rows:
        log.append(topic, partition, key, value, ts_event, ts_wall)
    return rows


def as_rows(records) -> list[tuple[bytes, bytes, int, int]]:
    return [(r.key, r.value, r.ts_event, r.ts_wall) for r in records]


def partition_file(root: Path, topic: str = "md.bars", partition: int = 0) -> Path:
    return root / topic / f"{partition}.log"


def record_ends(log_root: Path, topic: str = "md.bars", partition: int = 0) -> list[int]:
    """Byte position where each record of a (closed) partition file ends."""
    with EventLog(log_root, "r") as log:
        ends, position = [], FILE_HEADER_SIZE
        for record in log.read(topic, partition):
            position += record_size(record)
            ends.append(position)
    return ends


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "log"


@pytest.fixture
def ten_records(root: Path) -> list[tuple[bytes, bytes, int, int]]:
    """A closed log with ten records in md.bars[0]."""
    with EventLog(root) as log:
        return fill_partition(log, 10)


# --- round trip --------------------------------------------------------------------------

def test_read_when_several_topics_and_partitions_appended_then_each_reads_back_as_written(root):
    written = {}
    with EventLog(root) as log:
        for topic in ("md.bars", "order.requests", "fills"):
            for partition in (0, 1, 3):
                written[topic, partition] = fill_partition(log, 25, topic, partition)
    with EventLog(root, "r") as log:
        assert log.topics() == ["fills", "md.bars", "order.requests"]
        assert log.partitions("md.bars") == [0, 1, 3]
        for (topic, partition), rows in written.items():
            records = list(log.read(topic, partition))
            assert as_rows(records) == rows
            assert {(r.topic, r.partition) for r in records} == {(topic, partition)}


def test_append_when_records_added_then_offsets_contiguous_from_zero_per_partition(root):
    with EventLog(root) as log:
        offsets = {p: [log.append("signals", p, b"k", b"v", T0, T0) for _ in range(50)]
                   for p in (0, 1)}
        assert offsets == {0: list(range(50)), 1: list(range(50))}
        assert [r.offset for r in log.read("signals", 1)] == list(range(50))
        assert log.end_offset("signals", 1) == 50
        assert log.end_offset("signals", 7) == 0


def test_read_when_partition_is_none_then_partitions_ascending_each_in_offset_order(root):
    with EventLog(root) as log:
        for partition in (2, 0, 1):
            fill_partition(log, 3, "orders", partition)
        order = [(r.partition, r.offset) for r in log.read("orders")]
    assert order == [(p, o) for p in (0, 1, 2) for o in range(3)]


def test_read_when_records_still_buffered_then_they_are_flushed_and_included(root):
    with EventLog(root) as log:
        rows = fill_partition(log, 5)
        assert partition_file(root).stat().st_size == FILE_HEADER_SIZE
        assert as_rows(log.read("md.bars", 0)) == rows


def test_read_when_start_offset_given_then_reading_starts_there(root):
    with EventLog(root, index_stride=8) as log:
        rows = fill_partition(log, 100)
    with EventLog(root, "r", index_stride=8) as log:
        for start in (0, 1, 7, 8, 9, 63, 64, 99):
            assert as_rows(log.read("md.bars", 0, start)) == rows[start:]
        assert list(log.read("md.bars", 0, 100)) == []
        assert list(log.read("md.bars", 0, 1000)) == []
        assert list(log.read("no.such.topic")) == []


def test_append_many_when_batch_given_then_offsets_returned_and_records_stored(root):
    rows = [(b"AAA", b"x" * i, T0 + i, T0) for i in range(10)]
    with EventLog(root) as log:
        log.append("md.bars", 0, b"first", b"", T0, T0)
        assert log.append_many("md.bars", 0, rows) == range(1, 11)
        assert as_rows(log.read("md.bars", 0, 1)) == rows


def test_crc_when_computed_by_zlib_ng_then_equal_to_zlib_crc32():
    """The log's CRC is zlib's CRC-32 whichever library computes it: files stay readable
    by a build without zlib-ng, and logs written before it read as they always did."""
    import zlib

    from firetape.eventlog.checksum import crc32
    for size in (0, 1, 28, 61, 430, 2_600, 70_000):
        data = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        assert crc32(data) == zlib.crc32(data)


def test_append_when_records_cross_flushes_then_every_byte_reads_back(root):
    rows = [(f"K{i % 7}".encode(), bytes([i % 251]) * (i * 37 % 3_000), T0 + i, T0 + 2 * i)
            for i in range(400)]
    with EventLog(root, flush_bytes=4_096) as log:
        for key, value, ts_event, ts_wall in rows[:150]:
            log.append("md.bars", 0, key, value, ts_event, ts_wall)
        assert log.append_many("md.bars", 0, rows[150:]) == range(150, 400)
    with EventLog(root, "r") as log:
        assert as_rows(log.read("md.bars", 0)) == rows


def test_append_when_value_buffer_reused_then_each_record_keeps_its_own_bytes(root):
    scratch = bytearray()
    with EventLog(root) as log:
        for value in (b"first value", b"2nd", b"a third, longer value"):
            scratch[:] = value
            log.append("md.bars", 0, b"k", scratch, T0, T0)
        scratch[:] = b"overwritten"
        assert [r.value for r in log.read("md.bars", 0)] == [
            b"first value", b"2nd", b"a third, longer value"]


def test_append_when_buffer_passes_flush_threshold_then_records_reach_the_file(root):
    with EventLog(root, flush_bytes=1024) as log:
        fill_partition(log, 200)
        assert partition_file(root).stat().st_size > 1024


# --- reopen, modes, errors ---------------------------------------------------------------

def test_open_when_log_exists_then_appends_continue_after_the_last_offset(root, ten_records):
    with EventLog(root) as log:
        assert log.recovered == []
        assert log.append("md.bars", 0, b"k", b"eleventh", T0, T0) == 10
    with EventLog(root, "r") as log:
        records = list(log.read("md.bars", 0))
    assert as_rows(records[:10]) == ten_records
    assert records[10].value == b"eleventh"


def test_append_when_log_is_read_only_then_refused(root, ten_records):
    with EventLog(root, "r") as log:
        with pytest.raises(ReadOnlyLogError):
            log.append("md.bars", 0, b"k", b"v", T0, T0)
        with pytest.raises(ReadOnlyLogError):
            log.append("new.topic", 0, b"k", b"v", T0, T0)
    assert not (root / "new.topic").exists()


def test_open_when_another_writer_holds_the_directory_then_locked_error(root):
    with EventLog(root):
        with pytest.raises(LogLockedError):
            EventLog(root)
        with EventLog(root, "r") as reader:
            assert reader.topics() == []


def test_open_read_only_when_directory_missing_then_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        EventLog(tmp_path / "nothing", "r")


def test_open_when_file_is_not_an_event_log_then_corrupt_log_error_and_file_untouched(root):
    (root / "md.bars").mkdir(parents=True)
    foreign = partition_file(root)
    foreign.write_bytes(b"PAR1 definitely not ours")
    with pytest.raises(CorruptLogError, match="bad magic"):
        EventLog(root)
    assert foreign.read_bytes() == b"PAR1 definitely not ours"
    foreign.unlink()
    with EventLog(root) as log:  # the failed open released the directory lock
        assert log.topics() == []


def test_append_when_topic_name_is_invalid_then_value_error(root):
    with EventLog(root) as log:
        for bad in ("", "..", "a/b", "md bars"):
            with pytest.raises(ValueError):
                log.append(bad, 0, b"k", b"v", T0, T0)
        with pytest.raises(ValueError):
            log.append("md.bars", -1, b"k", b"v", T0, T0)


def test_append_when_record_exceeds_the_size_limit_then_value_error_and_offset_unused(root):
    with EventLog(root) as log:
        with pytest.raises(ValueError, match="exceeds"):
            log.append("md.bars", 0, b"k", b"x" * MAX_RECORD_BYTES, T0, T0)
        assert log.append("md.bars", 0, b"k", b"small", T0, T0) == 0


def test_append_when_ts_wall_omitted_then_wall_clock_is_recorded(root):
    with EventLog(root) as log:
        log.append("md.bars", 0, b"k", b"v", T0)
        (record,) = log.read("md.bars", 0)
    assert record.ts_wall > T0  # written after 2024-01-02


# --- digests -----------------------------------------------------------------------------

def write_content(root: Path, wall_offset: int, values=(b"a", b"b", b"c"), partition: int = 0):
    with EventLog(root) as log:
        for i, value in enumerate(values):
            log.append("fills", partition, b"paper", value, T0 + i, T0 + wall_offset + i)
        return log.digests()


def test_digest_when_only_wall_time_differs_then_digests_equal(tmp_path):
    assert write_content(tmp_path / "a", 0) == write_content(tmp_path / "b", 123_456_789)


def test_digest_when_a_value_differs_then_digests_differ(tmp_path):
    assert write_content(tmp_path / "a", 0) != write_content(tmp_path / "b", 0, (b"a", b"b", b"C"))


def test_digest_when_bytes_move_between_key_and_value_then_digests_differ(tmp_path):
    with EventLog(tmp_path / "a") as one, EventLog(tmp_path / "b") as other:
        one.append("fills", 0, b"ab", b"c", T0, T0)
        other.append("fills", 0, b"a", b"bc", T0, T0)
        assert one.digest("fills") != other.digest("fills")


def test_digest_when_same_records_in_another_partition_then_digests_differ(tmp_path):
    assert write_content(tmp_path / "a", 0) != write_content(tmp_path / "b", 0, partition=1)


def test_digest_when_reopened_read_only_then_unchanged(root):
    digests = write_content(root, 0)
    with EventLog(root, "r") as log:
        assert log.digests() == digests
        assert log.digest("unknown.topic") == hashlib.sha256().hexdigest()


# --- recovery ----------------------------------------------------------------------------

@pytest.mark.parametrize("bytes_short", [1, 2, 7, 8, 9, 20, 36, 40])
def test_open_when_tail_torn_mid_record_then_cut_and_earlier_records_intact(
        root, ten_records, bytes_short):
    ends = record_ends(root)
    path = partition_file(root)
    with open(path, "r+b") as file:
        file.truncate(ends[-1] - bytes_short)
    with capture_logs() as logs, EventLog(root) as log:
        (recovery,) = log.recovered
        assert as_rows(log.read("md.bars", 0)) == ten_records[:9]
        assert log.append("md.bars", 0, b"k", b"after recovery", T0, T0) == 9
    assert recovery.position == ends[-2]
    assert recovery.bytes_cut == ends[-1] - bytes_short - ends[-2]
    assert recovery.next_offset == 9 and recovery.truncated
    assert Path(recovery.quarantine).stat().st_size == recovery.bytes_cut
    assert any(e["event"] == "eventlog.tail_cut" and e["log_level"] == "warning" for e in logs)
    with EventLog(root, "r") as log:
        assert log.recovered == []
        assert [r.value for r in log.read("md.bars", 0)][-1] == b"after recovery"


def test_open_read_only_when_tail_torn_then_file_unchanged_and_reads_stop_before_it(
        root, ten_records):
    path = partition_file(root)
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size - 5)
    size = path.stat().st_size
    with EventLog(root, "r") as log:
        (recovery,) = log.recovered
        assert as_rows(log.read("md.bars", 0)) == ten_records[:9]
        assert log.end_offset("md.bars", 0) == 9
    assert not recovery.truncated and recovery.reason == "short record"
    assert path.stat().st_size == size


def test_read_only_first_read_streams_without_a_scan_and_reports_a_torn_tail(
        root, ten_records):
    """A read from offset 0 before anything needed the index reads the file once: the
    same records, stopping before the torn tail, which it reports like the scan would."""
    path = partition_file(root)
    with open(path, "r+b") as file:
        file.truncate(path.stat().st_size - 5)
    with capture_logs() as logs, EventLog(root, "r") as log:
        partition = log.partition_log("md.bars", 0)
        assert as_rows(log.read("md.bars", 0)) == ten_records[:9]
        assert not partition._scanned
        assert any(e["event"] == "eventlog.tail_unreadable" for e in logs)
        (recovery,) = log.recovered
        assert recovery.reason == "short record" and recovery.next_offset == 9
        assert log.end_offset("md.bars", 0) == 9
        assert as_rows(log.read("md.bars", 0, 4)) == ten_records[4:9]
    assert sum(e["event"] == "eventlog.tail_unreadable" for e in logs) == 1


def test_open_when_last_record_has_a_flipped_byte_then_crc_mismatch_cuts_it(root, ten_records):
    path = partition_file(root)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    with EventLog(root) as log:
        (recovery,) = log.recovered
        assert recovery.reason == "crc mismatch"
        assert as_rows(log.read("md.bars", 0)) == ten_records[:9]


def test_open_when_a_middle_record_is_corrupt_then_log_ends_before_it_and_rest_is_quarantined(
        root, ten_records):
    # Documented behaviour: nothing after a bad record is trusted (its framing may be
    # wrong), so the readable log ends there; the cut bytes are kept in a quarantine file.
    ends = record_ends(root)
    path = partition_file(root)
    raw = bytearray(path.read_bytes())
    raw[ends[3] + 20] ^= 0xFF  # inside record 4's ts_event
    path.write_bytes(bytes(raw))
    with EventLog(root) as log:
        (recovery,) = log.recovered
        assert as_rows(log.read("md.bars", 0)) == ten_records[:4]
        assert log.end_offset("md.bars", 0) == 4
    assert Path(recovery.quarantine).read_bytes() == bytes(raw[ends[3]:])


def test_open_when_a_record_carries_the_wrong_offset_then_cut_as_not_contiguous(root):
    with EventLog(root) as log:
        log.append("md.bars", 0, b"k", b"v", T0, T0)
    with EventLog(tmp := root.parent / "other") as donor:
        donor.append("md.bars", 0, b"k", b"zero", T0, T0)
        donor.append("md.bars", 0, b"k", b"one", T0, T0)
    # A valid record with offset 1 from another file, appended where offset 1 belongs...
    donor_raw = partition_file(tmp).read_bytes()
    first_end = record_ends(tmp)[0]
    with open(partition_file(root), "ab") as file:
        file.write(donor_raw[first_end:])
        file.write(donor_raw[first_end:])  # ...and again, where offset 2 belongs
    with EventLog(root) as log:
        (recovery,) = log.recovered
        assert [r.value for r in log.read("md.bars", 0)] == [b"v", b"one"]
    assert recovery.reason == "offset not contiguous" and recovery.next_offset == 2


def test_open_when_file_creation_was_torn_inside_the_header_then_header_rewritten(root):
    (root / "md.bars").mkdir(parents=True)
    partition_file(root).write_bytes(b"FTL")
    with EventLog(root) as log:
        (recovery,) = log.recovered
        assert recovery.reason == "torn header"
        assert log.append("md.bars", 0, b"k", b"v", T0, T0) == 0
    with EventLog(root, "r") as log:
        assert [r.value for r in log.read("md.bars", 0)] == [b"v"]


def test_open_when_zero_bytes_appended_by_a_crash_then_bad_length_cut(root, ten_records):
    with open(partition_file(root), "ab") as file:
        file.write(bytes(4096))  # what some file systems leave after a crash
    with EventLog(root) as log:
        (recovery,) = log.recovered
        assert recovery.reason == "bad length" and recovery.bytes_cut == 4096
        assert as_rows(log.read("md.bars", 0)) == ten_records


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=30), data=st.data())
def test_open_when_file_cut_at_any_byte_then_only_whole_original_records_are_read(sizes, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "log"
        with EventLog(root) as log:
            rows = [(b"k%d" % i, bytes([i % 256]) * size, T0 + i, T0 - i)
                    for i, size in enumerate(sizes)]
            for row in rows:
                log.append("md.bars", 0, *row)
        ends = record_ends(root)
        cut = data.draw(st.integers(FILE_HEADER_SIZE, ends[-1]), label="cut")
        with open(partition_file(root), "r+b") as file:
            file.truncate(cut)
        whole = sum(1 for end in ends if end <= cut)
        with EventLog(root, "r") as log:
            assert as_rows(log.read("md.bars", 0)) == rows[:whole]
        with EventLog(root) as log:
            assert as_rows(log.read("md.bars", 0)) == rows[:whole]
            assert log.append("md.bars", 0, b"next", b"", T0, T0) == whole


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 100), min_size=1, max_size=20), data=st.data())
def test_open_when_any_byte_is_corrupted_then_reads_are_a_prefix_of_the_originals(sizes, data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "log"
        with EventLog(root) as log:
            rows = [(b"k", bytes([i % 256]) * size, T0 + i, T0) for i, size in enumerate(sizes)]
            for row in rows:
                log.append("md.bars", 0, *row)
        path = partition_file(root)
        raw = bytearray(path.read_bytes())
        where = data.draw(st.integers(FILE_HEADER_SIZE, len(raw) - 1), label="where")
        raw[where] ^= data.draw(st.integers(1, 255), label="flip")
        path.write_bytes(bytes(raw))
        with EventLog(root, "r") as log:
            read = as_rows(log.read("md.bars", 0))
        assert read == rows[:len(read)] and len(read) < len(rows)


# --- seeks -------------------------------------------------------------------------------

def test_offset_for_time_when_times_ascend_then_first_record_at_or_after_the_time(root):
    with EventLog(root, index_stride=16) as log:
        rows = fill_partition(log, 200)
        for ts, expected in ((T0 - 1, 0), (T0, 0), (T0 + 1, 1), (T0 + 37 * SECOND, 37),
                             (T0 + 199 * SECOND, 199), (T0 + 200 * SECOND, 200)):
            assert log.offset_for_time("md.bars", 0, ts) == expected
        assert next(log.read("md.bars", 0, log.offset_for_time("md.bars", 0, rows[50][2]))).ts_event \
            == rows[50][2]


def test_offset_for_time_when_event_times_go_backwards_then_same_as_a_full_scan(root):
    times = [T0 + ((i * 7919) % 301) * SECOND for i in range(300)]
    with EventLog(root, index_stride=16) as log:
        for ts in times:
            log.append("md.bars", 0, b"k", b"v", ts, T0)
    with EventLog(root, "r", index_stride=16) as log:
        for probe in range(-1, 303, 5):
            target = T0 + probe * SECOND
            expected = next((i for i, ts in enumerate(times) if ts >= target), len(times))
            assert log.offset_for_time("md.bars", 0, target) == expected


def test_offset_for_wall_time_when_searched_then_first_record_appended_at_or_after(root):
    with EventLog(root, index_stride=16) as log:
        fill_partition(log, 100)  # ts_wall = T0 + 10 * offset
        assert log.offset_for_wall_time("md.bars", 0, T0 + 10 * 42) == 42
        assert log.offset_for_wall_time("md.bars", 0, T0 + 10 * 42 - 3) == 42
        assert log.offset_for_wall_time("md.bars", 0, T0 + 10_000) == 100


def test_offset_for_time_when_appended_after_a_seek_then_new_records_are_found(root):
    with EventLog(root, index_stride=4) as log:
        fill_partition(log, 10)
        assert log.offset_for_time("md.bars", 0, T0 + 15 * SECOND) == 10
        for i in range(10, 20):
            log.append("md.bars", 0, b"k", b"v", T0 + i * SECOND, T0)
        assert log.offset_for_time("md.bars", 0, T0 + 15 * SECOND) == 15


# --- replay order ------------------------------------------------------------------------

def test_merge_partitions_when_times_interleave_then_ordered_by_time_partition_offset(root):
    with EventLog(root) as log:
        for partition, times in ((0, [1, 3, 3, 5]), (1, [0, 3, 4]), (2, [3, 9])):
            for ts in times:
                log.append("md.bars", partition, b"k", b"v", ts, T0)
        merged = [(r.ts_event, r.partition, r.offset) for r in merge_partitions(log, "md.bars")]
    assert merged == [(0, 1, 0), (1, 0, 0), (3, 0, 1), (3, 0, 2), (3, 1, 1), (3, 2, 0),
                      (4, 1, 2), (5, 0, 3), (9, 2, 1)]


def test_merge_partitions_when_topic_unknown_then_empty(root):
    with EventLog(root) as log:
        assert list(merge_partitions(log, "md.bars")) == []


def test_record_when_read_then_is_an_immutable_tuple_with_named_fields(root):
    with EventLog(root) as log:
        log.append("md.bars", 2, b"AAA", b"{}", T0, T0 + 5)
        (record,) = log.read("md.bars")
    assert record == Record("md.bars", 2, 0, T0, T0 + 5, b"AAA", b"{}")
    with pytest.raises(AttributeError):
        record.value = b"changed"
