"""The Kafka runtime's composition root: builds a faust App and registers the agents asked
for on it. Called by the CLI (`firetape agent NAME`, `firetape agents`); no module keeps an
app, so tests and several workers in one interpreter never share one by accident.

Agents:
  feed      publishes FIRETAPE_FEED_DATA to md.bars at FIRETAPE_FEED_SPEED, then idles
  strategy  md.bars -> strategy.evaluated + signals (scales by md.bars partitions)
  account   risk, execution, portfolio and allocator of the config's account, over one
            merged, ordered stream (one worker per account)
  audit     every registry topic -> ClickHouse (CLICKHOUSE_URL, else chdb in
            FIRETAPE_AUDIT_DB), committing offsets only for stored records
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import faust

from firetape.config import FiretapeConfig
from firetape.kafka.agents import register_account, register_audit, register_strategy
from firetape.kafka.settings import AgentSettings

AGENTS = ("feed", "strategy", "account", "audit")
# The embedded stages that run inside the account agent; asking for one of them by name
# gets the account agent (they cannot run apart without losing the one ordered stream).
ACCOUNT_STAGES = ("risk", "execution", "portfolio", "allocator")
log = logging.getLogger(__name__)


def agent_name(name: str) -> str:
    """The agent that runs `name` (a stage name maps to its agent); ValueError if none."""
    if name in AGENTS:
        return name
    if name in ACCOUNT_STAGES:
        return "account"
    raise ValueError(f"unknown agent {name!r}; agents: {', '.join(AGENTS)} "
                     f"({', '.join(ACCOUNT_STAGES)} run inside 'account')")


def create_app(settings: AgentSettings, config: FiretapeConfig, names: tuple[str, ...]) -> faust.App:
    """A faust App with the agents `names` registered on it."""
    names = tuple(dict.fromkeys(agent_name(n) for n in names))
    worker_id = "-".join(names)
    datadir = Path(settings.data_dir) / worker_id
    datadir.mkdir(parents=True, exist_ok=True)   # faust makes only the last level
    # No faust streams or tables: each agent runs its own aiokafka clients (agents.py), so
    # the worker's own consumer group subscribes to nothing; its id differs from the
    # agents' groups (they use other assignors).
    app = faust.App(
        f"{settings.app_id}-{worker_id}",
        broker=[f"kafka://{host}" for host in settings.bootstrap.split(",")],
        store="memory://",                     # no tables: agents rebuild state from topics
        key_serializer="raw", value_serializer="raw",
        table_standby_replicas=0,
        topic_replication_factor=1,
        topic_partitions=8,
        web_enabled=settings.web_port > 0,
        web_port=settings.web_port or 6066,
        web_bind="0.0.0.0",
        datadir=str(datadir),
    )
    if "strategy" in names:
        register_strategy(app, settings, config)
    if "account" in names:
        register_account(app, settings, config)
    if "audit" in names:
        register_audit(app, settings)
    if "feed" in names:
        _register_feed(app, settings)
    _register_health(app, names)
    return app


def _register_feed(app: faust.App, settings: AgentSettings) -> None:
    from firetape.kafka.feed_task import publish_configured_file

    @app.task
    async def feed() -> None:
        await publish_configured_file(settings, os.environ)


def _register_health(app: faust.App, names: tuple[str, ...]) -> None:
    @app.page("/health")
    async def health(web, request):
        # Up means: the worker's services started and it has not crashed. Docker's health
        # check polls this; a crashed worker exits anyway and is restarted by its policy.
        ok = not app.crashed
        return web.json({"ok": ok, "agents": list(names)}, status=200 if ok else 503)


class _Worker(faust.Worker):
    """faust's worker with the root logger left at the configured level.

    faust installs a terminal spinner handler and sets the root logger to DEBUG for it, so
    every debug call of aiokafka and faust built a log record only to drop it at the
    handler: about 8% of the agents' CPU (py-spy, bench_kafka.py)."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        logger.setLevel(level)


def run_worker(app: faust.App, settings: AgentSettings) -> None:
    """Run `app` as a faust worker until SIGTERM/SIGINT (blocks; exits the process)."""
    worker = _Worker(app, loglevel=settings.log_level.upper(), quiet=True,
                     redirect_stdouts=False)
    worker.execute_from_commandline()
