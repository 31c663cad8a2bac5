"""Strong customer authentication: the TOTP second factor of the built-in authorization server.

The second factor itself on SQLite and PostgreSQL (:class:`SecondFactor`, two instances on
one database standing for two gateway processes), then the consent flow over HTTP: right,
wrong, missing, replayed and skewed codes, the lockout and its end, two gateway
applications sharing one SQLite file, and the audit (journal, metrics, masked log line).
Clocks are stepped, never waited for.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from gateway.consents import ConsentKind, ConsentStatus
from gateway.security.authserver import pkce_challenge
from gateway.security.sca import (
    ScaAttempt,
    ScaKeyError,
    ScaOutcome,
    ScaRefusedError,
    ScaSettings,
    SecondFactor,
    mask_psu,
)
from gateway.security.totp import hotp, time_step
from gateway.store import create_engine, sca_enrolments_table, sca_failures_table
from journal import EventKind, StaticMasterKeys
from tests.gateway.harness import (
    AISP,
    REDIRECT,
    Authenticator,
    Harness,
    StepClock,
    account_consent_body,
    gateway_database,
    running_gateway,
    tpps_for,
)
from tests.gateway.obie import check_error
from tests.support import on_event_loop

KEYS = StaticMasterKeys({1: bytes(range(32))})
T0 = 1_800_000_015.0  # 15 s into a 30 s step


@pytest.fixture
def two_engines(gateway_database: tuple[str, dict[str, object]]) -> Iterator[tuple[Engine, Engine]]:
    """Two engines on one migrated database (two gateway processes)."""
    url, options = gateway_database
    one, two = create_engine(url, **options), create_engine(url, **options)
    yield one, two
    one.dispose()
    two.dispose()


def _factor(
    engine: Engine, clock: StepClock, audits: list[ScaAttempt] | None = None, **settings: Any
) -> SecondFactor:
    return SecondFactor(
        engine,
        KEYS,
        ScaSettings(**settings),
        clock=clock,
        audits=(audits.append,) if audits is not None else (),
    )


def _outcome(factor: SecondFactor, psu: str, code: str) -> ScaAttempt:
    try:
        return factor.verify(psu, code, consent_id="c-1", tenant="tpp-one", client_id="tpp-one")
    except ScaRefusedError as refused:
        return refused.attempt


# -- the second factor ------------------------------------------------------------------------


def test_right_wrong_replayed_and_skewed_codes(two_engines: tuple[Engine, Engine]) -> None:
    clock = StepClock(T0)
    audits: list[ScaAttempt] = []
    one = _factor(two_engines[0], clock, audits, max_attempts=20)
    two = _factor(two_engines[1], clock, audits, max_attempts=20)  # another process
    device = Authenticator.from_uri(one.enrol("alice").uri)
    now = time_step(T0, device.parameters)

    assert _outcome(one, "alice", device.code_of(now)).outcome is ScaOutcome.ACCEPTED
    assert _outcome(two, "alice", device.code_of(now)).outcome is ScaOutcome.REPLAYED
    assert _outcome(one, "alice", device.code_of(now - 1)).outcome is ScaOutcome.REPLAYED  # older
    assert _outcome(two, "alice", device.code_of(now + 2)).outcome is ScaOutcome.WRONG_CODE
    accepted = _outcome(two, "alice", device.code_of(now + 1))  # one step of clock skew ahead
    assert (accepted.outcome, accepted.step, accepted.failures) == (ScaOutcome.ACCEPTED, now + 1, 0)
    clock.advance(5 * 30)
    behind = _outcome(one, "alice", device.code_of(now + 4))  # one step behind
    assert behind.outcome is ScaOutcome.ACCEPTED
    assert _outcome(one, "alice", device.code_of(now + 4)).outcome is ScaOutcome.REPLAYED
    assert _outcome(two, "alice", device.code_of(now + 3)).outcome is ScaOutcome.WRONG_CODE
    for malformed in (
        "12345",
        "1234567",
        "12345a",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        " 123456",
    ):
        assert _outcome(one, "alice", malformed).outcome is ScaOutcome.WRONG_CODE
    assert _outcome(one, "alice", "").outcome is ScaOutcome.MISSING_CODE
    assert _outcome(one, "bob", device.code_of(now + 5)).outcome is ScaOutcome.NOT_ENROLLED
    assert [a.outcome for a in audits] == [
        ScaOutcome.ACCEPTED, ScaOutcome.REPLAYED, ScaOutcome.REPLAYED, ScaOutcome.WRONG_CODE,
        ScaOutcome.ACCEPTED, ScaOutcome.ACCEPTED, ScaOutcome.REPLAYED, ScaOutcome.WRONG_CODE,
        *[ScaOutcome.WRONG_CODE] * 5, ScaOutcome.MISSING_CODE, ScaOutcome.NOT_ENROLLED,
    ]  # fmt: skip


def test_one_code_sent_to_two_processes_at_once_is_accepted_once(
    two_engines: tuple[Engine, Engine],
) -> None:
    clock = StepClock(T0)
    factors = [_factor(engine, clock, max_attempts=50) for engine in two_engines]
    device = Authenticator.from_uri(factors[0].enrol("alice").uri)
    code = device.code(T0)
    start = threading.Barrier(8)

    def attempt(number: int) -> ScaOutcome:
        start.wait()
        return _outcome(factors[number % 2], "alice", code).outcome

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(attempt, range(8)))
    assert sorted(outcomes) == sorted([ScaOutcome.ACCEPTED] + [ScaOutcome.REPLAYED] * 7)


def test_lockout_is_shared_and_ends_after_the_window(two_engines: tuple[Engine, Engine]) -> None:
    clock = StepClock(T0)
    one = _factor(two_engines[0], clock, max_attempts=3, lockout_seconds=120)
    two = _factor(two_engines[1], clock, max_attempts=3, lockout_seconds=120)
    device = Authenticator.from_uri(one.enrol("alice").uri)
    first = _outcome(one, "alice", "000000" if device.code(T0) != "000000" else "111111")
    assert (first.outcome, first.failures, first.retry_after) == (ScaOutcome.WRONG_CODE, 1, None)
    clock.advance(10)
    assert _outcome(two, "alice", "x").failures == 2
    clock.advance(10)
    third = _outcome(one, "alice", "x")  # the third failure locks: 120 s after the first
    assert (third.failures, third.retry_after) == (3, 100)
    right = device.code_of(time_step(clock(), device.parameters))
    locked = _outcome(two, "alice", right)  # even the right code: not looked at
    assert (locked.outcome, locked.retry_after) == (ScaOutcome.LOCKED_OUT, 100)
    clock.advance(99)
    assert _outcome(one, "alice", right).outcome is ScaOutcome.LOCKED_OUT
    clock.advance(1)  # the first failure is out of the window: two left, one more try
    fresh = device.code_of(time_step(clock(), device.parameters))
    assert _outcome(two, "alice", fresh).outcome is ScaOutcome.ACCEPTED
    with two_engines[0].connect() as connection:  # success clears the failures
        assert connection.execute(select(sca_failures_table)).all() == []


def test_an_operator_lifts_a_lockout_and_re_enrolment_replaces_the_secret(
    gateway_engine: Engine,
) -> None:
    clock = StepClock(T0)
    factor = _factor(gateway_engine, clock, max_attempts=1)
    old = Authenticator.from_uri(factor.enrol("alice").uri)
    assert _outcome(factor, "alice", "x").retry_after == 900
    assert factor.unlock("alice") == 1 and factor.unlock("alice") == 0
    new = Authenticator.from_uri(factor.enrol("alice").uri)
    assert new.secret != old.secret
    step = time_step(T0, old.parameters)
    assert _outcome(factor, "alice", old.code_of(step)).outcome is ScaOutcome.WRONG_CODE
    factor.unlock("alice")
    assert _outcome(factor, "alice", new.code_of(step)).outcome is ScaOutcome.ACCEPTED
    enrolment = factor.enrolment("alice")
    assert enrolment is not None and enrolment.secret == new.secret
    assert factor.enrolment("bob") is None
    assert "secret" not in repr(enrolment) and new.secret.hex() not in repr(enrolment)


def test_parameters_are_kept_per_enrolment(gateway_engine: Engine) -> None:
    clock = StepClock(T0)
    eight = _factor(gateway_engine, clock, digits=8, step=60, algorithm="SHA512")
    device = Authenticator.from_uri(eight.enrol("alice").uri)
    assert (device.parameters.digits, device.parameters.step) == (8, 60)
    code = hotp(device.secret, time_step(T0, device.parameters), 8, "SHA512")
    default = _factor(gateway_engine, clock)  # the configuration changed since: no matter
    assert _outcome(default, "alice", code).outcome is ScaOutcome.ACCEPTED


def test_the_secret_is_encrypted_at_rest_and_bound_to_its_psu(gateway_engine: Engine) -> None:
    factor = _factor(gateway_engine, StepClock(T0))
    alice = factor.enrol("alice")
    factor.enrol("bob")
    with gateway_engine.begin() as connection:
        rows = {row.psu: row for row in connection.execute(select(sca_enrolments_table))}
        assert alice.secret not in rows["alice"].secret
        assert rows["alice"].master_version == 1
        # alice's ciphertext copied to bob's row does not open as bob's
        connection.execute(
            sca_enrolments_table.update()
            .where(sca_enrolments_table.c.psu == "bob")
            .values(secret=rows["alice"].secret)
        )
    with pytest.raises(ScaKeyError, match=r"PSU \*\*\* does not decrypt") as raised:
        factor.enrolment("bob")
    assert alice.secret.hex() not in str(raised.value)
    other_keys = SecondFactor(gateway_engine, StaticMasterKeys({1: bytes(32)}))
    with pytest.raises(ScaKeyError):
        other_keys.enrolment("alice")
    rotated = SecondFactor(gateway_engine, StaticMasterKeys({1: bytes(range(32)), 2: bytes(32)}))
    assert rotated.enrol("carol").psu == "carol"  # new enrolments use the newest version
    with gateway_engine.connect() as connection:
        versions = dict(
            connection.execute(
                select(sca_enrolments_table.c.psu, sca_enrolments_table.c.master_version)
            ).all()
        )
    assert versions == {"alice": 1, "bob": 1, "carol": 2}
    found = rotated.enrolment("alice")  # the older version still opens
    assert found is not None and found.secret == alice.secret


def test_settings_are_checked() -> None:
    for changes, message in [
        ({"skew_steps": 11}, "skew_steps"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"lockout_seconds": 0}, "lockout_seconds"),
        ({"digits": 4}, "digits"),
    ]:
        with pytest.raises(ValueError, match=message):
            ScaSettings(**changes)  # type: ignore[arg-type]
    assert mask_psu("alice") == "a***e" and mask_psu("al") == "***"


# -- the consent flow over HTTP ---------------------------------------------------------------


async def _consent(h: Harness) -> str:
    token = await h.client_token("tpp-one", "accounts")
    response = await h.http.post(
        f"{AISP}/account-access-consents", json=account_consent_body(), headers=h.auth(token)
    )
    assert response.status_code == 201, response.text
    consent_id: str = response.json()["Data"]["ConsentId"]
    return consent_id


def _params(consent_id: str, verifier: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code", "client_id": "tpp-one", "redirect_uri": REDIRECT,
        "scope": "accounts", "state": "s", "consent_id": consent_id, "psu": "alice",
        "code_challenge": pkce_challenge(verifier), "code_challenge_method": "S256", **extra,
    }  # fmt: skip


async def _authorize(h: Harness, consent_id: str, **extra: str) -> httpx.Response:
    verifier = secrets.token_urlsafe(48)
    return await h.http.get("/oauth2/authorize", params=_params(consent_id, verifier, **extra))


def _status(h: Harness, consent_id: str) -> ConsentStatus:
    consent = h.built.services.consents.get(consent_id, "tpp-one", ConsentKind.ACCOUNT_ACCESS)
    assert consent is not None
    return consent.status


def _step_now(h: Harness) -> int:
    return time_step(h.clock(), h.devices["alice"].parameters)


def test_the_consent_flow_asks_for_the_second_factor(
    tmp_path: Path, gateway_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, engine=gateway_engine) as h:
            alice = h.devices["alice"]
            consent_id = await _consent(h)
            missing = await _authorize(h, consent_id)
            check_error(missing, 400, "UK.OBIE.Field.Missing")
            right = alice.code_of(_step_now(h))
            wrong = f"{(int(right) + 1) % 10**6:06d}"
            refused = check_error(
                await _authorize(h, consent_id, totp=wrong), 403, "UK.OBIE.Sca.CodeInvalid"
            )
            assert "4 attempt(s) left" in refused["Message"]
            assert _status(h, consent_id) is ConsentStatus.AWAU
            # the right code, by the form post that keeps it out of URLs: authorised
            verifier = secrets.token_urlsafe(48)
            posted = await h.http.post(
                "/oauth2/authorize", data=_params(consent_id, verifier, totp=right)
            )
            assert posted.status_code == 303, posted.text
            code = parse_qs(urlparse(posted.headers["location"]).query)["code"][0]
            token = await h.http.post(
                "/oauth2/token",
                data={
                    "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                    "code_verifier": verifier, "client_id": "tpp-one",
                },
                headers=h.tpps["tpp-one"].cert_header,
            )  # fmt: skip
            assert token.status_code == 200, token.text
            assert _status(h, consent_id) is ConsentStatus.AUTH
            # the same code for another consent, in the same time step: a replay
            second = await _consent(h)
            check_error(await _authorize(h, second, totp=right), 403, "UK.OBIE.Sca.CodeReplayed")
            assert _status(h, second) is ConsentStatus.AWAU
            # clock skew: a code one step ahead is taken, two steps ahead is not
            ahead = alice.code_of(_step_now(h) + 2)
            check_error(await _authorize(h, second, totp=ahead), 403, "UK.OBIE.Sca.CodeInvalid")
            skewed = await _authorize(h, second, totp=alice.code_of(_step_now(h) + 1))
            assert skewed.status_code == 302, skewed.text
            # a PSU without a second factor
            third = await _consent(h)
            enrolled_bob = await _authorize(h, third, psu="bob", totp="123456")
            assert enrolled_bob.status_code == 403  # bob is enrolled: a wrong code
            h.clock.advance(60)
            with gateway_engine.begin() as connection:
                connection.execute(
                    sca_enrolments_table.delete().where(sca_enrolments_table.c.psu == "bob")
                )
            check_error(
                await _authorize(h, third, psu="bob", totp="123456"),
                403,
                "UK.OBIE.Sca.NotEnrolled",
            )
            # a refusal needs no code
            denied = await _authorize(h, third, decision="deny")
            assert denied.status_code == 302 and "access_denied" in denied.headers["location"]

            # the audit: one journal event per attempt, keyed by the consent ...
            events = [e for e in h.journal.events() if e.kind is EventKind.SCA_ATTEMPT]
            assert [(e.ids.transaction_id, e.body["status"]) for e in events] == [
                (consent_id, "sca_missing_code"), (consent_id, "sca_wrong_code"),
                (consent_id, "sca_accepted"), (second, "sca_replayed"),
                (second, "sca_wrong_code"), (second, "sca_accepted"),
                (third, "sca_wrong_code"), (third, "sca_not_enrolled"),
            ]  # fmt: skip
            assert all(e.tenant == "tpp-one" and e.body["client_id"] == "tpp-one" for e in events)
            assert events[0].personal == {"psu": "alice"}  # the PSU only in the encrypted part
            assert all("alice" not in str(e.body) for e in events)
            # ... a counter by outcome ...
            registry = h.built.services.metrics.registry
            counted = {
                outcome: registry.get_sample_value(
                    "isobridge_gateway_sca_attempts_total", {"outcome": outcome}
                )
                for outcome in ("accepted", "wrong_code", "replayed", "not_enrolled")
            }
            assert counted == {
                "accepted": 2.0, "wrong_code": 3.0, "replayed": 1.0, "not_enrolled": 1.0
            }  # fmt: skip
            # ... and a log line with the PSU masked
            lines = [r.getMessage() for r in caplog.records if r.name == "isobridge.gateway.sca"]
            assert len(lines) == len(events)
            assert all("alice" not in line and right not in line for line in lines)
            assert "psu=a***e" in lines[0] and "outcome=missing_code" in lines[0]

    caplog.set_level(logging.INFO, logger="isobridge.gateway.sca")
    scenario()


def test_lockout_over_http_and_its_end(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        settings = ScaSettings(max_attempts=3, lockout_seconds=300)
        async with running_gateway(tmp_path, sca=settings) as h:
            consent_id = await _consent(h)
            alice = h.devices["alice"]
            bad = f"{(int(alice.code_of(_step_now(h))) + 5) % 10**6:06d}"
            for left in (2, 1):
                body = check_error(await _authorize(h, consent_id, totp=bad), 403)
                assert f"{left} attempt(s) left" in body["Message"]
            h.clock.advance(40)
            last = await _authorize(h, consent_id, totp=bad)
            check_error(last, 403, "UK.OBIE.Sca.CodeInvalid")
            assert last.headers["retry-after"] == "260"  # 300 s after the first failure
            h.clock.advance(60)
            locked = await _authorize(h, consent_id, totp=alice.code_of(_step_now(h)))
            body = check_error(locked, 429, "UK.OBIE.Sca.LockedOut")
            assert locked.headers["retry-after"] == "200"
            assert "retry after 200 s" in body["Message"]
            assert _status(h, consent_id) is ConsentStatus.AWAU
            h.clock.advance(200)
            back = await _authorize(h, consent_id, totp=alice.code_of(_step_now(h)))
            assert back.status_code == 302, back.text
            assert _status(h, consent_id) is ConsentStatus.AUTH
            events = [e for e in h.journal.events() if e.kind is EventKind.SCA_ATTEMPT]
            audited = [
                (e.body["status"], e.body["failures"], e.body.get("retry_after")) for e in events
            ]
            assert audited == [
                ("sca_wrong_code", 1, None), ("sca_wrong_code", 2, None),
                ("sca_wrong_code", 3, 260), ("sca_locked_out", 3, 200), ("sca_accepted", 0, None),
            ]  # fmt: skip
            locked_out = h.built.services.metrics.registry.get_sample_value(
                "isobridge_gateway_sca_attempts_total", {"outcome": "locked_out"}
            )
            assert locked_out == 1.0

    scenario()


def test_two_gateways_on_one_sqlite_file_refuse_a_replay(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        shared = gateway_database(tmp_path, "shared")
        other = create_engine(str(shared.url))
        clock = StepClock(T0)
        (tmp_path / "one").mkdir()
        (tmp_path / "two").mkdir()
        tpps = tpps_for(tmp_path)
        async with (
            running_gateway(tmp_path / "one", engine=shared, clock=clock, tpps=tpps) as one,
            running_gateway(
                tmp_path / "two", engine=other, clock=clock, tpps=tpps, enrol=()
            ) as two,
        ):
            assert two.built.app is not one.built.app
            alice = one.devices["alice"]
            code = alice.code_of(time_step(T0, alice.parameters))
            first = await _authorize(one, await _consent(one), totp=code)
            assert first.status_code == 302, first.text
            replay = await _authorize(two, await _consent(two), totp=code)
            check_error(replay, 403, "UK.OBIE.Sca.CodeReplayed")
        other.dispose()
        shared.dispose()

    scenario()


def test_without_sca_the_consent_needs_no_code(tmp_path: Path) -> None:
    @on_event_loop
    async def scenario() -> None:
        async with running_gateway(tmp_path, sca=ScaSettings(enabled=False)) as h:
            assert h.built.second_factor is None and h.devices == {}
            response = await _authorize(h, await _consent(h))
            assert response.status_code == 302, response.text

    scenario()
