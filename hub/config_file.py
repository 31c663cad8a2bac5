"""``hub.toml``: the running hub's configuration file, validated with errors that name the key.

``isobridge run --config hub.toml`` reads it; environment variables override the values that
:class:`hub.config.Settings` knows (``ISOBRIDGE_HOME``, ``ISOBRIDGE_VAULT_URL``,
``ISOBRIDGE_KEY_FILE``, ``ISOBRIDGE_MASTER_KEYS``, ``ISOBRIDGE_TOKEN_MODE``,
``ISOBRIDGE_STORE_URL``) and
``ISOBRIDGE_TRANSPORT_URL`` overrides ``[routing] transport``. Every table and key is
optional; what is absent takes the default shown::

    [hub]
    tenant = "default"                  # the tenant of traffic from listeners without one
    home = "/var/lib/isobridge"         # state directory (default: $ISOBRIDGE_HOME or XDG)
    workers = 1                         # hub processes sharing the listeners (hub.workers)
    journal = true                      # false: record no events (no audit trail, no trace);
                                        # only to measure what journaling costs
    journal_flush_interval = 0.1        # seconds a batch of journal events waits for more
                                        # (at most 5; what a killed hub loses: hub.journaling)
    tls_reload_interval = 30.0          # seconds between checks of the TLS files (hub.tls)
    store_url = "sqlite:///<home>/hub.db"  # the reversals still to forward (hub.store); with
                                        # instances on several machines: postgresql+psycopg://...

    [vault]
    url = "sqlite:///<home>/vault.db"   # or postgresql+psycopg://user:pw@host/db
    key_file = "<home>/master-keys.json"
    token_mode = "random"               # random | ff1 | ff3-1

    [routing]
    transport = "memory://"             # or amqp://user:pw@host:5672/vhost; a RabbitMQ
                                        # cluster: amqp://user:pw@h1:5672,h2:5672,h3:5672/vhost
    namespace = "isobridge"             # exchanges <namespace>.canonical / .dlx, queues
                                        # <namespace>.<destination>: hubs that must not
                                        # share work on one broker use different ones
    rules = "routes.toml"               # route rules (relative to this file); none: built-in
    core_shards = 0                     # N > 0: each core destination becomes N queues with
                                        # one active consumer each, a message's shard chosen
                                        # by its account or card: order per account kept
                                        # across hub instances (see hub.service)

    [[listeners]]                       # ISO 8583 acquirer edges, any number
    name = "pos"                        # required, unique
    port = 8583                         # required
    host = "0.0.0.0"                    # default 127.0.0.1
    framing = "len2-binary"             # adapters.framing names
    adapter = "iso8583:ascii"           # an ISO 8583 adapter spec
    tenant = "bank-a"                   # default: [hub] tenant
    max_message_size = 8192
    in_flight_per_connection = 64
    max_connections = 1024
    idle_timeout = 300.0                # seconds
    request_timeout = 30.0              # seconds, then 91
    [listeners.tls]                     # optional: TLS 1.3 only (hub.tls)
    cert = "edge.crt"
    key = "edge.key"
    client_ca = "acquirers-ca.crt"      # optional: require client certificates from this CA

    [[upstreams]]                       # upstream ISO 8583 hosts: destination upstream.<name>
    name = "visa"                       # required, unique
    host = "10.0.0.5"                   # required
    port = 8583                         # required
    framing = "len2-binary"
    adapter = "iso8583:ascii"
    timeout = 5.0
    connections = 2
    failure_threshold = 5
    reset_after = 10.0
    [upstreams.tls]                     # optional: mutual TLS 1.3 to the host (hub.tls)
    ca = "visa-ca.crt"                  # required: the CA the host's certificate chains to
    cert = "hub-client.crt"             # the hub's client certificate and key
    key = "hub-client.key"
    server_name = "switch.visa.example" # default: host; checked against the host's certificate

    [clearing]                          # the clearing system's queue pair (needs [mainframe])
    url = "amqp://..."                  # default: [routing] transport when it is amqp://
    inbound = "clearing.inbound"        # pacs.008 documents in
    outbound = "clearing.outbound"      # pacs.002 status reports out
    sagas = false                       # true: payment sagas (hub.sagas; needs [hub] journal):
                                        # inbound credited or returned (pacs.004), and route
                                        # destination clearing / clearing.* sent as outbound
                                        # credit transfers (hold, pacs.008, settle / recall)
    outgoing = "clearing.outgoing"      # sagas: pacs.008 and camt.056 out
    status = "clearing.status"          # sagas: pacs.002 / pacs.004 / camt.029 back

    [metrics]                           # Prometheus /metrics (observability.metrics)
    listen = "127.0.0.1:9464"           # host:port; without [metrics]: not served

    [mainframe]                         # the core banking connector
    via = "tcp"                         # tcp, or mq: the RabbitMQ queue pair
    mq_url = "amqp://..."               # via = "mq" (default: the amqp:// transport)
    request_queue = "mainframe.requests"  # via = "mq"
    host = "127.0.0.1"
    port = 7070
    framing = "len2"                    # len2 | len4 (binary length) | cics (tran id + record)
    codepage = "cp037"
    timeout = 5.0                       # seconds per request
    connections = 4                     # pool size
    failure_threshold = 5               # circuit breaker: failures in a row to open
    reset_after = 10.0                  # seconds open before a probe
    [mainframe.tls]                     # optional (via = "tcp"): mutual TLS 1.3, keys as in
    ca = "mainframe-ca.crt"             # [upstreams.tls]
    cert = "hub-client.crt"
    key = "hub-client.key"
    server_name = "mainframe.bank.example"

TLS is 1.3 only, everywhere (:mod:`hub.tls`). Certificates are reloaded from their files on
SIGHUP and when a file changes (checked every ``[hub] tls_reload_interval`` seconds): new
connections use them, open ones carry on.

    [tracing]                           # OpenTelemetry spans (observability.tracing)
    exporter = "none"                   # none | otlp (OTLP over HTTP) | console (stderr)
    endpoint = "http://collector:4318/v1/traces"  # otlp; default: the OTEL_EXPORTER_OTLP_*
                                        # variables, else http://localhost:4318/v1/traces
    service_name = "isobridge"
    sample_ratio = 1.0                  # of the traces started at the edges

    [logging]                           # observability.logs; every line masked
    format = "text"                     # text (readable) | json (one object per line)
    level = "warning"                   # $ISOBRIDGE_LOG_FORMAT / _LEVEL override both

    [keys]                              # key rotation schedules (hub.rotation)
    check_interval = 60.0               # seconds between checks of the policies
    retry_initial = 5.0                 # a failed rotation is retried after this, doubling
    retry_max = 600.0                   # ... up to this
    jwks_prepublish = 300.0             # a new signing key is in the JWKS this long first
    [[keys.policies]]                   # one per key family, any number
    family = "vault.data"               # vault.data | authserver.signing | journal.tenant
    max_age = "90d"                     # seconds, or 90d / 12h / 30m / 45s
    max_uses = 1000000                  # encryptions / signatures of the active key

Relative paths are taken from the directory of the configuration file. An error names the
file, the key (``listeners[1].port``) and the reason, and suggests the key meant when an
unknown one is close to a known one:

>>> print(ConfigError("hub.toml", "listeners[0].prot", "unknown key (did you mean 'port'?)"))
hub.toml: listeners[0].prot: unknown key (did you mean 'port'?)
"""

