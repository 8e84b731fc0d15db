"""Talking to a Kafka cluster: does it answer, and topics from topics.REGISTRY created
idempotently and checked for drift.

A topic's partitions, cleanup.policy and retention.ms are part of the registry; a cluster
whose topics differ (made by hand, by an older registry, by auto-creation) is reported by
`check_topics` rather than silently altered, because shrinking partitions or switching a log
from delete to compact cannot be undone by a tool.

Async functions are the API for code that already runs an event loop (agents); the
synchronous wrappers are for the CLI and tests.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from topics.registry import REGISTRY, TopicSpec

REQUEST_TIMEOUT_S = 30.0
_NO_ERROR = 0


class TopicAdminError(Exception):
    """The cluster could not be reached, or refused a topic; the message says which."""


@dataclass(frozen=True)
class TopicDrift:
    """One way a topic on the cluster differs from its spec (`field` "missing" if absent)."""

    topic: str
    field: str
    expected: str
    actual: str

    def __str__(self) -> str:
        if self.field == "missing":
            return f"{self.topic}: missing on the cluster"
        return f"{self.topic}: {self.field} is {self.actual}, the registry says {self.expected}"


@dataclass(frozen=True)
class CreateResult:
    """Names of the topics created now and of those that already existed."""

    created: tuple[str, ...]
    existing: tuple[str, ...]


def cluster_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    """True if a broker at `bootstrap` answers a metadata request listing at least one broker.

    Synchronous (runs its own event loop), so it must not be called from a running loop.
    """
    try:
        return asyncio.run(asyncio.wait_for(_lists_brokers(bootstrap, timeout), timeout))
    except (asyncio.TimeoutError, OSError, KafkaError):
        return False


async def _lists_brokers(bootstrap: str, timeout: float) -> bool:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                 request_timeout_ms=max(1000, int(timeout * 1000)))
    try:
        with _quiet("aiokafka"):
            await client.start()
        cluster = await client.describe_cluster()
        return bool(cluster.get("brokers"))
    finally:
        await client.close()


@contextmanager
def _quiet(logger_name: str):
    # A refused connection is an expected answer here (a broker still starting, a wrong
    # address reported by our own error); aiokafka would also log it to the terminal.
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The topic-level Kafka configs a spec implies (values as Kafka's strings)."""
    return {"cleanup.policy": spec.cleanup, "retention.ms": str(spec.retention_ms)}


def create_topics(bootstrap: str, specs: Iterable[TopicSpec] = REGISTRY,
                  replication_factor: int = 1) -> CreateResult:
    """Create every topic of `specs` that does not exist yet (synchronous wrapper)."""
    return asyncio.run(create_topics_async(bootstrap, specs, replication_factor))


def check_topics(bootstrap: str, specs: Iterable[TopicSpec] = REGISTRY) -> list[TopicDrift]:
    """Drifts between the cluster and `specs`, empty when all match (synchronous wrapper)."""
    return asyncio.run(check_topics_async(bootstrap, specs))


async def create_topics_async(bootstrap: str, specs: Iterable[TopicSpec] = REGISTRY,
                              replication_factor: int = 1) -> CreateResult:
    """Create the missing topics of `specs` with their partitions, cleanup and retention.

    Topics that exist are left as they are (see `check_topics_async` for their drift);
    a topic created concurrently by someone else counts as existing.
    """
    specs = tuple(specs)
    async with _admin(bootstrap) as admin:
        present = set(await admin.list_topics())
        wanted = [spec for spec in specs if spec.name not in present]
        created: list[str] = []
        existing = [spec.name for spec in specs if spec.name in present]
        if wanted:
            response = await admin.create_topics(
                [NewTopic(spec.name, spec.partitions, replication_factor,
                          topic_configs=topic_configs(spec)) for spec in wanted],
                timeout_ms=int(REQUEST_TIMEOUT_S * 1000))
            for outcome in response.to_object()["topic_errors"]:
                code, name = outcome["error_code"], outcome["topic"]
                if code == _NO_ERROR:
                    created.append(name)
                elif code == TopicAlreadyExistsError.errno:
                    existing.append(name)
                else:
                    reason = outcome.get("error_message") or for_code(code).__name__
                    raise TopicAdminError(f"Kafka at {bootstrap} refused to create topic "
                                          f"{name!r}: {reason}")
            await _until_served(admin, created, bootstrap)
    order = {spec.name: i for i, spec in enumerate(specs)}
    return CreateResult(created=tuple(sorted(created, key=order.__getitem__)),
                        existing=tuple(sorted(existing, key=order.__getitem__)))


