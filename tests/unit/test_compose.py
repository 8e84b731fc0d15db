"""docker-compose.yml and the Dockerfile, checked as data: no Docker engine runs on our
machines, so this is what keeps the deployment from rotting unseen."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from firetape.kafka.app import AGENTS

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
# An exact release: x.y.z (more parts allowed, a suffix such as -alpine too), or a digest.
PINNED = re.compile(r"^[\w./-]+:\d+\.\d+\.\d+[\w.-]*(@sha256:[0-9a-f]{64})?$")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|PRIVATE", re.IGNORECASE)
LONG_RUNNING = [name for name, service in SERVICES.items() if name != "topics"]


def test_services_when_compose_parsed_then_every_agent_kafka_clickhouse_and_topics_job():
    assert set(AGENTS) <= set(SERVICES)
    assert {"kafka", "clickhouse", "topics"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_image_when_service_declared_then_pinned_to_an_exact_version(name):
    assert PINNED.match(SERVICES[name]["image"]), SERVICES[name]["image"]


def test_base_image_when_dockerfile_read_then_pinned_to_an_exact_version():
    bases = re.findall(r"^FROM\s+(\S+)", DOCKERFILE, re.MULTILINE)
    assert bases and all(PINNED.match(base) for base in bases), bases


def test_kafka_when_compose_parsed_then_official_image_in_kraft_mode():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "KAFKA_CONTROLLER_QUORUM_VOTERS" in kafka["environment"]


@pytest.mark.parametrize("name", AGENTS)
def test_agent_when_service_declared_then_built_from_the_one_dockerfile_runs_its_name(name):
    service = SERVICES[name]
    assert service["build"] == "."
    assert "entrypoint" not in service            # the image's: firetape agent
    assert service["command"] == [name]
    assert 'ENTRYPOINT ["firetape", "agent"]' in DOCKERFILE


@pytest.mark.parametrize("name", AGENTS)
def test_agent_when_service_declared_then_configured_only_through_the_environment(name):
    service = SERVICES[name]
    assert service["environment"]["KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert not service.get("volumes")             # no config files mounted in
    assert "container_name" not in service and "ports" not in service   # --scale works


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_service_when_long_running_then_health_check_restart_policy_and_limits(name):
    service = SERVICES[name]
    assert service["healthcheck"]["test"]
    assert service["restart"] in ("always", "unless-stopped", "on-failure")
    limits = service["deploy"]["resources"]["limits"]
    assert limits["cpus"] and limits["memory"]


def test_topics_job_when_kafka_healthy_then_creates_the_registry_topics_once():
    job = SERVICES["topics"]
    assert job["entrypoint"] == ["firetape", "topics", "create"]
    assert job["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert job["restart"] == "on-failure"
    for name in AGENTS:
        assert SERVICES[name]["depends_on"]["topics"]["condition"] == \
            "service_completed_successfully"


def test_environment_when_any_service_names_a_secret_then_only_as_a_variable_reference():
    for name, service in SERVICES.items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                assert re.fullmatch(r"\$\{[A-Z_]+(:\?[^}]*)?\}", str(value)), (name, key)


def test_files_when_read_then_no_credentials_written_in_them():
    text = (REPO / "docker-compose.yml").read_text() + DOCKERFILE
    assert not re.search(r"(password|secret|token)\s*[:=]\s*['\"]?(?!\$\{)\w", text,
                         re.IGNORECASE)
    assert not re.search(r"\bAKIA[0-9A-Z]{16}\b|-----BEGIN", text)
