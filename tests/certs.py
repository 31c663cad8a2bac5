"""The tests' certificate authority: the package's dev CA (:mod:`hub.certs`) under the name
the tests have always used."""

from __future__ import annotations

from hub.certs import CertFiles, CertificateAuthority, self_signed

__all__ = ["CertFiles", "TestAuthority", "self_signed"]


class TestAuthority(CertificateAuthority):
    """A CA in ``directory``; :meth:`issue` writes leaf certificates signed by it."""

    __test__ = False  # not a pytest test class
