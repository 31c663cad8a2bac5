"""The throwaway CA: what it writes verifies the way a TLS peer checks it."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from hub.certs import DEV_CERTIFICATES, CertificateAuthority, create_dev_certificates, self_signed


def _load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_dev_certificates_chain_to_their_ca_and_keys_are_private(tmp_path: Path) -> None:
    made = create_dev_certificates(tmp_path / "dev", hosts=["hub.example", "10.1.2.3"], days=7)
    ca = _load(made.ca.cert)
    assert set(made.leaves) == {stem for stem, _, _ in DEV_CERTIFICATES}
    for stem, _, server in DEV_CERTIFICATES:
        files = made.leaves[stem]
        leaf = _load(files.cert)
        leaf.verify_directly_issued_by(ca)  # raises if not signed by the CA
        assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        wanted = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        assert list(usage) == [wanted]
        lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
        assert dt.timedelta(days=7) <= lifetime <= dt.timedelta(days=7, minutes=10)
        if server:
            names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert names.get_values_for_type(x509.DNSName) == ["localhost", "hub.example"]
            assert names.get_values_for_type(x509.IPAddress) == [
                ipaddress.ip_address("127.0.0.1"),
                ipaddress.ip_address("10.1.2.3"),
            ]
    assert stat.S_IMODE(made.ca.key.stat().st_mode) == 0o600


def test_expired_and_self_signed_certificates_for_refusal_tests(tmp_path: Path) -> None:
    authority = CertificateAuthority(tmp_path)
    expired = _load(authority.issue("old", "old", server=False, expired=True).cert)
    assert expired.not_valid_after_utc < dt.datetime.now(dt.UTC)
    alone = self_signed(tmp_path / "self", "alone", "alone", server=True)
    certificate = _load(alone.cert)
    assert certificate.issuer == certificate.subject
    public_key = certificate.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    certificate.verify_directly_issued_by(certificate)
