"""hub.toml: every key read, the environment applied, and errors that name the key."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from hub.config_file import ConfigError, HubConfig, load_config
from observability.logs import LoggingConfig
from observability.tracing import TracingConfig
from tests.certs import TestAuthority

FULL = """
[hub]
tenant = "bank-a"
home = "state"

[vault]
url = "sqlite:////tmp/elsewhere.db"
token_mode = "ff1"

[routing]
transport = "amqp://guest:guest@127.0.0.1:5672/%2F"
rules = "routes.toml"

[[listeners]]
name = "pos"
port = 8583
framing = "len2-tpdu"
adapter = "iso8583:ebcdic-cp037"
request_timeout = 2.5

[[listeners]]
name = "atm"
port = 8584
tenant = "bank-b"
[listeners.tls]
cert = "certs/server.crt"
key = "certs/server.key"
client_ca = "certs/ca.crt"

[mainframe]
host = "core.example"
port = 3271
framing = "cics"
codepage = "cp1047"
timeout = 1.5
connections = 8
"""


def _write(directory: Path, text: str) -> Path:
    path = directory / "hub.toml"
    path.write_text(text)
    return path


def _full(tmp_path: Path) -> HubConfig:
    (tmp_path / "routes.toml").write_text("")
    certs = tmp_path / "certs"
    certs.mkdir()
    authority = TestAuthority(certs)
    authority.issue("server", "edge.test", server=True)
    return load_config(_write(tmp_path, FULL), environ={})


def test_every_key_is_read(tmp_path: Path) -> None:
    config = _full(tmp_path)
    assert config.tenant == "bank-a"
    assert config.settings.home == tmp_path / "state"
    assert config.settings.vault_url == "sqlite:////tmp/elsewhere.db"
    assert config.settings.token_mode == "ff1"
    assert config.routing.transport.startswith("amqp://")
    assert config.routing.rules == tmp_path / "routes.toml"
    pos, atm = config.listeners
    assert (pos.name, pos.port, pos.framing, pos.adapter) == (
        "pos", 8583, "len2-tpdu", "iso8583:ebcdic-cp037",
    )  # fmt: skip
    assert (pos.tenant, pos.request_timeout, pos.tls) == ("bank-a", 2.5, None)
    assert atm.tenant == "bank-b"
    assert atm.tls is not None
    assert atm.tls.client_ca == tmp_path / "certs" / "ca.crt"
    context = atm.edge_settings().tls
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    mainframe = config.mainframe
    assert mainframe is not None
    assert (mainframe.host, mainframe.port, mainframe.framing, mainframe.codepage) == (
        "core.example", 3271, "cics", "cp1047",
    )  # fmt: skip
    assert (mainframe.timeout, mainframe.connections, mainframe.failure_threshold) == (1.5, 8, 5)


def test_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "routes.toml").write_text("")
    path = _write(tmp_path, '[vault]\nurl = "sqlite:////a.db"\n[routing]\ntransport = "memory://"')
    config = load_config(
        path,
        environ={
            "ISOBRIDGE_VAULT_URL": "postgresql+psycopg://u:p@db/vault",
            "ISOBRIDGE_TRANSPORT_URL": "amqp://rabbit",
            "ISOBRIDGE_HOME": str(tmp_path / "home"),
        },
    )
    assert config.settings.vault_url == "postgresql+psycopg://u:p@db/vault"
    assert config.routing.transport == "amqp://rabbit"
    assert config.settings.home == tmp_path / "home"


def test_tracing_and_logging_are_read_and_off_or_readable_by_default(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[tracing]\nexporter = "otlp"\nendpoint = "http://collector:4318/v1/traces"\n'
        'service_name = "hub-eu"\nsample_ratio = 0.25\n[logging]\nformat = "json"\nlevel = "INFO"',
    )
    config = load_config(path, environ={})
    assert config.tracing == TracingConfig(
        "otlp", "http://collector:4318/v1/traces", "hub-eu", 0.25
    )
    assert config.logging == LoggingConfig("json", "INFO")
    defaults = load_config(None, environ={"ISOBRIDGE_HOME": str(tmp_path)})
    assert defaults.tracing == TracingConfig("none")
    assert defaults.logging == LoggingConfig("text", "WARNING")
    environment = {"ISOBRIDGE_LOG_FORMAT": "text", "ISOBRIDGE_LOG_LEVEL": "debug"}
    assert load_config(path, environ=environment).logging == LoggingConfig("text", "DEBUG")
    with pytest.raises(ConfigError, match=r"\$ISOBRIDGE_LOG_FORMAT: unknown value 'yaml'"):
        load_config(path, environ={"ISOBRIDGE_LOG_FORMAT": "yaml"})


def test_no_file_means_the_embedded_defaults(tmp_path: Path) -> None:
    config = load_config(None, environ={"ISOBRIDGE_HOME": str(tmp_path)})
    assert config.routing.transport == "memory://"
    assert config.listeners == ()
    assert config.mainframe is None
    assert config.settings.embedded
    assert config.metrics is None  # no /metrics unless asked for


def test_metrics_listen_address(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[metrics]\nlisten = '0.0.0.0:9100'"), environ={})
    assert config.metrics is not None and config.metrics.listen == "0.0.0.0:9100"
    config = load_config(_write(tmp_path, "[metrics]"), environ={})
    assert config.metrics is not None and config.metrics.listen == "127.0.0.1:9464"


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[hub]\ntenant = 3", "hub.tenant", "expected a non-empty string, got int 3"),
        ("[hub]\njournal = 'no'", "hub.journal", "expected true or false, got str 'no'"),
        ("[routing]\nnamespace = 'a.b'", "routing.namespace", "'a.b' is not a name of letters"),
        ("[hubb]", "hubb", "unknown key (did you mean 'hub'?)"),
        ("[[listeners]]\nname = 'a'\nprot = 1", "listeners[0].prot", "did you mean 'port'?"),
        ("[[listeners]]\nport = 1", "listeners[0].name", "required"),
        ("[[listeners]]\nname = 'a'", "listeners[0].port", "required"),
        ("[[listeners]]\nname = 'a'\nport = 70000", "listeners[0].port", "outside 0..65535"),
        ("[[listeners]]\nname = 'a'\nport = '1'", "listeners[0].port", "expected an integer"),
        (
            "[[listeners]]\nname = 'a'\nport = 1\nframing = 'len2'",
            "listeners[0].framing",
            "unknown value 'len2'",
        ),
        (
            "[[listeners]]\nname = 'a'\nport = 1\nadapter = 'iso20022'",
            "listeners[0].adapter",
            "not an ISO 8583 adapter spec",
        ),
        (
            "[[listeners]]\nname = 'a'\nport = 1\n[[listeners]]\nname = 'a'\nport = 2",
            "listeners[1].name",
            "'a' is used twice",
        ),
        (
            "[[listeners]]\nname = 'a'\nport = 1\n[listeners.tls]\ncert = 'x.crt'\nkey = 'x.key'",
            "listeners[0].tls.cert",
            "no such file",
        ),
        ("[mainframe]\ntimeout = -1", "mainframe.timeout", "positive number of seconds"),
        ("[mainframe]\ncodepage = 'cp1140'", "mainframe.codepage", "unknown value 'cp1140'"),
        ("[routing]\ntransport = 'kafka://x'", "routing.transport", "not a transport URL"),
        (
            "[routing]\ntransport = 'amqp://u:pw@mq1:5681,,mq3:5683/%2F'",
            "routing.transport",
            "node 2 of 'amqp://u:***@mq1:5681,,mq3:5683/%2F' has no host",
        ),
        (
            "[routing]\ntransport = 'amqp://mq1:5681,mq2:56x2/'",
            "routing.transport",
            "node 2 of 'amqp://mq1:5681,mq2:56x2/' has a bad port: 'mq2:56x2'",
        ),
        ("[routing]\nrules = 'missing.toml'", "routing.rules", "no such file"),
        ("[vault]\ntoken_mode = 'ff3'", "vault.token_mode", "not a token mode"),
        ("listeners = 3", "listeners", "expected an array of tables"),
        ("[clearing]", "clearing", "needs a [mainframe]"),
        ("[mainframe]\n[clearing]", "clearing.url", "an amqp:// URL is required"),
        ("[mainframe]\n[clearing]\ninbox = 'x'", "clearing.inbox", "did you mean 'inbound'?"),
        (
            "[hub]\njournal = false\n[mainframe]\n[clearing]\nurl = 'amqp://h/'\nsagas = true",
            "clearing.sagas",
            "sagas live in the journal",
        ),
        (
            "[mainframe]\n[clearing]\nurl = 'amqp://h/'\nsagas = 'yes'",
            "clearing.sagas",
            "expected true or false",
        ),
        ("[metrics]\nlisten = '9464'", "metrics.listen", "'9464' is not host:port"),
        ("[metrics]\nlisten = 'h:70000'", "metrics.listen", "port 70000 is outside 0..65535"),
        ("[metrics]\nlistn = ':9464'", "metrics.listn", "did you mean 'listen'?"),
        ("metrics = 1", "metrics", "expected a table"),
        ("[tracing]\nexporter = 'jaeger'", "tracing.exporter", "unknown value 'jaeger'"),
        ("[tracing]\nendpoint = 'collector:4318'", "tracing.endpoint", "not an http(s)://"),
        ("[tracing]\nsample_ratio = 1.5", "tracing.sample_ratio", "a number in 0..1"),
        ("[tracing]\nsampler = 1", "tracing.sampler", "did you mean 'sample_ratio'?"),
        ("[logging]\nformat = 'xml'", "logging.format", "unknown value 'xml'"),
        ("[logging]\nlevel = 'loud'", "logging.level", "unknown value 'loud'"),
    ],
)
def test_errors_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.key == key
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{path}: {key}: ")


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match=r"not valid TOML: .*line 1"):
        load_config(_write(tmp_path, "[hub\n"), environ={})


def test_the_journal_flush_interval_defaults_to_a_tenth_of_a_second(tmp_path: Path) -> None:
    assert load_config(None, environ={}).journal_flush_interval == 0.1
    path = _write(tmp_path, "[hub]\njournal_flush_interval = 0.02\n")
    assert load_config(path, environ={}).journal_flush_interval == 0.02


def test_mutual_tls_to_the_mainframe_and_upstream_hosts(tmp_path: Path) -> None:
    authority = TestAuthority(tmp_path)
    authority.issue("hub-client", "hub", server=False)
    config = load_config(
        _write(
            tmp_path,
            "[hub]\ntls_reload_interval = 5\n"
            "[mainframe]\n[mainframe.tls]\nca = 'ca.crt'\ncert = 'hub-client.crt'\n"
            "key = 'hub-client.key'\nserver_name = 'mainframe.bank.example'\n"
            "[[upstreams]]\nname = 'visa'\nhost = '10.0.0.5'\nport = 8583\n"
            "[upstreams.tls]\nca = 'ca.crt'\n",
        ),
        environ={},
    )
    assert config.tls_reload_interval == 5.0
    assert config.mainframe is not None and config.mainframe.tls is not None
    tls = config.mainframe.tls
    assert (tls.ca, tls.cert, tls.key, tls.server_name) == (
        tmp_path / "ca.crt",
        tmp_path / "hub-client.crt",
        tmp_path / "hub-client.key",
        "mainframe.bank.example",
    )
    assert tls.files == (
        tmp_path / "ca.crt",
        tmp_path / "hub-client.crt",
        tmp_path / "hub-client.key",
    )
    context = tls.client_context()
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    (visa,) = config.upstreams
    assert visa.tls is not None and (visa.tls.cert, visa.tls.server_name) == (None, None)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[mainframe]\n[mainframe.tls]\ncert = 'hub.crt'", "mainframe.tls.ca", "required"),
        ("[mainframe]\n[mainframe.tls]\nca = 'absent.crt'", "mainframe.tls.ca", "no such file"),
        ("[mainframe]\n[mainframe.tls]\nca = 'ca.crt'\ncert = 'hub.crt'", "mainframe.tls.key",
         "cert and key go together"),
        ("[mainframe]\n[mainframe.tls]\nca = 'ca.crt'\nserver_nam = 'x'",
         "mainframe.tls.server_nam", "did you mean 'server_name'?"),
        ("[mainframe]\n[mainframe.tls]\nca = 'hub.key'", "mainframe.tls",
         "cannot use these files"),
        ("[mainframe]\n[mainframe.tls]\nca = 'ca.crt'\ncert = 'hub.crt'\nkey = 'ca.key'",
         "mainframe.tls", "cannot use these files"),
        ("[mainframe]\nvia = 'mq'\nmq_url = 'amqp://h'\n[mainframe.tls]\nca = 'ca.crt'",
         "mainframe.tls", "mainframe.mq_url is amqp:// (no TLS): use an amqps:// URL"),
        ("[routing]\ntransport = 'amqp://h'\n[routing.tls]\nca = 'ca.crt'",
         "routing.tls", "routing.transport is amqp:// (no TLS): use an amqps:// URL"),
        ("[routing]\ntransport = 'memory://'\n[routing.tls]\nca = 'ca.crt'",
         "routing.tls", "routing.transport is memory:// (no TLS)"),
        ("[routing]\ntransport = 'amqps://h'\n[routing.tls]\ncert = 'hub.crt'",
         "routing.tls.ca", "required"),
        ("[routing]\ntransport = 'amqps://h'\n[routing.tls]\nca = 'ca.crt'\nauth = 'externa'",
         "routing.tls.auth", "did you mean 'external'?"),
        ("[routing]\ntransport = 'amqps://h'\n[routing.tls]\nca = 'ca.crt'\nauth = 'external'",
         "routing.tls.auth", "external logs in with the client certificate: set cert and key"),
        ("[routing]\ntransport = 'amqps://h'\n[routing.tls]\nca = 'ca.crt'\ncert = 'hub.crt'",
         "routing.tls.key", "cert and key go together"),
        ("[routing]\ntransport = 'amqps://h'\n[routing.tls]\nca = 'ca.crt'\nkey_file = 'x'",
         "routing.tls.key_file", "unknown key"),
        ("[routing]\ntransport = 'amqps://h'\n[mainframe]\n[clearing]\nurl = 'amqp://h'\n"
         "[clearing.tls]\nca = 'ca.crt'", "clearing.tls", "clearing.url is amqp:// (no TLS)"),
        ("[[upstreams]]\nname = 'v'\nhost = 'h'\nport = 1\n[upstreams.tls]\nca = 'ca.crt'\n"
         "auth = 'external'", "upstreams[0].tls.auth", "unknown key"),
        ("[mainframe]\ntls = 1", "mainframe.tls", "expected a table"),
        ("[[upstreams]]\nname = 'v'\nhost = 'h'\nport = 1\n[upstreams.tls]\ncert = 'hub.crt'",
         "upstreams[0].tls.ca", "required"),
        ("[[listeners]]\nname = 'a'\nport = 1\n[listeners.tls]\ncert = 'hub.crt'\nkey = 'ca.key'",
         "listeners[0].tls", "cannot use these files"),
        ("[hub]\ntls_reload_interval = 0", "hub.tls_reload_interval", "positive number"),
        ("[hub]\njournal_flush_interval = 0", "hub.journal_flush_interval", "positive number"),
        ("[hub]\njournal_flush_interval = 'x'", "hub.journal_flush_interval", "positive number"),
        ("[hub]\njournal_flush_interval = 5.5", "hub.journal_flush_interval",
         "at most 5 seconds (the events a killed hub loses), got 5.5"),
    ],
)  # fmt: skip
def test_tls_errors_name_the_key(tmp_path: Path, text: str, key: str, reason: str) -> None:
    authority = TestAuthority(tmp_path)
    authority.issue("hub", "hub", server=False)
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_tls_to_the_broker_for_every_queue_url(tmp_path: Path) -> None:
    """[routing.tls] serves the amqps:// transport and, unless they have their own, the
    amqps:// clearing and mainframe MQ URLs; an amqp:// URL never gets it."""
    authority = TestAuthority(tmp_path)
    authority.issue("hub-client", "isobridge hub", server=False)
    other = TestAuthority(tmp_path / "mq")
    text = (
        "[routing]\ntransport = 'amqps://hub@mq1:5671,mq2/%2F'\n"
        "[routing.tls]\nca = 'ca.crt'\ncert = 'hub-client.crt'\nkey = 'hub-client.key'\n"
        "server_name = 'mq.bank.example'\nauth = 'external'\n"
        "[mainframe]\nvia = 'mq'\nmq_url = 'amqps://core-mq/%2F'\n"
        "[mainframe.tls]\nca = 'mq/ca.crt'\n"
        "[clearing]\n"
    )
    config = load_config(_write(tmp_path, text), environ={})
    routing = config.routing.tls
    assert routing is not None
    assert (routing.ca, routing.cert, routing.server_name, routing.auth) == (
        tmp_path / "ca.crt",
        tmp_path / "hub-client.crt",
        "mq.bank.example",
        "external",
    )
    tls = config.routing.broker_tls()
    assert tls is not None and tls.external and tls.server_name == "mq.bank.example"
    assert tls.context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert tls.context.verify_mode == ssl.CERT_REQUIRED and tls.context.check_hostname
    assert config.clearing is not None and config.clearing.tls == routing  # inherited
    assert config.mainframe is not None and config.mainframe.tls is not None
    assert config.mainframe.tls.ca == other.files.cert
    mq = config.mainframe.broker_tls()
    assert mq is not None and not mq.external
    # plain URLs: no TLS settings at all
    plain = load_config(
        _write(tmp_path, "[routing]\ntransport = 'amqp://h'\n[mainframe]\n[clearing]\n"),
        environ={},
    )
    assert plain.routing.broker_tls() is None
    assert plain.clearing is not None and plain.clearing.broker_tls() is None


def test_clearing_sagas_and_their_queues(tmp_path: Path) -> None:
    text = (
        "[mainframe]\n[clearing]\nurl = 'amqp://h/'\nsagas = true\n"
        "outgoing = 'cl.out'\nstatus = 'cl.status'\n"
    )
    clearing = load_config(_write(tmp_path, text), environ={}).clearing
    assert clearing is not None
    assert (clearing.sagas, clearing.outgoing, clearing.status) == (True, "cl.out", "cl.status")
    plain = load_config(_write(tmp_path, "[mainframe]\n[clearing]\nurl = 'amqp://h/'\n"), {})
    assert plain.clearing is not None and plain.clearing.sagas is False
