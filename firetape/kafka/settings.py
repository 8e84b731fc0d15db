"""The Kafka runtime's settings, from the environment only (containers are configured that
way; the CLI options set the same variables' values).

The settings that decide latency are here on purpose: producer linger, consumer fetch
wait and the strategy agent's commit interval (how often it flushes its outputs and
commits its input offsets).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from firetape.kafka import broker

class SettingsError(ValueError):
    """A variable has a value the runtime cannot use; the message names it."""


@dataclass(frozen=True)
class AgentSettings:
    """Everything an agent process needs besides the firetape config file."""

    bootstrap: str
    config_path: str | None = None      # firetape TOML; None: built-in defaults
    prefix: str = ""                    # topic namespace
    run_id: str = ""                    # "" : taken from the first input event
    linger_ms: int = 0
    fetch_wait_ms: int = 5
    commit_interval_s: float = 0.5
    snapshot_every: int = 10_000        # strategy state snapshot per N md.bars records; 0: off
    session_timeout_s: float = 10.0     # how soon a dead strategy worker's partitions move
    web_port: int = 0                   # 0: no faust web server (health endpoint off)
    data_dir: str = ".firetape-agents"  # faust's local state directory
    log_level: str = "warning"

    @property
    def app_id(self) -> str:
        """The faust app id (and consumer group): one per topic namespace."""
        return f"firetape-{self.prefix.strip('.') or 'main'}"

    def with_overrides(self, **values) -> AgentSettings:
        """A copy with the non-None `values` set (CLI options over the environment)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def _int(env, name: str, default: int) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected an integer") from None


def _float(env, name: str, default: float) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number") from None


def from_env(env=None) -> AgentSettings:
    """Settings from FIRETAPE_* variables and KAFKA_BOOTSTRAP (else the local broker)."""
    env = os.environ if env is None else env
    bootstrap = env.get("KAFKA_BOOTSTRAP") or broker.local_bootstrap(
        broker.BrokerConfig.from_env(env))
    return AgentSettings(
        bootstrap=bootstrap,
        config_path=env.get("FIRETAPE_CONFIG") or None,
        prefix=env.get("FIRETAPE_TOPIC_PREFIX", ""),
        run_id=env.get("FIRETAPE_RUN_ID", ""),
        linger_ms=_int(env, "FIRETAPE_LINGER_MS", 0),
        fetch_wait_ms=_int(env, "FIRETAPE_FETCH_WAIT_MS", 5),
        commit_interval_s=_float(env, "FIRETAPE_COMMIT_INTERVAL_S", 0.5),
        snapshot_every=_int(env, "FIRETAPE_SNAPSHOT_EVERY", 10_000),
        session_timeout_s=_float(env, "FIRETAPE_SESSION_TIMEOUT_S", 10.0),
        web_port=_int(env, "FIRETAPE_WEB_PORT", 0),
        data_dir=env.get("FIRETAPE_AGENT_DIR", str(Path(".firetape-agents"))),
        log_level=env.get("FIRETAPE_LOG_LEVEL", "warning"),
    )
