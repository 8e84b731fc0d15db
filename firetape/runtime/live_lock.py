"""One live session per broker account: a second one on the same account would continue
from the same run, trade on the same signals and send every order twice (each session's
client order ids are its own run's).

The lock is an flock on `RUNS/.live-<account number>.lock`, held for the session's life
and dropped by the kernel when the process ends however it ends, so a crash never leaves
a stale lock behind. It guards one runs directory on one machine: sessions on other
machines or with other `--runs` directories are not seen (the operator's part).
"""
from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AccountBusy(Exception):
    """Another live session holds the account; the message says which."""


@contextmanager
def account_lock(runs_root: Path, account_number: str, holder: str) -> Iterator[Path]:
    """Hold the account's lock for the duration (AccountBusy if another session has it).
    `holder` (e.g. the run directory) is written into the lock file for the message a
    second session gets."""
    runs_root = Path(runs_root)
    runs_root.mkdir(parents=True, exist_ok=True)
    path = runs_root / f".live-{account_number}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise AccountBusy(
            f"another live session is running on Alpaca account {account_number} "
            f"({other}); stop it first: two sessions would send every order twice "
            f"(lock: {path})") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}, {holder}\n".encode(), 0)
        yield path
    finally:
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
