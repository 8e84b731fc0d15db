"""A sparse in-memory index of one partition: where every `stride`-th record starts.

Seeking by offset jumps to the block that holds the offset. Seeking by time uses, for
each block, the running maximum of ts_event (and of ts_wall) over all records up to the
end of that block. Running maxima never decrease, so a binary search finds the first
block that can hold a record at or after a time, and that stays correct even when event
times go backwards inside a partition (late data): all earlier blocks are entirely
before the time. A short forward scan inside the block finishes the seek.
"""
from __future__ import annotations

from bisect import bisect_left

DEFAULT_STRIDE = 4096


class SparseIndex:
    """Byte positions of every `stride`-th record, plus per-block running time maxima."""

    __slots__ = ("stride", "positions", "event_max", "wall_max", "next_offset", "end_position")

    def __init__(self, start_position: int, stride: int = DEFAULT_STRIDE) -> None:
        if stride < 1:
            raise ValueError(f"index stride must be >= 1, got {stride}")
        self.stride = stride
        self.positions: list[int] = []
        self.event_max: list[int] = []
        self.wall_max: list[int] = []
        # The index covers offsets below next_offset, i.e. bytes below end_position.
        self.next_offset = 0
        self.end_position = start_position

    def note(self, offset: int, position: int, ts_event: int, ts_wall: int) -> None:
        """Take in the record `offset`, which starts at byte `position`.

        Records must be noted in offset order; the caller moves `next_offset` and
        `end_position` when it has noted a run of records.
        """
        if offset % self.stride == 0:
            self.positions.append(position)
            if self.event_max:
                ts_event = max(ts_event, self.event_max[-1])
                ts_wall = max(ts_wall, self.wall_max[-1])
            self.event_max.append(ts_event)
            self.wall_max.append(ts_wall)
            return
        if ts_event > self.event_max[-1]:
            self.event_max[-1] = ts_event
        if ts_wall > self.wall_max[-1]:
            self.wall_max[-1] = ts_wall

    def locate(self, offset: int) -> tuple[int, int]:
        """(first offset, byte position) of a record at or before `offset` to scan from."""
        if offset >= self.next_offset:
            return self.next_offset, self.end_position
        block = offset // self.stride
        return block * self.stride, self.positions[block]

    def block_for_event_time(self, ts_event: int) -> tuple[int, int] | None:
        """Where to scan from for the first record with ts_event >= `ts_event`; None: no such record indexed."""
        return self._block_at(bisect_left(self.event_max, ts_event))

    def block_for_wall_time(self, ts_wall: int) -> tuple[int, int] | None:
        """Where to scan from for the first record with ts_wall >= `ts_wall`; None: no such record indexed."""
        return self._block_at(bisect_left(self.wall_max, ts_wall))

    def _block_at(self, block: int) -> tuple[int, int] | None:
        if block >= len(self.positions):
            return None
        return block * self.stride, self.positions[block]
