"""``isobridge sca enrol|unlock``: a PSU's authenticator app is set up from the printed URI."""

from __future__ import annotations

import io
import time
from collections.abc import Mapping
from pathlib import Path

from gateway.security.sca import ScaOutcome, ScaRefusedError, ScaSettings, SecondFactor
from gateway.store import create_engine
from hub.cli import main
from hub.config_file import load_config
from tests.gateway.harness import Authenticator


def enrol_with_cli(
    hub_toml: Path,
    gateway_toml: Path,
    psu: str = "alice",
    environ: Mapping[str, str] | None = None,
) -> Authenticator:
    """``isobridge sca enrol PSU`` (in the environment the gateway will have, default this
    process's): the PSU's app, from the URI it prints."""
    out, err = io.StringIO(), io.StringIO()
    command = ["sca", "enrol", psu, "--config", str(hub_toml), "--gateway", str(gateway_toml)]
    assert main(command, stdout=out, stderr=err, environ=environ) == 0, err.getvalue()
    return Authenticator.from_uri(out.getvalue().strip())


def _files(tmp_path: Path, sca: str = "") -> tuple[Path, Path]:
    hub_toml = tmp_path / "hub.toml"
    hub_toml.write_text(f'[hub]\nhome = "{tmp_path / "home"}"\n')
    gateway_toml = tmp_path / "gateway.toml"
    gateway_toml.write_text(sca)
    return hub_toml, gateway_toml


def test_enrol_prints_the_uri_and_the_gateway_accepts_its_codes(tmp_path: Path) -> None:
    hub_toml, gateway_toml = _files(
        tmp_path, '[gateway.sca]\ndigits = 8\nissuer_label = "Bank & Co"\nmax_attempts = 2\n'
    )
    out, err = io.StringIO(), io.StringIO()
    command = ["sca", "enrol", "alice", "--config", str(hub_toml), "--gateway", str(gateway_toml)]
    assert main(command, stdout=out, stderr=err, environ={}) == 0, err.getvalue()
    uri = out.getvalue().strip()
    assert uri.startswith("otpauth://totp/Bank%20%26%20Co:alice?secret=") and "digits=8" in uri
    assert "created master key file" in err.getvalue() and "PSU a***e enrolled" in err.getvalue()
    assert "secret=" not in err.getvalue()
    device = Authenticator.from_uri(uri)
    assert device.parameters.digits == 8
    # the gateway, with the hub's master keys, takes the app's codes
    settings = load_config(hub_toml, {}).settings
    engine = create_engine(f"sqlite:///{tmp_path / 'home' / 'gateway.db'}")
    factor = SecondFactor(engine, settings.key_provider({}), ScaSettings(max_attempts=2))
    now = time.time()
    accepted = factor.verify("alice", device.code(now), consent_id="c", tenant="t", client_id="tpp")
    assert accepted.outcome is ScaOutcome.ACCEPTED
    for _ in range(2):
        try:
            factor.verify("alice", "x", consent_id="c", tenant="t", client_id="tpp")
        except ScaRefusedError as refused:
            last = refused.attempt
    assert last.retry_after is not None  # locked out ...
    out = io.StringIO()
    command[1] = "unlock"
    assert main(command, stdout=out, stderr=err, environ={}) == 0
    assert out.getvalue() == "2 failed attempt(s) of PSU a***e forgotten\n"  # ... and not
    assert (
        factor.verify(
            "alice", device.code(now), consent_id="c", tenant="t", client_id="tpp"
        ).outcome
        is ScaOutcome.ACCEPTED
    )
    engine.dispose()


def test_enrol_refuses_an_unknown_psu_and_a_bad_configuration(tmp_path: Path) -> None:
    hub_toml, gateway_toml = _files(tmp_path)
    err = io.StringIO()
    command = ["sca", "enrol", "mallory", "--config", str(hub_toml), "--gateway", str(gateway_toml)]
    assert main(command, stderr=err, environ={}) == 1
    assert "psu: 'mallory' holds no account" in err.getvalue()
    gateway_toml.write_text('[gateway.sca]\nalgorithm = "MD5"\n')
    err = io.StringIO()
    assert main([*command[:2], "alice", *command[3:]], stderr=err, environ={}) == 2
    assert "gateway.sca.algorithm: MD5 is not one of SHA1, SHA256, SHA512" in err.getvalue()
    assert not (tmp_path / "home" / "gateway.db").exists()
