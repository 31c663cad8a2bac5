"""A throwaway certificate authority for the demo and the tests (``isobridge certs dev``).

X.509 v3 (RFC 5280) with ``cryptography``: an ECDSA P-256 CA, and leaf certificates it signs
for servers (``serverAuth``, subject alternative names ``localhost`` and ``127.0.0.1`` plus
any given) or clients (``clientAuth``). Private keys are written as unencrypted PKCS#8 PEM,
mode 0600. Nothing here is for production: a bank's certificates come from its own PKI, and
the configuration files only name PEM files (README, "TLS").

For the refusal tests it also writes what must be refused: an expired certificate
(``issue(..., expired=True)``) and a self-signed one (:func:`self_signed`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEV_CERTIFICATES",
    "CertFiles",
    "CertificateAuthority",
    "DevCertificates",
    "create_dev_certificates",
    "self_signed",
]


@dataclass(frozen=True)
class CertFiles:
    """PEM files of one certificate and its key."""

    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> CertFiles:
    cert_path = directory / f"{stem}.crt"
    key_path = directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # The key never exists with wider permissions, not even for a moment.
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)
    return CertFiles(cert_path, key_path)


def _alternative_names(hosts: Sequence[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    for host in ("localhost", "127.0.0.1", *hosts):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            entry: x509.GeneralName = x509.DNSName(host)
        else:
            entry = x509.IPAddress(address)
        if entry not in names:
            names.append(entry)
    return x509.SubjectAlternativeName(names)


class CertificateAuthority:
    """A CA in ``directory`` (``ca.crt``, ``ca.key``); :meth:`issue` writes leaf certificates
    signed by it, valid for ``days``."""

    def __init__(self, directory: Path, name: str = "isobridge test CA", *, days: int = 1) -> None:
        self.directory = directory
        self.days = days
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )  # fmt: skip
        self.files = _write(directory, "ca", self._cert, self._key)

    @classmethod
    def existing(cls, directory: Path, *, days: int = 1) -> Self:
        """The CA already in ``directory`` (``ca.crt``, ``ca.key``, as written by this
        class or ``isobridge certs dev``), to issue more certificates with."""
        authority = cls.__new__(cls)
        authority.directory = directory
        authority.days = days
        cert = x509.load_pem_x509_certificate((directory / "ca.crt").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{directory / 'ca.key'}: not an elliptic-curve key")
        authority._cert, authority._key = cert, key
        authority.files = CertFiles(directory / "ca.crt", directory / "ca.key")
        return authority

    def issue(
        self,
        stem: str,
        common_name: str,
        *,
        server: bool,
        hosts: Sequence[str] = (),
        expired: bool = False,
    ) -> CertFiles:
        """A leaf certificate: for a server on ``localhost`` / ``127.0.0.1`` (and ``hosts``),
        or a client. ``expired``: its validity ended yesterday (for refusal tests)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        if expired:
            not_before, not_after = now - dt.timedelta(days=30), now - dt.timedelta(days=1)
        else:
            not_before, not_after = (
                now - dt.timedelta(minutes=5),
                now + dt.timedelta(days=self.days),
            )
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if server:
            builder = builder.add_extension(_alternative_names(hosts), critical=False)
        return _write(self.directory, stem, builder.sign(self._key, hashes.SHA256()), key)


def self_signed(directory: Path, stem: str, common_name: str, *, server: bool) -> CertFiles:
    """A leaf certificate signed by its own key (no CA vouches for it): to be refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if server:
        builder = builder.add_extension(_alternative_names(()), critical=False)
    directory.mkdir(parents=True, exist_ok=True)
    return _write(directory, stem, builder.sign(key, hashes.SHA256()), key)


DEV_CERTIFICATES: Final = (
    # stem, common name, server?: what each one is for (README, "TLS")
    ("hub-edge", "isobridge hub edge", True),  # [listeners.tls] cert / key
    ("acquirer", "isobridge dev acquirer", False),  # an acquirer calling an edge
    ("hub-client", "isobridge hub", False),  # the hub to the mainframe and upstream hosts
    ("mainframe", "isobridge mainframe", True),  # mainframe_sim serve --tls-cert / --tls-key
    ("upstream", "isobridge upstream host", True),  # an upstream ISO 8583 host
    ("gateway", "isobridge gateway", True),  # [gateway.tls] cert / key
    ("tpp", "isobridge dev TPP", False),  # a TPP's client certificate ([[clients]] certificate)
    ("rabbitmq", "isobridge dev broker", True),  # scripts/rabbitmq-tls: RabbitMQ's amqps listener
)


@dataclass(frozen=True)
class DevCertificates:
    """What :func:`create_dev_certificates` wrote: the CA's files and each leaf by stem."""

    ca: CertFiles
    leaves: dict[str, CertFiles]


def create_dev_certificates(
    directory: Path, *, hosts: Sequence[str] = (), days: int = 30
) -> DevCertificates:
    """A throwaway CA and every certificate of :data:`DEV_CERTIFICATES` in ``directory``."""
    authority = CertificateAuthority(directory, "isobridge dev CA (not for production)", days=days)
    leaves = {
        stem: authority.issue(stem, name, server=server, hosts=hosts)
        for stem, name, server in DEV_CERTIFICATES
    }
    return DevCertificates(authority.files, leaves)
