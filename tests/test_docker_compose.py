"""docker-compose.yml describes a deployment of this project: every service, command, port,
file and variable it names must exist here. No Docker engine runs on the CI machines, so the
file is checked, not run: commands are parsed by the real argument parsers, the hub's config
file is loaded with the compose environment, ports are cross-checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub.cli import _parser as hub_parser
from hub.config_file import load_config
from mainframe_sim.cli import _parser as mainframe_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
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
    assert set(SERVICES) == {"rabbitmq", "postgres", "mainframe", "hub"}
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"], name
    for name in ("mainframe", "hub"):
        assert SERVICES[name]["build"] == "."
        for dependency, condition in SERVICES[name]["depends_on"].items():
            assert dependency in SERVICES
            assert condition == {"condition": "service_healthy"}
    assert (ROOT / "Dockerfile").is_file()
    assert "management" in SERVICES["rabbitmq"]["image"]


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
    assert config.settings.keys_from_environment
    assert config.routing.transport == environment["ISOBRIDGE_TRANSPORT_URL"]
    (listener,) = config.listeners
    assert listener.port in _published("hub")
    assert config.mainframe is not None
    assert config.mainframe.host == "mainframe"
    served = mainframe_parser().parse_args(SERVICES["mainframe"]["command"][3:])
    assert config.mainframe.port == int(served.port)
    assert config.mainframe.framing == served.framing
    assert "@rabbitmq:5672" in config.routing.transport
    assert "@postgres:5432" in config.settings.vault_url


@pytest.mark.parametrize("service", ["hub"])
def test_every_variable_is_read_by_the_project(service: str) -> None:
    text = "\n".join(path.read_text() for path in SOURCES)
    for variable in SERVICES[service]["environment"]:
        assert f'"{variable}"' in text, f"{variable} is read nowhere in the project"
