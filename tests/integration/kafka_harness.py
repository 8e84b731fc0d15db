"""Helpers of the Kafka pipeline tests: the agents as subprocesses (as `firetape agent` /
`firetape agents` run them), the CLI publisher, polling a topic, and the embedded
backtest to compare with."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from firetape.kafka.readback import Record, read_topic

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "sample" / "bars.csv"
DEMO_CONFIG = REPO / "config" / "demo.toml"
WAIT_S = 90.0


def agent_env(bootstrap: str, prefix: str, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CLICKHOUSE_URL", None)               # the audit agent: chdb in the workdir
    env.update(KAFKA_BOOTSTRAP=bootstrap, FIRETAPE_TOPIC_PREFIX=prefix,
               FIRETAPE_AUDIT_DB=str(workdir / "audit-db"),
               FIRETAPE_CONFIG=str(DEMO_CONFIG), FIRETAPE_AGENT_DIR=str(workdir / "agents"),
               FIRETAPE_WEB_PORT="0", FIRETAPE_COMMIT_INTERVAL_S="0.2",
               FIRETAPE_SESSION_TIMEOUT_S="6",
               # strategy state snapshots often enough that a restart starts from one
               FIRETAPE_SNAPSHOT_EVERY="40")
    return env


class AgentProcess:
    """`firetape <args>` in a subprocess for the duration of a with-block (SIGTERM, then
    SIGKILL); its output goes to a log file named in failures."""

    def __init__(self, bootstrap: str, prefix: str, workdir: Path, *args: str) -> None:
        self.args = args
        self.env = agent_env(bootstrap, prefix, workdir)
        self.log_path = workdir / f"{'-'.join(args)}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> AgentProcess:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "firetape.cli", *self.args],
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        cwd=REPO)
        log.close()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as in a crashed container."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()

    def restart_if_exited(self) -> None:
        """What a supervisor (compose's restart policy) does for a worker that exited."""
        if self.process is not None and self.process.poll() is not None:
            self.restarts += 1
            self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def publish_cli(bootstrap: str, prefix: str, speed: str = "max", wait: bool = True):
    """`firetape publish --data <sample>`; waits for it unless `wait` is False."""
    env = agent_env(bootstrap, prefix, Path("/tmp"))
    command = [sys.executable, "-m", "firetape.cli", "publish", "--data", str(SAMPLE),
               "--speed", speed]
    if wait:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, timeout=120)
        assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
        return done
    # Not waited for here: no pipe that nobody reads (and that pytest would report).
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def wait_for_count(bootstrap: str, topic: str, count: int, timeout: float = WAIT_S,
                   agents: tuple[AgentProcess, ...] = (),
                   supervise: bool = False) -> list[Record]:
    """The records of `topic` once it has at least `count` (AssertionError after
    `timeout`, with the agents' output). With `supervise`, an agent that exited is
    started again meanwhile."""
    deadline = time.monotonic() + timeout
    records: list[Record] = []
    while time.monotonic() < deadline:
        if supervise:
            for agent in agents:
                agent.restart_if_exited()
        records = asyncio.run(read_topic(bootstrap, topic))
        if len(records) >= count:
            return records
        time.sleep(0.5)
    logs = "\n".join(f"--- {a.args}:\n{a.output()}" for a in agents)
    raise AssertionError(f"{topic}: {len(records)} records after {timeout:.0f} s, "
                         f"expected {count}\n{logs}")


@dataclass
class Reference:
    """The embedded backtest of the sample with the demo config."""

    bars: int
    counts: dict[str, int]
    digests: dict[str, str]
    run_dir: Path

    def values(self, topic: str) -> list[bytes]:
        from firetape.eventlog import EventLog

        with EventLog(self.run_dir / "log", mode="r") as log:
            return [bytes(r.value) for r in log.read(topic)]


def embedded_run(runs: Path) -> Reference:
    from connectors.files import load_bars
    from firetape.config import load_config
    from firetape.runtime.session import run_session

    config = load_config(DEMO_CONFIG, environ={})
    result = run_session(load_bars([SAMPLE]), config, runs, sources=(str(SAMPLE),))
    return Reference(result.bars, result.counts, result.digests, result.run_dir)


# In a subprocess: chdb serves one database directory per process, and this pytest
# process may have opened another one in an earlier test.
_QUERY = """
import json, sys
from firetape.audit.store import open_store
with open_store(db=sys.argv[1], read_only=True) as store:
    rows = store.query_rows("SELECT topic, count(), uniqExact(event_id) FROM events FINAL "
                            "GROUP BY topic ORDER BY topic")
    raw = store.scalar("SELECT count() FROM events")
print(json.dumps({"topics": {r[0]: [int(r[1]), int(r[2])] for r in rows}, "raw": int(raw)}))
"""


def audit_counts(db) -> dict:
    """Per topic of the audit's `events` table: [rows, distinct event ids] (FINAL), and
    the rows before deduplication."""
    done = subprocess.run([sys.executable, "-c", _QUERY, str(db)], cwd=REPO,
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return json.loads(done.stdout)


async def _audit_behind(bootstrap: str, group: str, targets: dict) -> dict:
    """(topic, partition) -> how far `group`'s committed offset is short of its target."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        behind = {}
        for (topic, partition), target in targets.items():
            committed = await consumer.committed(TopicPartition(topic, partition)) or 0
            if committed < target:
                behind[(topic, partition)] = target - committed
        return behind
    finally:
        await consumer.stop()


def wait_audit_caught_up(bootstrap: str, group: str, targets: dict, agent: AgentProcess,
                    timeout: float = 120.0) -> None:
    """Until the audit agent's group has committed up to `targets` ((topic, partition)
    -> offset after its last record)."""
    deadline = time.monotonic() + timeout
    behind = {}
    while time.monotonic() < deadline:
        behind = asyncio.run(_audit_behind(bootstrap, group, targets))
        if not behind:
            return
        time.sleep(1.0)
    raise AssertionError(f"audit still behind after {timeout:.0f} s: {behind}\n"
                         f"{agent.output()}")