from __future__ import annotations

import difflib
import os
import re
import ssl
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from adapters.codepages import EBCDIC_CODEPAGES
from adapters.framing import FRAMERS
from hub.config import Settings
from hub.edge import EdgeSettings
from hub.rotation import KeysConfig, keys_config
from hub.tls import client_context, server_context
from observability.logs import LOG_FORMATS, LoggingConfig
from observability.metrics import parse_listen
from observability.tracing import EXPORTERS, TracingConfig

if TYPE_CHECKING:
    from routing.amqps import BrokerTls

__all__ = [
    "ClearingConfig",
    "ConfigError",
    "HubConfig",
    "ListenerConfig",
    "MainframeConfig",
    "MetricsConfig",
    "RoutingConfig",
    "ClientTlsConfig",
    "TableReader",
    "TlsConfig",
    "UpstreamConfig",
    "broker_tls_config",
    "load_config",
    "logging_config",
]

MAINFRAME_FRAMINGS: Final = ("len2", "len4", "cics")
_TRANSPORT_SCHEMES: Final = ("memory://", "amqp://", "amqps://")
_JOURNAL_FLUSH_INTERVAL: Final = 0.1
_MAX_JOURNAL_FLUSH_INTERVAL: Final = 5.0


class ConfigError(ValueError):
    """A configuration file that cannot be used: the file, the key and why."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source = source
        self.key = key
        self.reason = reason
        super().__init__(f"{source}: {key}: {reason}" if key else f"{source}: {reason}")

    def __repr__(self) -> str:
        return f"ConfigError({str(self)!r})"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """A listener's certificate and key, and the CA its clients' certificates must chain to."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def server_context(self) -> ssl.SSLContext:
        """A TLS 1.3 server context (forward secrecy only); client certificates required
        when ``client_ca`` is set."""
        return server_context(self.cert, self.key, self.client_ca)

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the context is built from (watched for a reload)."""
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


@dataclass(frozen=True, slots=True)
class ClientTlsConfig:
    """Mutual TLS to a destination (``[mainframe.tls]``, ``[upstreams.tls]``): the CA its
    certificate must chain to, the hub's own certificate and key, the name to check."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None
    auth: str = "password"  # a broker's login ([routing.tls]): password | external

    def client_context(self) -> ssl.SSLContext:
        """A TLS 1.3 client context trusting ``ca`` only and presenting ``cert``."""
        return client_context(self.ca, self.cert, self.key)

    def broker_tls(self) -> BrokerTls:
        """The TLS settings of an ``amqps://`` connection (:mod:`routing.amqps`)."""
        from routing.amqps import BrokerTls  # pika only when RabbitMQ is configured

        return BrokerTls(self.client_context(), self.server_name, self.auth == "external")

    @property
    def files(self) -> tuple[Path, ...]:
        """The files the context is built from (watched for a reload)."""
        return tuple(path for path in (self.ca, self.cert, self.key) if path is not None)


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One ISO 8583 acquirer edge (``[[listeners]]``)."""

    name: str
    port: int
    host: str = "127.0.0.1"
    framing: str = "len2-binary"
    adapter: str = "iso8583:ascii"
    tenant: str = "default"
    max_message_size: int = 8192
    in_flight_per_connection: int = 64
    max_connections: int = 1024
    idle_timeout: float = 300.0
    request_timeout: float = 30.0
    tls: TlsConfig | None = None

    def edge_settings(self) -> EdgeSettings:
        """The settings of :class:`hub.edge.Iso8583Edge` for this listener."""
        return EdgeSettings(
            host=self.host,
            port=self.port,
            framing=self.framing,
            tenant=self.tenant,
            max_message_size=self.max_message_size,
            in_flight_per_connection=self.in_flight_per_connection,
            max_connections=self.max_connections,
            idle_timeout=self.idle_timeout,
            request_timeout=self.request_timeout,
            tls=self.tls.server_context() if self.tls is not None else None,
        )


@dataclass(frozen=True, slots=True)
class MainframeConfig:
    """The core banking connector (``[mainframe]``)."""

    host: str = "127.0.0.1"
    port: int = 7070
    framing: str = "len2"
    codepage: str = "cp037"
    timeout: float = 5.0
    connections: int = 4
    failure_threshold: int = 5
    reset_after: float = 10.0
    via: str = "tcp"
    mq_url: str | None = None
    request_queue: str = "mainframe.requests"
    tls: ClientTlsConfig | None = None  # via = "tcp": to the host; "mq": an amqps:// mq_url

    def broker_tls(self) -> BrokerTls | None:
        """The TLS settings of ``mq_url`` (None: via TCP, or an ``amqp://`` URL)."""
        return self.tls.broker_tls() if self.tls is not None and self.via == "mq" else None


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """An upstream ISO 8583 host (``[[upstreams]]``): route destination ``upstream.<name>``."""

    name: str
    host: str
    port: int
    framing: str = "len2-binary"
    adapter: str = "iso8583:ascii"
    timeout: float = 5.0
    connections: int = 2
    failure_threshold: int = 5
    reset_after: float = 10.0
    tls: ClientTlsConfig | None = None


@dataclass(frozen=True, slots=True)
class ClearingConfig:
    """The clearing system's queue pair (``[clearing]``)."""

    url: str
    inbound: str = "clearing.inbound"
    outbound: str = "clearing.outbound"
    sagas: bool = False
    outgoing: str = "clearing.outgoing"
    status: str = "clearing.status"
    tls: ClientTlsConfig | None = None  # url is amqps://: [clearing.tls], else [routing.tls]

    def broker_tls(self) -> BrokerTls | None:
        """The TLS settings of ``url`` (None: an ``amqp://`` URL)."""
        return self.tls.broker_tls() if self.tls is not None else None


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """Where ``isobridge run`` serves ``/metrics`` (``[metrics]``; with workers, the
    supervisor serves the sum over them)."""

    listen: str = "127.0.0.1:9464"


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """The transport and the route rules (``[routing]``)."""

    transport: str = "memory://"
    rules: Path | None = None
    namespace: str = "isobridge"
    core_shards: int = 0
    tls: ClientTlsConfig | None = None  # [routing.tls]: an amqps:// transport

    def broker_tls(self) -> BrokerTls | None:
        """The TLS settings of the transport (None: not an ``amqps://`` one)."""
        return self.tls.broker_tls() if self.tls is not None else None


@dataclass(frozen=True, slots=True)
class HubConfig:
    """Everything ``isobridge run`` needs."""

    settings: Settings
    tenant: str = "default"
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    listeners: tuple[ListenerConfig, ...] = ()
    mainframe: MainframeConfig | None = None
    clearing: ClearingConfig | None = None
    upstreams: tuple[UpstreamConfig, ...] = ()
    source: str = "(defaults)"
    workers: int = 1
    journal: bool = True
    journal_flush_interval: float = _JOURNAL_FLUSH_INTERVAL
    metrics: MetricsConfig | None = None
    tls_reload_interval: float = 30.0
    tracing: TracingConfig = field(default_factory=TracingConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    keys: KeysConfig = field(default_factory=KeysConfig)


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> HubConfig:
    """The configuration in ``path`` (defaults only when ``None``), environment applied."""
    env = os.environ if environ is None else environ
    if path is None:
        return _Reader("(defaults)", Path.cwd(), env).config({})
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(source, "", "no such file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, "", f"cannot read: {exc}") from None
    return _Reader(source, path.resolve().parent, env).config(data)


class TableReader:
    """What every reader of a TOML configuration file shares: errors that name the file and
    the key, unknown keys refused with a "did you mean", tables checked to be tables. Paths
    in the file are relative to ``base``."""

    def __init__(self, source: str, base: Path) -> None:
        self.source = source
        self.base = base

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(self.source, key, reason)

    def known(self, table: Mapping[str, Any], where: str, keys: Sequence[str]) -> None:
        for key in table:
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(keys)})"
                raise self.fail(f"{where}.{key}" if where else key, f"unknown key{hint}")

    def table(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "expected a table")
        return value

    def array_of_tables(self, value: object, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
        """Each table of the array ``[[name]]`` with where it is (``name[index]``)."""
        if not isinstance(value, list):
            raise self.fail(name, f"expected an array of tables ([[{name}]])")
        for index, table in enumerate(value):
            where = f"{name}[{index}]"
            if not isinstance(table, dict):
                raise self.fail(where, "expected a table")
            yield where, table


def broker_tls_config(
    reader: TableReader, parent: Mapping[str, Any], where: str, url_key: str, url: str
) -> ClientTlsConfig | None:
    """The TLS table ``where`` (keys as in ``[routing.tls]``) of the RabbitMQ URL at
    ``url_key`` in another configuration file (the gateway's ``[clearing.tls]``), read with
    ``reader``'s file name and directory."""
    return _Reader(reader.source, reader.base, {}).broker_tls(parent, where, url_key, url, None)


class _Reader(TableReader):
    """Reads ``hub.toml``'s tables, checking each key against what it may be."""

    def __init__(self, source: str, base: Path, environ: Mapping[str, str]) -> None:
        super().__init__(source, base)
        self.environ = environ

    def config(self, data: Mapping[str, Any]) -> HubConfig:
        self.known(
            data,
            "",
            ("hub", "vault", "routing", "listeners", "mainframe", "clearing", "upstreams",
             "metrics", "tracing", "logging", "keys"),
        )  # fmt: skip
        hub = self.table(data, "hub")
        self.known(
            hub,
            "hub",
            (
                "tenant",
                "home",
                "workers",
                "journal",
                "journal_flush_interval",
                "tls_reload_interval",
                "store_url",
            ),
        )
        tenant = self.text(hub, "hub.tenant", "tenant", "default")
        vault = self.table(data, "vault")
        self.known(vault, "vault", ("url", "key_file", "token_mode"))
        environ = dict(self.environ)
        home = self.optional_text(hub, "hub.home", "home")
        if home is not None and "ISOBRIDGE_HOME" not in environ:
            environ["ISOBRIDGE_HOME"] = str(self.path(home))
        mode = self.optional_text(vault, "vault.token_mode", "token_mode")
        if mode is not None and "ISOBRIDGE_TOKEN_MODE" not in environ:
            environ["ISOBRIDGE_TOKEN_MODE"] = mode
        key_file = self.optional_text(vault, "vault.key_file", "key_file")
        if key_file is not None and "ISOBRIDGE_KEY_FILE" not in environ:
            environ["ISOBRIDGE_KEY_FILE"] = str(self.path(key_file))
        url = self.optional_text(vault, "vault.url", "url")
        if url is not None and "ISOBRIDGE_VAULT_URL" not in environ:
            environ["ISOBRIDGE_VAULT_URL"] = url
        store_url = self.optional_text(hub, "hub.store_url", "store_url")
        if store_url is not None and "ISOBRIDGE_STORE_URL" not in environ:
            environ["ISOBRIDGE_STORE_URL"] = store_url
        try:
            settings = Settings.from_environment(environ)
        except ValueError as exc:
            raise self.fail("vault.token_mode", str(exc)) from None
        listeners = self.listeners(data.get("listeners", []), tenant)
        workers = self.integer(hub, "hub.workers", "workers", 1, 1, 64)
        if workers > 1:
            for index, listener in enumerate(listeners):
                if listener.port == 0:
                    raise self.fail(
                        f"listeners[{index}].port",
                        f"0 (any free port) cannot be shared by {workers} workers: name a port",
                    )
        routing = self.routing(self.table(data, "routing"))
        mainframe = self.mainframe(data["mainframe"], routing) if "mainframe" in data else None
        clearing = None
        if "clearing" in data:
            if mainframe is None:
                raise self.fail("clearing", "needs a [mainframe] to credit the transfers on")
            clearing = self.clearing(self.table(data, "clearing"), routing)
            if clearing.sagas and not self.boolean(hub, "hub.journal", "journal", True):
                raise self.fail(
                    "clearing.sagas", "sagas live in the journal: [hub] journal = false"
                )
        return HubConfig(
            settings=settings,
            tenant=tenant,
            routing=routing,
            listeners=listeners,
            mainframe=mainframe,
            clearing=clearing,
            upstreams=self.upstreams(data.get("upstreams", [])),
            source=self.source,
            workers=workers,
            journal=self.boolean(hub, "hub.journal", "journal", True),
            journal_flush_interval=self.journal_flush_interval(hub),
            metrics=self.metrics(self.table(data, "metrics")) if "metrics" in data else None,
            tls_reload_interval=self.seconds(
                hub, "hub.tls_reload_interval", "tls_reload_interval", 30.0
            ),
            tracing=self.tracing(self.table(data, "tracing")),
            logging=logging_config(self, self.table(data, "logging"), self.environ),
            keys=keys_config(self, self.table(data, "keys")),
        )

    def tracing(self, table: Mapping[str, Any]) -> TracingConfig:
        self.known(table, "tracing", ("exporter", "endpoint", "service_name", "sample_ratio"))
        defaults = TracingConfig()
        exporter = self.text(table, "tracing.exporter", "exporter", defaults.exporter)
        if exporter not in EXPORTERS:
            raise self.fail("tracing.exporter", _unknown(exporter, EXPORTERS))
        endpoint = self.optional_text(table, "tracing.endpoint", "endpoint")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise self.fail("tracing.endpoint", f"{endpoint!r} is not an http(s):// URL")
        ratio = table.get("sample_ratio", defaults.sample_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 <= ratio <= 1:
            raise self.fail(
                "tracing.sample_ratio", f"expected a number in 0..1, got {_shown(ratio)}"
            )
        return TracingConfig(
            exporter,  # type: ignore[arg-type]  # checked against EXPORTERS above
            endpoint,
            self.text(table, "tracing.service_name", "service_name", defaults.service_name),
            float(ratio),
        )

    def metrics(self, table: Mapping[str, Any]) -> MetricsConfig:
        self.known(table, "metrics", ("listen",))
        listen = self.text(table, "metrics.listen", "listen", MetricsConfig().listen)
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise self.fail("metrics.listen", str(exc)) from None
        return MetricsConfig(listen)

    def upstreams(self, value: object) -> tuple[UpstreamConfig, ...]:
        result: list[UpstreamConfig] = []
        for where, table in self.array_of_tables(value, "upstreams"):
            self.known(
                table,
                where,
                ("name", "host", "port", "framing", "adapter", "timeout", "connections",
                 "failure_threshold", "reset_after", "tls"),
            )  # fmt: skip
            defaults = UpstreamConfig(name="", host="", port=0)
            name = self.required_text(table, f"{where}.name", "name")
            if any(other.name == name for other in result):
                raise self.fail(f"{where}.name", f"{name!r} is used twice")
            framing = self.text(table, f"{where}.framing", "framing", defaults.framing)
            if framing not in FRAMERS:
                raise self.fail(f"{where}.framing", _unknown(framing, FRAMERS))
            adapter = self.text(table, f"{where}.adapter", "adapter", defaults.adapter)
            if adapter.split(":", 1)[0] != "iso8583":
                raise self.fail(f"{where}.adapter", f"{adapter!r} is not an ISO 8583 adapter spec")
            result.append(
                UpstreamConfig(
                    name=name,
                    host=self.required_text(table, f"{where}.host", "host"),
                    port=self.integer(table, f"{where}.port", "port", None, 1, 65535),
                    framing=framing,
                    adapter=adapter,
                    timeout=self.seconds(table, f"{where}.timeout", "timeout", defaults.timeout),
                    connections=self.integer(
                        table, f"{where}.connections", "connections", defaults.connections, 1, 256
                    ),
                    failure_threshold=self.integer(
                        table,
                        f"{where}.failure_threshold",
                        "failure_threshold",
                        defaults.failure_threshold,
                        1,
                        1000,
                    ),
                    reset_after=self.seconds(
                        table, f"{where}.reset_after", "reset_after", defaults.reset_after
                    ),
                    tls=self.client_tls(table, f"{where}.tls"),
                )
            )
        return tuple(result)

    def clearing(self, table: Mapping[str, Any], routing: RoutingConfig) -> ClearingConfig:
        self.known(
            table, "clearing", ("url", "inbound", "outbound", "sagas", "outgoing", "status", "tls")
        )
        transport = routing.transport
        default = transport if transport.startswith(("amqp://", "amqps://")) else None
        url = self.optional_text(table, "clearing.url", "url") or default
        if url is None or not url.startswith(("amqp://", "amqps://")):
            raise self.fail("clearing.url", "an amqp:// URL is required (the transport is not one)")
        defaults = ClearingConfig(url)
        tls = self.broker_tls(table, "clearing.tls", "clearing.url", url, routing.tls)
        return ClearingConfig(
            url,
            self.text(table, "clearing.inbound", "inbound", defaults.inbound),
            self.text(table, "clearing.outbound", "outbound", defaults.outbound),
            self.boolean(table, "clearing.sagas", "sagas", defaults.sagas),
            self.text(table, "clearing.outgoing", "outgoing", defaults.outgoing),
            self.text(table, "clearing.status", "status", defaults.status),
            tls,
        )

    # -- tables

    def routing(self, table: Mapping[str, Any]) -> RoutingConfig:
        self.known(table, "routing", ("transport", "rules", "namespace", "core_shards", "tls"))
        transport = self.environ.get("ISOBRIDGE_TRANSPORT_URL") or self.text(
            table, "routing.transport", "transport", "memory://"
        )
        if not transport.startswith(_TRANSPORT_SCHEMES):
            raise self.fail(
                "routing.transport",
                f"{transport!r} is not a transport URL ({', '.join(_TRANSPORT_SCHEMES)}...)",
            )
        if transport.startswith(("amqp://", "amqps://")):
            from routing.amqp import node_urls  # pika only when RabbitMQ is configured

            try:
                node_urls(transport)
            except ValueError as exc:
                raise self.fail("routing.transport", str(exc)) from None
        rules = self.optional_text(table, "routing.rules", "rules")
        namespace = self.text(table, "routing.namespace", "namespace", "isobridge")
        if not _NAMESPACE.fullmatch(namespace):
            raise self.fail(
                "routing.namespace",
                f"{namespace!r} is not a name of letters, digits, '-' and '_' (at most 64)",
            )
        return RoutingConfig(
            transport,
            self.existing_file("routing.rules", rules),
            namespace,
            self.integer(table, "routing.core_shards", "core_shards", 0, 0, 256),
            self.broker_tls(table, "routing.tls", "routing.transport", transport, None),
        )

    def listeners(self, value: object, tenant: str) -> tuple[ListenerConfig, ...]:
        listeners: list[ListenerConfig] = []
        names: set[str] = set()
        ports: set[int] = set()
        for where, table in self.array_of_tables(value, "listeners"):
            listener = self.listener(table, where, tenant)
            if listener.name in names:
                raise self.fail(f"{where}.name", f"{listener.name!r} is used twice")
            if listener.port != 0 and listener.port in ports:
                raise self.fail(f"{where}.port", f"{listener.port} is used twice")
            names.add(listener.name)
            ports.add(listener.port)
            listeners.append(listener)
        return tuple(listeners)

    def listener(self, table: Mapping[str, Any], where: str, tenant: str) -> ListenerConfig:
        defaults = ListenerConfig(name="", port=0)
        self.known(
            table,
            where,
            ("name", "port", "host", "framing", "adapter", "tenant", "max_message_size",
             "in_flight_per_connection", "max_connections", "idle_timeout", "request_timeout",
             "tls"),
        )  # fmt: skip
        name = self.required_text(table, f"{where}.name", "name")
        framing = self.text(table, f"{where}.framing", "framing", defaults.framing)
        if framing not in FRAMERS:
            raise self.fail(f"{where}.framing", _unknown(framing, FRAMERS))
        adapter = self.text(table, f"{where}.adapter", "adapter", defaults.adapter)
        if adapter.split(":", 1)[0] != "iso8583":
            raise self.fail(f"{where}.adapter", f"{adapter!r} is not an ISO 8583 adapter spec")
        tls_table = table.get("tls")
        tls = None
        if tls_table is not None:
            if not isinstance(tls_table, dict):
                raise self.fail(f"{where}.tls", "expected a table")
            tls = self.tls(tls_table, f"{where}.tls")
        return ListenerConfig(
            name=name,
            port=self.integer(table, f"{where}.port", "port", None, 0, 65535),
            host=self.text(table, f"{where}.host", "host", defaults.host),
            framing=framing,
            adapter=adapter,
            tenant=self.text(table, f"{where}.tenant", "tenant", tenant),
            max_message_size=self.integer(
                table, f"{where}.max_message_size", "max_message_size",
                defaults.max_message_size, 64, 65535,
            ),
            in_flight_per_connection=self.integer(
                table, f"{where}.in_flight_per_connection", "in_flight_per_connection",
                defaults.in_flight_per_connection, 1, 100_000,
            ),
            max_connections=self.integer(
                table, f"{where}.max_connections", "max_connections",
                defaults.max_connections, 1, 1_000_000,
            ),
            idle_timeout=self.seconds(
                table, f"{where}.idle_timeout", "idle_timeout", defaults.idle_timeout
            ),
            request_timeout=self.seconds(
                table, f"{where}.request_timeout", "request_timeout", defaults.request_timeout
            ),
            tls=tls,
        )  # fmt: skip

    def tls(self, table: Mapping[str, Any], where: str) -> TlsConfig:
        self.known(table, where, ("cert", "key", "client_ca"))
        cert = self.existing_file(
            f"{where}.cert", self.required_text(table, f"{where}.cert", "cert")
        )
        key = self.existing_file(f"{where}.key", self.required_text(table, f"{where}.key", "key"))
        client_ca = self.existing_file(
            f"{where}.client_ca", self.optional_text(table, f"{where}.client_ca", "client_ca")
        )
        if cert is None or key is None:
            raise RuntimeError("internal error: expected cert is not None and key is not None")
        config = TlsConfig(cert, key, client_ca)
        try:
            config.server_context()
        except (ssl.SSLError, OSError) as exc:
            raise self.fail(where, f"cannot use these files: {exc}") from None
        return config

    def client_tls(
        self, parent: Mapping[str, Any], where: str, *, broker: bool = False
    ) -> ClientTlsConfig | None:
        """The optional ``tls`` table of a destination (``broker``: of a RabbitMQ URL, which
        may log in with its certificate: ``auth = "external"``)."""
        table = parent.get("tls")
        if table is None:
            return None
        if not isinstance(table, dict):
            raise self.fail(where, "expected a table")
        self.known(
            table, where, ("ca", "cert", "key", "server_name", *(("auth",) if broker else ()))
        )
        auth = self.text(table, f"{where}.auth", "auth", "password")
        if auth not in ("password", "external"):
            raise self.fail(f"{where}.auth", _unknown(auth, ("password", "external")))
        ca = self.existing_file(f"{where}.ca", self.required_text(table, f"{where}.ca", "ca"))
        cert = self.existing_file(
            f"{where}.cert", self.optional_text(table, f"{where}.cert", "cert")
        )
        key = self.existing_file(f"{where}.key", self.optional_text(table, f"{where}.key", "key"))
        if (cert is None) != (key is None):
            missing = "key" if key is None else "cert"
            raise self.fail(f"{where}.{missing}", "cert and key go together (mutual TLS)")
        if ca is None:
            raise RuntimeError("internal error: expected ca is not None")
        if auth == "external" and cert is None:
            raise self.fail(
                f"{where}.auth", "external logs in with the client certificate: set cert and key"
            )
        config = ClientTlsConfig(
            ca, cert, key, self.optional_text(table, f"{where}.server_name", "server_name"), auth
        )
        try:
            config.client_context()
        except (ssl.SSLError, OSError) as exc:
            raise self.fail(where, f"cannot use these files: {exc}") from None
        return config

    def broker_tls(
        self,
        parent: Mapping[str, Any],
        where: str,
        url_key: str,
        url: str,
        inherited: ClientTlsConfig | None,
    ) -> ClientTlsConfig | None:
        """The TLS table ``where`` of the RabbitMQ URL at ``url_key``: an ``amqps://`` URL
        without one takes ``inherited`` ([routing.tls]); with a plain URL it is an error (never
        sent in the clear by mistake)."""
        config = self.client_tls(parent, where, broker=True)
        scheme = url.partition(":")[0]
        if config is not None and scheme != "amqps":
            raise self.fail(
                where, f"{url_key} is {scheme}:// (no TLS): use an amqps:// URL with TLS settings"
            )
        if config is None and scheme == "amqps":
            return inherited
        return config

    def mainframe(self, value: object, routing: RoutingConfig) -> MainframeConfig:
        transport = routing.transport
        if not isinstance(value, dict):
            raise self.fail("mainframe", "expected a table")
        defaults = MainframeConfig()
        self.known(
            value,
            "mainframe",
            ("host", "port", "framing", "codepage", "timeout", "connections",
             "failure_threshold", "reset_after", "via", "mq_url", "request_queue", "tls"),
        )  # fmt: skip
        via = self.text(value, "mainframe.via", "via", defaults.via)
        if via not in ("tcp", "mq"):
            raise self.fail("mainframe.via", _unknown(via, ("tcp", "mq")))
        mq_url = self.optional_text(value, "mainframe.mq_url", "mq_url")
        if via == "mq":
            mq_url = mq_url or (
                transport if transport.startswith(("amqp://", "amqps://")) else None
            )
            if mq_url is None or not mq_url.startswith(("amqp://", "amqps://")):
                raise self.fail("mainframe.mq_url", 'via = "mq" needs an amqp:// URL')
        if via == "mq" and mq_url is not None:
            tls = self.broker_tls(value, "mainframe.tls", "mainframe.mq_url", mq_url, routing.tls)
        else:
            tls = self.client_tls(value, "mainframe.tls")
        framing = self.text(value, "mainframe.framing", "framing", defaults.framing)
        if framing not in MAINFRAME_FRAMINGS:
            raise self.fail("mainframe.framing", _unknown(framing, MAINFRAME_FRAMINGS))
        codepage = self.text(value, "mainframe.codepage", "codepage", defaults.codepage)
        if codepage not in (*EBCDIC_CODEPAGES, "ascii"):
            raise self.fail("mainframe.codepage", _unknown(codepage, (*EBCDIC_CODEPAGES, "ascii")))
        return MainframeConfig(
            host=self.text(value, "mainframe.host", "host", defaults.host),
            port=self.integer(value, "mainframe.port", "port", defaults.port, 1, 65535),
            framing=framing,
            codepage=codepage,
            timeout=self.seconds(value, "mainframe.timeout", "timeout", defaults.timeout),
            connections=self.integer(
                value, "mainframe.connections", "connections", defaults.connections, 1, 1024
            ),
            failure_threshold=self.integer(
                value, "mainframe.failure_threshold", "failure_threshold",
                defaults.failure_threshold, 1, 1000,
            ),
            reset_after=self.seconds(
                value, "mainframe.reset_after", "reset_after", defaults.reset_after
            ),
            via=via,
            mq_url=mq_url,
            request_queue=self.text(
                value, "mainframe.request_queue", "request_queue", defaults.request_queue
            ),
            tls=tls,
        )  # fmt: skip

    # -- values

    def optional_text(self, table: Mapping[str, Any], where: str, key: str) -> str | None:
        value = table.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"expected a non-empty string, got {_shown(value)}")
        return value

    def text(self, table: Mapping[str, Any], where: str, key: str, default: str) -> str:
        value = self.optional_text(table, where, key)
        return default if value is None else value

    def required_text(self, table: Mapping[str, Any], where: str, key: str) -> str:
        value = self.optional_text(table, where, key)
        if value is None:
            raise self.fail(where, "required")
        return value

    def integer(
        self,
        table: Mapping[str, Any],
        where: str,
        key: str,
        default: int | None,
        low: int,
        high: int,
    ) -> int:
        value = table.get(key, default)
        if value is None:
            raise self.fail(where, "required")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"expected an integer, got {_shown(value)}")
        if not low <= value <= high:
            raise self.fail(where, f"{value} is outside {low}..{high}")
        return value

    def boolean(self, table: Mapping[str, Any], where: str, key: str, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(where, f"expected true or false, got {_shown(value)}")
        return value

    def journal_flush_interval(self, hub: Mapping[str, Any]) -> float:
        where = "hub.journal_flush_interval"
        value = self.seconds(hub, where, "journal_flush_interval", _JOURNAL_FLUSH_INTERVAL)
        if value > _MAX_JOURNAL_FLUSH_INTERVAL:
            raise self.fail(
                where,
                f"at most {_MAX_JOURNAL_FLUSH_INTERVAL:g} seconds (the events a killed hub "
                f"loses), got {value:g}",
            )
        return value

    def seconds(self, table: Mapping[str, Any], where: str, key: str, default: float) -> float:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(where, f"expected a positive number of seconds, got {_shown(value)}")
        return float(value)

    def path(self, text: str) -> Path:
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else self.base / candidate

    def existing_file(self, where: str, text: str | None) -> Path | None:
        if text is None:
            return None
        resolved = self.path(text)
        if not resolved.is_file():
            raise self.fail(where, f"no such file: {resolved}")
        return resolved


_LEVELS: Final = ("debug", "info", "warning", "error", "critical")


def logging_config(
    reader: TableReader, table: Mapping[str, Any], environ: Mapping[str, str]
) -> LoggingConfig:
    """``[logging]`` (``format``, ``level``), ``$ISOBRIDGE_LOG_FORMAT`` and
    ``$ISOBRIDGE_LOG_LEVEL`` taking precedence."""
    reader.known(table, "logging", ("format", "level"))
    values = {}
    for key, variable, choices in (
        ("format", "ISOBRIDGE_LOG_FORMAT", LOG_FORMATS),
        ("level", "ISOBRIDGE_LOG_LEVEL", _LEVELS),
    ):
        where = f"${variable}" if environ.get(variable) else f"logging.{key}"
        value = environ.get(variable) or table.get(key, getattr(LoggingConfig(), key))
        if not isinstance(value, str) or value.lower() not in choices:
            raise reader.fail(where, _unknown(str(value), choices))
        values[key] = value.lower()
    return LoggingConfig(values["format"], values["level"].upper())  # type: ignore[arg-type]


_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _unknown(value: str, choices: tuple[str, ...] | Mapping[str, object]) -> str:
    names = tuple(choices)
    close = difflib.get_close_matches(value, names, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown value {value!r} ({hint}known: {', '.join(names)})"


def _shown(value: object) -> str:
    return f"{type(value).__name__} {value!r}"
