"""One live session per broker account (firetape/runtime/live_lock.py)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from firetape.runtime.live_lock import AccountBusy, account_lock


def test_account_lock_when_held_then_a_second_session_is_refused_naming_the_first(tmp_path):
    with account_lock(tmp_path, "PA123", "runs/first") as path:
        with pytest.raises(AccountBusy, match=r"account PA123 \(pid \d+, runs/first\).*twice"):
            with account_lock(tmp_path, "PA123", "runs/second"):
                pass
        assert "runs/first" in path.read_text()
        # another account is another lock
        with account_lock(tmp_path, "PA999", "runs/other"):
            pass
    # released: the next session takes it
    with account_lock(tmp_path, "PA123", "runs/third"):
        pass


def test_account_lock_when_holder_process_is_killed_then_the_lock_is_free(tmp_path):
    # The kernel drops an flock with its process: a crashed session leaves nothing behind.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from firetape.runtime.live_lock import account_lock\n"
         f"with account_lock({str(tmp_path)!r}, 'PA123', 'runs/crashing'):\n"
         "    print('held', flush=True); time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AccountBusy, match="runs/crashing"):
            with account_lock(tmp_path, "PA123", "runs/second"):
                pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with account_lock(tmp_path, "PA123", "runs/after-crash"):
        pass
