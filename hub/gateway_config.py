"""``gateway.toml``: the open-banking gateway's configuration (``isobridge gateway``).

The gateway runs beside the hub's configuration (``--config hub.toml``: ``[mainframe]``,
the state directory, the journal); this file says what is the gateway's own. Every key is
checked; an error names the file, the key and why (:class:`hub.config_file.ConfigError`)::

    [gateway]
    host = "127.0.0.1"
    port = 8080
    public_url = "http://127.0.0.1:8080"   # what TPPs call (DPoP htu, Links)
    max_body_bytes = 65536
    rate_per_second = 50.0                 # per client, token bucket
    burst = 100
    require_request_signatures = false     # x-jws-signature on payment POSTs
    response_signing_key = "bank-jws.pem"  # optional: PS256 key (PKCS#8 PEM) signing responses
    statement_files = ["STMT.DAT"]         # end-of-day extracts: GET .../transactions
    demo_accounts = true                   # PSUs alice and bob on the simulator's seed accounts
    database = "sqlite:///<home>/gateway.db"   # the gateway's state: consents, idempotency
                                           # keys, payments (postgresql+psycopg://... to share
                                           # it between machines)
    consent_cache_seconds = 1.0            # how long an authorised consent's row is reused

    [gateway.tls]                          # optional: the gateway terminates TLS 1.3 itself
    cert = "gateway.crt"                   # (hub.gateway_tls); public_url then defaults to https
    key = "gateway.key"
    client_ca = "tpp-ca.crt"               # TPP certificates: asked for, verified if presented
    forwarded_client_cert = false          # true: a re-encrypting terminator in front forwards
                                           # client_cert_header; false: taken from this TLS
    reload_interval = 30.0                 # seconds between checks of the files (and SIGHUP)

    [gateway.sca]                          # strong customer authentication (built-in server)
    enabled = true                         # a TOTP code before a consent is authorised
    digits = 6                             # RFC 6238 parameters of new enrolments
    step = 30                              # seconds
    algorithm = "SHA1"                     # SHA1, SHA256 or SHA512
    skew_steps = 1                         # codes of this many steps either side accepted
    max_attempts = 5                       # failed codes per PSU within lockout_seconds ...
    lockout_seconds = 900.0                # ... before the PSU is locked out
    issuer_label = "isobridge"             # the name authenticator apps show

    [issuer]                               # where access tokens come from
    issuer = "http://127.0.0.1:8080"       # without jwks_url: the built-in authorization server
    audience = "http://127.0.0.1:8080"
    jwks_url = "https://as.bank.example/jwks"  # a real issuer's key set instead
    algorithm = "ES256"                    # the built-in server's: PS256, ES256 or EdDSA
    require_sender_constraint = true       # mTLS- or DPoP-bound tokens only
    client_cert_header = "x-ssl-client-cert"   # the TLS terminator's header (escaped PEM)

    [clearing]                             # pacs.008 out, pacs.002 back (RabbitMQ)
    url = "amqp://guest:guest@127.0.0.1:5672/%2F"
    outgoing = "clearing.outgoing"
    status = "clearing.status"
    sagas = false                          # true: each payment is an outbound credit transfer
                                           # saga (hub.sagas: hold, pacs.008, settle or
                                           # release, recall); status RCVD, ACSP, ACSC, RJCT
    [clearing.tls]                         # an amqps:// url: TLS 1.3, keys as in the hub's
    ca = "broker-ca.crt"                   # [routing.tls] (ca, cert, key, server_name, auth)
    cert = "gateway-client.crt"
    key = "gateway-client.key"

    [[clients]]                            # registered TPPs, any number
    client_id = "tpp-one"
    tenant = "tpp-one"                     # default: the client id
    scopes = ["accounts", "payments"]
    redirect_uris = ["https://tpp.example/cb"]
    secret = "demo-secret"                 # demo only: client_secret_basic / _post
    certificate = "tpp-one.crt"            # tls_client_auth: the TPP's certificate (PEM)
    jws_issuer = "org/tpp-one"             # request signatures: the signer id ...
    jwks = "tpp-one.jwks.json"             # ... and its public keys

    [[accounts]]                           # which PSU holds which account (or demo_accounts)
    psu = "alice"
    iban = "DE89370400440532013000"
    currency = "EUR"
    name = "Anna Schmidt"

Relative paths are taken from the file's directory (a relative SQLite ``database`` too).
Without ``database``, the state is ``gateway.db`` in the hub's state directory
(:func:`database_url`).
"""

