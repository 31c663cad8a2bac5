"""``isobridge certs dev``: files written, the configuration shown, an existing CA kept."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

from hub.cli import main
from hub.config_file import load_config
from hub.gateway_config import load_gateway_config


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err, environ={}), out.getvalue(), err.getvalue()


def test_certs_dev_writes_a_ca_and_shows_a_configuration_that_loads(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    status, out, err = _run("certs", "dev", "--out", str(directory), "--days", "2")
    assert (status, err) == (0, "")
    assert "valid 2 days (not for production)" in out
    written = {path.name for path in directory.iterdir()}
    assert {"ca.crt", "ca.key", "hub-edge.crt", "hub-client.key", "gateway.crt", "tpp.crt"} <= (
        written
    )
    hub_part = out.split("# hub.toml\n")[1].split("# gateway.toml\n")[0]
    gateway_part = out.split("# gateway.toml\n")[1].split("# the simulated mainframe")[0]
    assert tomllib.loads(hub_part)  # what is shown is TOML
    (tmp_path / "hub.toml").write_text(hub_part)
    config = load_config(tmp_path / "hub.toml", environ={})
    assert config.listeners[0].tls is not None
    assert config.listeners[0].tls.client_ca == (directory / "ca.crt").resolve()
    assert config.mainframe is not None and config.mainframe.tls is not None
    (tmp_path / "gateway.toml").write_text("[gateway]\n" + gateway_part)
    gateway = load_gateway_config(tmp_path / "gateway.toml")
    assert gateway.tls is not None and gateway.settings.public_url.startswith("https://")
    assert f"--tls-cert {directory.resolve()}/mainframe.crt" in out


def test_an_existing_ca_is_kept_unless_forced(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    assert _run("certs", "dev", "--out", str(directory))[0] == 0
    first = (directory / "ca.crt").read_bytes()
    status, _, err = _run("certs", "dev", "--out", str(directory))
    assert status == 2
    assert (
        err == f"isobridge: --out {directory}: already holds a CA (ca.key); --force replaces it\n"
    )
    assert (directory / "ca.crt").read_bytes() == first
    assert _run("certs", "dev", "--out", str(directory), "--force")[0] == 0
    assert (directory / "ca.crt").read_bytes() != first


def test_bad_options_are_named(tmp_path: Path) -> None:
    status, _, err = _run("certs", "dev", "--out", str(tmp_path / "c"), "--days", "0")
    assert (status, err) == (2, "isobridge: --days 0: between 1 and 3650\n")
    (tmp_path / "file").write_text("")
    status, _, err = _run("certs", "dev", "--out", str(tmp_path / "file"))
    assert (status, err) == (2, f"isobridge: --out {tmp_path / 'file'}: not a directory\n")
