"""Integration fixtures: one real Kafka per test session.

With KAFKA_BOOTSTRAP set the tests use that cluster; otherwise the project's local broker is
started once (fetched into the shared cache on first use, data in a temp directory, on free
ports) and stopped at the end. A broker that cannot start FAILS the tests that need it:
DESIGN.md forbids skipping them, since a silent skip in CI would hide a broken Kafka path.
"""
from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from firetape.kafka import admin, broker


def _free_ports(count: int) -> list[int]:
    """Ports the kernel hands out now; all bound at once so they are distinct."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for s in sockets:
            s.bind((broker.HOST, 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture(scope="session")
def local_kafka(tmp_path_factory) -> Iterator[broker.BrokerConfig | None]:
    """The local broker's config while it runs for this session; None with KAFKA_BOOTSTRAP."""
    external = broker.external_bootstrap()
    if external:
        if not admin.cluster_answers(external, timeout=30):
            pytest.fail(f"KAFKA_BOOTSTRAP={external} does not answer a metadata request",
                        pytrace=False)
        yield None
        return
    port, controller_port = _free_ports(2)
    try:
        config = broker.BrokerConfig.from_env(data_dir=tmp_path_factory.mktemp("kafka"),
                                              port=port, controller_port=controller_port)
        broker.start(config)
        failure = None
    except broker.BrokerError as error:
        failure = str(error)
    if failure is not None:  # failed outside the except block: no chained traceback noise
        pytest.fail(f"the local Kafka broker for the integration tests did not start:\n"
                    f"{failure}", pytrace=False)
    try:
        yield config
    finally:
        broker.stop(config)


@pytest.fixture(scope="session")
def kafka_bootstrap(local_kafka: broker.BrokerConfig | None) -> str:
    """Bootstrap servers of the session's Kafka: KAFKA_BOOTSTRAP, else the local broker."""
    return local_kafka.bootstrap if local_kafka else broker.external_bootstrap()
