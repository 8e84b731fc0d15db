"""Click commands for Kafka: `kafka up|down|status` and `topics create|check`.

The objects are attached to the main `firetape` CLI by its composition root; run alone as
`python -m firetape.kafka.cli kafka up` (or `... topics check`) for testing.
Expected failures (no Java, fetch failed, port busy, timeout, unreachable cluster) print one
clear message and exit 1, without a traceback.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import click

from firetape.kafka import admin, broker


@contextmanager
def _reported_failures():
    # ClickException prints "Error: <message>" and exits 1: no traceback for what we expect.
    try:
        yield
    except (broker.BrokerError, admin.TopicAdminError) as error:
        raise click.ClickException(str(error)) from None


def _config() -> broker.BrokerConfig:
    with _reported_failures():
        return broker.BrokerConfig.from_env()


def _external_notice(bootstrap: str) -> str:
    return f"KAFKA_BOOTSTRAP is set ({bootstrap}): the external cluster is used, nothing local"


@click.group("kafka")
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for development and tests.

    Jars are cached in FIRETAPE_KAFKA_HOME (default ~/.cache/firetape/kafka), data lives in
    FIRETAPE_KAFKA_DIR (default ./.kafka), the broker listens on 127.0.0.1:FIRETAPE_KAFKA_PORT
    (default 9092). With KAFKA_BOOTSTRAP set, that cluster is used instead.
    """


@kafka.command("up")
@click.option("--timeout", type=click.FloatRange(min=1), default=broker.START_TIMEOUT_S,
              show_default=True, help="Seconds to wait for the broker to answer.")
def up(timeout: float) -> None:
    """Fetch (first time only), format (first time only) and start the local broker."""
    external = broker.external_bootstrap()
    if external:
        click.echo(_external_notice(external) + " is started.")
        return
    config = _config()
    pid = broker.running_pid(config)
    if pid is not None:
        click.echo(f"Kafka is already running: pid {pid}, {broker.local_bootstrap(config)}")
        return
    with _reported_failures():
        broker.ensure_ports_free(config)  # before a fetch or format that would be wasted
        if not broker.is_fetched(config):
            click.echo(f"fetching Apache Kafka {config.version} from Maven Central into "
                       f"{config.lib_dir} (first time only)...")
            began = time.monotonic()
            broker.fetch(config)
            click.echo(f"fetched in {time.monotonic() - began:.1f} s")
        began = time.monotonic()
        if broker.format_storage(config):
            click.echo(f"formatted KRaft storage in {config.log_dirs} "
                       f"in {time.monotonic() - began:.1f} s")
        began = time.monotonic()
        pid = broker.start(config, timeout=timeout)
    click.echo(f"Kafka {config.version} is up: pid {pid}, bootstrap {config.bootstrap} "
               f"(answered after {time.monotonic() - began:.1f} s); log {config.log_path}")


@kafka.command("down")
@click.option("--timeout", type=click.FloatRange(min=0), default=broker.STOP_TIMEOUT_S,
              show_default=True, help="Seconds to wait after SIGTERM before SIGKILL.")
def down(timeout: float) -> None:
    """Stop the local broker (SIGTERM, then SIGKILL after the timeout)."""
    external = broker.external_bootstrap()
    if external:
        click.echo(_external_notice(external) + " is stopped.")
        return
    config = _config()
    began = time.monotonic()
    pid = broker.stop(config, timeout=timeout)
    if pid is None:
        click.echo(f"Kafka is not running (data directory {config.data_dir})")
    else:
        click.echo(f"stopped Kafka (pid {pid}) in {time.monotonic() - began:.1f} s")


@kafka.command("status")
def status() -> None:
    """Say whether Kafka runs and answers; exit 0 if it answers, 1 if not."""
    config = _config()
    with _reported_failures():
        found = broker.status(config)
    if found.external:
        state = "answering" if found.answering else "NOT answering"
        click.echo(f"external cluster (KAFKA_BOOTSTRAP): {found.bootstrap} {state}")
    elif not found.running:
        click.echo(f"Kafka {found.version} (local): not running; bootstrap would be "
                   f"{found.bootstrap}, data directory {config.data_dir}")
    else:
        state = "answering" if found.answering else "running but NOT answering"
        click.echo(f"Kafka {found.version} (local): {state} on {found.bootstrap}, "
                   f"pid {found.pid}, data directory {config.data_dir}, log {config.log_path}")
    if not found.answering:
        raise SystemExit(1)


_BOOTSTRAP_HELP = ("Kafka bootstrap servers (host:port,...). Default: KAFKA_BOOTSTRAP, "
                   "else the local broker.")


def _bootstrap_or_local(bootstrap: str | None) -> str:
    return bootstrap or broker.local_bootstrap(_config())


@click.command("create")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", default=None, help=_BOOTSTRAP_HELP)
@click.option("--replication-factor", type=click.IntRange(min=1), default=1,
              show_default=True, help="Replicas of each new topic (1 for a single broker).")
def topics_create(bootstrap: str | None, replication_factor: int) -> None:
    """Create every topic of topics.REGISTRY that does not exist yet (idempotent)."""
    bootstrap = _bootstrap_or_local(bootstrap)
    with _reported_failures():
        result = admin.create_topics(bootstrap, replication_factor=replication_factor)
    if result.created:
        click.echo(f"created {len(result.created)} topics on {bootstrap}: "
                   + ", ".join(result.created))
    if result.existing:
        click.echo(f"{len(result.existing)} topics already existed (left as they are; "
                   "`topics check` shows drift): " + ", ".join(result.existing))


@click.command("check")
@click.option("--bootstrap", envvar="KAFKA_BOOTSTRAP", default=None, help=_BOOTSTRAP_HELP)
def topics_check(bootstrap: str | None) -> None:
    """Compare the cluster's topics with topics.REGISTRY; exit 1 on any drift."""
    bootstrap = _bootstrap_or_local(bootstrap)
    with _reported_failures():
        drifts = admin.check_topics(bootstrap)
    if not drifts:
        click.echo(f"all topics on {bootstrap} match topics.REGISTRY")
        return
    for drift in drifts:
        click.echo(f"drift: {drift}")
    raise click.ClickException(f"{len(drifts)} drift(s) from topics.REGISTRY on {bootstrap}; "
                               "missing topics are made by `topics create`")


@click.group("firetape-kafka")
def standalone() -> None:
    """The Kafka commands on their own, for testing before they join the main CLI."""


_topics = click.Group("topics", help="Kafka topics from topics.REGISTRY.")
_topics.add_command(topics_create)
_topics.add_command(topics_check)
standalone.add_command(kafka)
standalone.add_command(_topics)

if __name__ == "__main__":
    standalone()