from __future__ import annotations

import json
import ssl
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from gateway.app import GatewaySettings
from gateway.ports import AccountDirectory, AccountRecord
from gateway.security.authserver import ClientRegistration, hash_secret
from gateway.security.jose import ALGORITHMS, JoseError, SigningKey, certificate_thumbprint
from gateway.security.sca import ScaSettings
from gateway.security.totp import ALGORITHMS as TOTP_ALGORITHMS
from gateway.security.totp import Algorithm
from hub.config_file import ClientTlsConfig, ConfigError, TableReader, broker_tls_config
from hub.gateway import IssuerConfig, seed_directory
from hub.gateway_tls import GatewayTlsConfig

__all__ = ["DATABASE_SCHEMES", "GatewayConfig", "database_url", "load_gateway_config"]

DATABASE_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://")
"""What ``[gateway] database`` may start with."""


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """Everything ``isobridge gateway`` needs besides the hub's configuration."""

    host: str
    port: int
    settings: GatewaySettings
    issuer: IssuerConfig
    clients: tuple[ClientRegistration, ...]
    directory: AccountDirectory
    clearing_url: str
    outgoing: str
    status: str
    statement_files: tuple[Path, ...]
    response_signing_key: SigningKey | None
    tls: GatewayTlsConfig | None = None
    database: str | None = None
    consent_cache_seconds: float = 1.0
    sca: ScaSettings = field(default_factory=ScaSettings)
    sagas: bool = False
    clearing_tls: ClientTlsConfig | None = None  # [clearing.tls]: an amqps:// clearing url


def database_url(config: GatewayConfig, home: Path) -> str:
    """The gateway's database: ``[gateway] database``, else ``<home>/gateway.db``."""
    return config.database or f"sqlite:///{home / 'gateway.db'}"


