"""The open-banking gateway: OBIE v4.0 account information and payment initiation over HTTP.

ARCHITECTURE.md (``gateway/``, main flow 2). Standards and where each is implemented:

- UK Open Banking Read/Write API v4.0: the OpenAPI documents in ``gateway/specs``
  (:mod:`gateway.spec`), account information (:mod:`gateway.aisp`), payment initiation
  (:mod:`gateway.pisp`, :mod:`gateway.payments`), consents (:mod:`gateway.consents`), error
  bodies (:mod:`gateway.errors`), idempotency (:mod:`gateway.idempotency`), message
  signing (:mod:`gateway.signatures`);
- FAPI 1.0 Advanced / FAPI 2.0 Security Profile, OAuth 2.0 and JOSE: the resource server
  (:mod:`gateway.security.tokens`), JWS and JWK with ``cryptography``
  (:mod:`gateway.security.jose`), a built-in authorization server for demos and tests
  (:mod:`gateway.security.authserver`);
- HTTP plumbing (:mod:`gateway.http`), per-client rate limits (:mod:`gateway.limits`).

The application is built by :func:`gateway.app.create_app` from services that the
composition root (``hub.gateway``) wires to the hub: the gateway itself imports no part of
``hub`` (ARCHITECTURE.md, import rules).
"""

__all__: list[str] = []