async def check_topics_async(bootstrap: str,
                             specs: Iterable[TopicSpec] = REGISTRY) -> list[TopicDrift]:
    """Compare the cluster's topics with `specs`: missing topics, partition counts, and
    the effective cleanup.policy and retention.ms (broker defaults included)."""
    specs = tuple(specs)
    async with _admin(bootstrap) as admin:
        # All topics' metadata rather than named ones: a metadata request naming a missing
        # topic would auto-create it on a cluster that allows auto-creation.
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()
                      if t["error_code"] == _NO_ERROR}
        present = [spec for spec in specs if spec.name in partitions]
        configs = await _topic_configs(admin, [spec.name for spec in present], bootstrap)
    drifts: list[TopicDrift] = []
    for spec in specs:
        if spec.name not in partitions:
            drifts.append(TopicDrift(spec.name, "missing", "present", "absent"))
            continue
        if partitions[spec.name] != spec.partitions:
            drifts.append(TopicDrift(spec.name, "partitions", str(spec.partitions),
                                     str(partitions[spec.name])))
        actual = configs.get(spec.name, {})
        for key, expected in topic_configs(spec).items():
            if actual.get(key) != expected:
                drifts.append(TopicDrift(spec.name, key, expected, str(actual.get(key))))
    return drifts


async def _until_served(admin: AIOKafkaAdminClient, names: list[str], bootstrap: str) -> None:
    # The controller acknowledges a creation before the broker's metadata cache has it, so
    # a check or a producer right after would not see the topic yet. Return only when every
    # partition of every new topic has a leader.
    deadline = asyncio.get_running_loop().time() + REQUEST_TIMEOUT_S
    pending = set(names)
    while pending:
        for topic in await admin.describe_topics(list(pending)):
            if topic["error_code"] == _NO_ERROR and topic["partitions"] and all(
                    p["leader"] >= 0 for p in topic["partitions"]):
                pending.discard(topic["topic"])
        if not pending:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TopicAdminError(f"Kafka at {bootstrap} created but does not yet serve "
                                  f"{', '.join(sorted(pending))} after {REQUEST_TIMEOUT_S:.0f} s")
        await asyncio.sleep(0.05)


async def _topic_configs(admin: AIOKafkaAdminClient, names: list[str],
                         bootstrap: str) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    found: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for resource in response.to_object()["resources"]:
            if resource["error_code"] != _NO_ERROR:
                raise TopicAdminError(
                    f"Kafka at {bootstrap} did not describe topic {resource['resource_name']!r}: "
                    f"{resource['error_message'] or for_code(resource['error_code']).__name__}")
            found[resource["resource_name"]] = {
                entry["config_names"]: entry["config_value"]
                for entry in resource["config_entries"]}
    return found


class _admin:
    """An admin client for the duration of a block; unreachable clusters become
    TopicAdminError with the address, and the client is always closed."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.client = AIOKafkaAdminClient(bootstrap_servers=bootstrap,
                                          request_timeout_ms=int(REQUEST_TIMEOUT_S * 1000))

    async def __aenter__(self) -> AIOKafkaAdminClient:
        try:
            with _quiet("aiokafka"):
                await self.client.start()
        except (KafkaError, OSError) as error:
            await self.client.close()
            raise TopicAdminError(f"cannot reach Kafka at {self.bootstrap}: {error}") from None
        return self.client

    async def __aexit__(self, kind, error, traceback) -> None:
        await self.client.close()
        if isinstance(error, KafkaError):
            raise TopicAdminError(f"Kafka at {self.bootstrap} failed a request: "
                                  f"{error}") from error