class _Reader(TableReader):
    def text(self, table: Mapping[str, Any], where: str, key: str, default: str | None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(f"{where}.{key}", "expected a non-empty string")
        return value

    def number(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        default: float,
        low: float,
        high: float,
    ) -> float:
        value = table.get(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not low <= value <= high
        ):
            raise self.fail(f"{where}.{key}", f"{value!r} is not a number in {low:g}..{high:g}")
        return float(value)

    def flag(self, table: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", "expected true or false")
        return value

    def strings(
        self, table: Mapping[str, Any], where: str, key: str, default: Sequence[str]
    ) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(f"{where}.{key}", "expected an array of strings")
        return tuple(value)

    def file(self, where: str, text: str) -> Path:
        path = Path(text) if Path(text).is_absolute() else self.base / text
        if not path.is_file():
            raise self.fail(where, f"no such file: {path}")
        return path

    def config(self, data: Mapping[str, Any]) -> GatewayConfig:
        self.known(data, "", ("gateway", "issuer", "clearing", "clients", "accounts"))
        gateway = self.table(data, "gateway")
        self.known(
            gateway,
            "gateway",
            ("host", "port", "public_url", "max_body_bytes", "rate_per_second", "burst",
             "require_request_signatures", "response_signing_key", "statement_files",
             "demo_accounts", "tls", "database", "consent_cache_seconds", "sca"),
        )  # fmt: skip
        host = self.text(gateway, "gateway", "host", "127.0.0.1")
        port = int(self.number(gateway, "gateway", "port", 8080, 0, 65535))
        tls = self.tls(gateway["tls"]) if "tls" in gateway else None
        scheme = "https" if tls is not None else "http"
        public_url = self.text(
            gateway, "gateway", "public_url", f"{scheme}://{host}:{port}"
        ).rstrip("/")
        settings = GatewaySettings(
            public_url=public_url,
            max_body_bytes=int(
                self.number(gateway, "gateway", "max_body_bytes", 65536, 1024, 16 << 20)
            ),
            rate_per_second=self.number(gateway, "gateway", "rate_per_second", 50.0, 0.001, 1e6),
            burst=int(self.number(gateway, "gateway", "burst", 100, 1, 1e6)),
            require_request_signatures=self.flag(
                gateway, "gateway", "require_request_signatures", False
            ),
        )
        signing_key = None
        if "response_signing_key" in gateway:
            where = "gateway.response_signing_key"
            path = self.file(where, self.text(gateway, "gateway", "response_signing_key", None))
            try:
                signing_key = SigningKey.from_pem(path.read_bytes(), alg="PS256", kid=path.stem)
            except (JoseError, ValueError) as exc:
                raise self.fail(where, f"not a PS256 private key: {exc}") from None
        statements = tuple(
            Path(p) if Path(p).is_absolute() else self.base / p
            for p in self.strings(gateway, "gateway", "statement_files", ())
        )
        issuer_table = self.table(data, "issuer")
        self.known(
            issuer_table,
            "issuer",
            ("issuer", "audience", "jwks_url", "algorithm", "require_sender_constraint",
             "client_cert_header"),
        )  # fmt: skip
        algorithm = self.text(issuer_table, "issuer", "algorithm", "ES256")
        if algorithm not in ALGORITHMS:
            raise self.fail(
                "issuer.algorithm", f"{algorithm} is not one of {', '.join(ALGORITHMS)}"
            )
        issuer = IssuerConfig(
            issuer=self.text(issuer_table, "issuer", "issuer", public_url),
            audience=self.text(issuer_table, "issuer", "audience", public_url),
            jwks_url=self.jwks_url(issuer_table),
            algorithm=algorithm,
            require_sender_constraint=self.flag(
                issuer_table, "issuer", "require_sender_constraint", True
            ),
            client_cert_header=self.text(
                issuer_table, "issuer", "client_cert_header", "x-ssl-client-cert"
            ).lower(),
        )
        clearing = self.table(data, "clearing")
        self.known(clearing, "clearing", ("url", "outgoing", "status", "sagas", "tls"))
        clearing_url = self.text(
            clearing, "clearing", "url", "amqp://guest:guest@127.0.0.1:5672/%2F"
        )
        clearing_tls = broker_tls_config(
            self, clearing, "clearing.tls", "clearing.url", clearing_url
        )
        clients = self.clients(data.get("clients", []))
        accounts = data.get("accounts")
        demo = self.flag(gateway, "gateway", "demo_accounts", accounts is None)
        directory = seed_directory() if demo else self.accounts(accounts or [])
        return GatewayConfig(
            host=host,
            port=port,
            settings=settings,
            issuer=issuer,
            clients=clients,
            directory=directory,
            clearing_url=clearing_url,
            clearing_tls=clearing_tls,
            outgoing=self.text(clearing, "clearing", "outgoing", "clearing.outgoing"),
            status=self.text(clearing, "clearing", "status", "clearing.status"),
            sagas=self.flag(clearing, "clearing", "sagas", False),
            statement_files=statements,
            response_signing_key=signing_key,
            tls=tls,
            database=self.database(gateway),
            consent_cache_seconds=self.number(
                gateway, "gateway", "consent_cache_seconds", 1.0, 0.0, 60.0
            ),
            sca=self.sca(gateway.get("sca", {})),
        )

    def sca(self, table: object) -> ScaSettings:
        where = "gateway.sca"
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        self.known(
            table,
            where,
            ("enabled", "digits", "step", "algorithm", "skew_steps", "max_attempts",
             "lockout_seconds", "issuer_label"),
        )  # fmt: skip
        algorithm = self.text(table, where, "algorithm", "SHA1").upper()
        if algorithm not in TOTP_ALGORITHMS:
            raise self.fail(
                f"{where}.algorithm", f"{algorithm} is not one of {', '.join(TOTP_ALGORITHMS)}"
            )
        number = self.number
        return ScaSettings(
            enabled=self.flag(table, where, "enabled", True),
            digits=int(number(table, where, "digits", 6, 6, 8)),
            step=int(number(table, where, "step", 30, 1, 300)),
            algorithm=cast(Algorithm, algorithm),
            skew_steps=int(number(table, where, "skew_steps", 1, 0, 10)),
            max_attempts=int(number(table, where, "max_attempts", 5, 1, 1000)),
            lockout_seconds=number(table, where, "lockout_seconds", 900.0, 1.0, 86400.0 * 7),
            issuer_label=self.text(table, where, "issuer_label", "isobridge"),
        )

    def database(self, table: Mapping[str, Any]) -> str | None:
        if "database" not in table:
            return None
        url = self.text(table, "gateway", "database", None)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        if memory or (url.startswith("sqlite:") and not url.startswith("sqlite:///")):
            raise self.fail(
                "gateway.database",
                "sqlite:///<file>: an SQLite file (memory is neither shared nor kept)",
            )
        if not url.startswith(DATABASE_SCHEMES):
            raise self.fail(
                "gateway.database",
                f"{url.split(':', 1)[0]!r} is not a database the gateway keeps its state in:"
                " sqlite:///<file> or postgresql+psycopg://user:password@host/database",
            )
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            url = f"sqlite:///{self.base / url.removeprefix('sqlite:///')}"
        return url

    def tls(self, table: object) -> GatewayTlsConfig:
        where = "gateway.tls"
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        self.known(
            table, where, ("cert", "key", "client_ca", "forwarded_client_cert", "reload_interval")
        )
        client_ca = table.get("client_ca")
        config = GatewayTlsConfig(
            cert=self.file(f"{where}.cert", self.text(table, where, "cert", None)),
            key=self.file(f"{where}.key", self.text(table, where, "key", None)),
            client_ca=(
                self.file(f"{where}.client_ca", self.text(table, where, "client_ca", None))
                if client_ca is not None
                else None
            ),
            forwarded_client_cert=self.flag(table, where, "forwarded_client_cert", False),
            reload_interval=self.number(table, where, "reload_interval", 30.0, 0.1, 86400.0),
        )
        try:
            config.server_context()
        except (ssl.SSLError, OSError) as exc:
            raise self.fail(where, f"cannot use these files: {exc}") from None
        return config

    def jwks_url(self, table: Mapping[str, Any]) -> str | None:
        if "jwks_url" not in table:
            return None
        url = self.text(table, "issuer", "jwks_url", None)
        if not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise self.fail("issuer.jwks_url", "an https:// URL (http only on this machine)")
        return url

    def clients(self, value: object) -> tuple[ClientRegistration, ...]:
        found: list[ClientRegistration] = []
        for where, table in self.array_of_tables(value, "clients"):
            self.known(
                table,
                where,
                ("client_id", "tenant", "scopes", "redirect_uris", "secret", "certificate",
                 "jws_issuer", "jwks"),
            )  # fmt: skip
            client_id = self.text(table, where, "client_id", None)
            if any(client.client_id == client_id for client in found):
                raise self.fail(f"{where}.client_id", f"{client_id} is registered twice")
            scopes = self.strings(table, where, "scopes", ("accounts", "payments"))
            if not set(scopes) <= {"accounts", "payments", "admin"}:
                raise self.fail(f"{where}.scopes", "scopes are accounts, payments and admin")
            thumbprint = None
            if "certificate" in table:
                path = self.file(
                    f"{where}.certificate", self.text(table, where, "certificate", None)
                )
                try:
                    der = x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(
                        Encoding.DER
                    )
                except ValueError:
                    raise self.fail(f"{where}.certificate", "not a PEM certificate") from None
                thumbprint = certificate_thumbprint(der)
            secret = table.get("secret")
            if secret is not None and (not isinstance(secret, str) or len(secret) < 8):
                raise self.fail(f"{where}.secret", "at least 8 characters")
            if thumbprint is None and secret is None:
                raise self.fail(where, "needs a certificate or a secret to authenticate")
            jwks: dict[str, Any] = {}
            if "jwks" in table:
                path = self.file(f"{where}.jwks", self.text(table, where, "jwks", None))
                try:
                    jwks = json.loads(path.read_text())
                except (ValueError, UnicodeDecodeError):
                    raise self.fail(f"{where}.jwks", "not a JSON key set") from None
            found.append(
                ClientRegistration(
                    client_id=client_id,
                    tenant=self.text(table, where, "tenant", client_id),
                    scopes=frozenset(scopes),
                    redirect_uris=self.strings(table, where, "redirect_uris", ()),
                    secret_sha256=hash_secret(secret) if secret else None,
                    certificate_sha256=thumbprint,
                    jws_issuer=table.get("jws_issuer"),
                    jwks=jwks,
                )
            )
        return tuple(found)

    def accounts(self, value: object) -> AccountDirectory:
        records = []
        for where, table in self.array_of_tables(value, "accounts"):
            self.known(table, where, ("psu", "iban", "currency", "name"))
            records.append(
                AccountRecord(
                    self.text(table, where, "psu", None),
                    self.text(table, where, "iban", None),
                    self.text(table, where, "currency", None),
                    self.text(table, where, "name", None),
                )
            )
        return AccountDirectory(records)


def load_gateway_config(path: Path) -> GatewayConfig:
    """The configuration in ``path``; :class:`hub.config_file.ConfigError` naming the key."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    return _Reader(source, path.resolve().parent).config(data)
