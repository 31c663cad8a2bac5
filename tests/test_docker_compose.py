"""docker-compose.yml describes a deployment of this project: every service, command, port,
file and variable it names must exist here. No Docker engine runs on the CI machines, so the
file is checked, not run: commands are parsed by the real argument parsers, the hub's config
file is loaded with the compose environment, ports are cross-checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from hub.cli import _parser as hub_parser
from hub.config_file import load_config
from mainframe_sim.cli import _parser as mainframe_parser
from routing.amqp import node_urls

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
RABBITMQ_NODES = ("rabbitmq1", "rabbitmq2", "rabbitmq3")
SOURCES = [
    path
    for package in ("hub", "vault", "routing", "mainframe_sim", "adapters")
    for path in (ROOT / package).rglob("*.py")
]


def _environment(service: str) -> dict[str, str]:
    raw = SERVICES[service].get("environment", {})
    return {key: re.sub(r"\$\{[^}]*\}", "placeholder", str(value)) for key, value in raw.items()}


def _published(service: str) -> dict[int, int]:
    pairs = (str(port).split(":") for port in SERVICES[service].get("ports", []))
    return {int(container): int(host) for host, container in pairs}


def test_every_service_is_there_with_a_health_check() -> None:
    assert set(SERVICES) == {*RABBITMQ_NODES, "postgres", "mainframe", "hub"}
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name
    for name in ("mainframe", "hub"):
        assert SERVICES[name]["build"] == "."
        for dependency, condition in SERVICES[name]["depends_on"].items():
            assert dependency in SERVICES
            assert condition == {"condition": "service_healthy"}
    assert (ROOT / "Dockerfile").is_file()
    assert all("management" in SERVICES[node]["image"] for node in RABBITMQ_NODES)


def test_the_commands_parse_with_the_real_parsers() -> None:
    hub_command = SERVICES["hub"]["command"]
    assert hub_command[0] == "isobridge"
    args = hub_parser().parse_args(hub_command[1:])
    assert args.command == "run"
    mainframe_command = SERVICES["mainframe"]["command"]
    assert mainframe_command[:3] == ["python", "-m", "mainframe_sim"]
    served = mainframe_parser().parse_args(mainframe_command[3:])
    assert served.command == "serve"
    assert served.db.startswith("postgresql+psycopg://")
    assert int(served.port) in _published("mainframe")
    assert int(served.admin_port) in _published("mainframe")


def test_the_hub_config_loads_with_the_compose_environment(tmp_path: Path) -> None:
    (volume,) = SERVICES["hub"]["volumes"]
    source, target, _ = volume.split(":")
    config_path = ROOT / source
    assert SERVICES["hub"]["command"][-1] == target
    environment = _environment("hub")
    environment["ISOBRIDGE_HOME"] = str(tmp_path)  # the container's path, here
    config = load_config(config_path, environ=environment)
    assert config.settings.vault_url == environment["ISOBRIDGE_VAULT_URL"]
    assert config.settings.store_url == environment["ISOBRIDGE_STORE_URL"]  # shared reversals
    assert config.settings.keys_from_environment
    assert config.routing.transport == environment["ISOBRIDGE_TRANSPORT_URL"]
    (listener,) = config.listeners
    assert listener.port in _published("hub")
    assert config.mainframe is not None
    assert config.mainframe.host == "mainframe"
    served = mainframe_parser().parse_args(SERVICES["mainframe"]["command"][3:])
    assert config.mainframe.port == int(served.port)
    assert config.mainframe.framing == served.framing
    nodes = [urlsplit(url).netloc.rpartition("@")[2] for url in node_urls(config.routing.transport)]
    assert nodes == [f"{node}:5672" for node in RABBITMQ_NODES]
    assert "@postgres:5432" in config.settings.vault_url


@pytest.mark.parametrize("service", ["hub"])
def test_every_variable_is_read_by_the_project(service: str) -> None:
    text = "\n".join(path.read_text() for path in SOURCES)
    for variable in SERVICES[service]["environment"]:
        assert f'"{variable}"' in text, f"{variable} is read nowhere in the project"


def test_the_rabbitmq_nodes_form_one_cluster_the_hub_can_log_in_to() -> None:
    """Each node mounts the same configuration, which names the three (by their host names)
    as the cluster's peers and creates the user of the hub's URL; one cookie for all."""
    conf_mounts, cookies = set(), set()
    for node in RABBITMQ_NODES:
        service = SERVICES[node]
        assert service["hostname"] == node
        (volume,) = service["volumes"]
        source, target, _ = volume.split(":")
        assert target.startswith("/etc/rabbitmq/conf.d/") and target.endswith(".conf")
        conf_mounts.add(source)
        cookies.add(service["environment"]["RABBITMQ_ERLANG_COOKIE"])
        # a host shared by the three nodes and the hub: schedulers not pinned to CPUs
        assert "+stbt u" in service["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"]
        assert 5672 in _published(node)
    assert len(conf_mounts) == 1 and len(cookies) == 1
    settings = dict(
        line.split(" = ", 1)
        for line in (ROOT / conf_mounts.pop()).read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
    peers = {v for k, v in settings.items() if k.startswith("cluster_formation.classic_config.")}
    assert peers == {f"rabbit@{node}" for node in RABBITMQ_NODES}
    assert settings["cluster_partition_handling"] == "pause_minority"
    url = urlsplit(node_urls(_environment("hub")["ISOBRIDGE_TRANSPORT_URL"])[0])
    assert (url.username, url.password) == (settings["default_user"], settings["default_pass"])
    assert len({tuple(_published(node).values()) for node in RABBITMQ_NODES}) == 3
