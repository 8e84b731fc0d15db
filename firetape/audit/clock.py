"""Where the hop timestamps come from: the host and a description of its clock.

Every hop is stamped with `time.time_ns()` (CLOCK_REALTIME). Regulators ask how far that
clock may be from UTC, so each row records the host and the clock behind the stamp: the
kernel's clock source and whether the kernel reports the clock as synchronised (by NTP,
chrony or PTP through adjtimex). It is read once per process; none of it is secret.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import socket
from functools import cache
from pathlib import Path

_CLOCKSOURCE = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
_TIME_ERROR = 5   # adjtimex(2): the clock is not synchronised


@cache
def host_name() -> str:
    """This machine's host name."""
    return socket.gethostname()


def _kernel_clocksource() -> str:
    try:
        return _CLOCKSOURCE.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def _sync_state() -> str:
    """'synced' or 'unsynced' as adjtimex(2) reports it; 'unknown' where it cannot be read."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        # struct timex is 208 bytes on 64-bit Linux; modes = 0 only reads the state.
        buffer = ctypes.create_string_buffer(512)
        state = libc.adjtimex(buffer)
    except (OSError, AttributeError):
        return "unknown"
    if state < 0:
        return "unknown"
    return "unsynced" if state == _TIME_ERROR else "synced"


@cache
def clock_source() -> str:
    """e.g. 'CLOCK_REALTIME;kernel=tsc;sync=synced'."""
    return f"CLOCK_REALTIME;kernel={_kernel_clocksource()};sync={_sync_state()}"
