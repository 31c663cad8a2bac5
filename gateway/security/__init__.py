"""Security of the gateway: JOSE (:mod:`~gateway.security.jose`), the OAuth 2.0 resource
server (:mod:`~gateway.security.tokens`) and the built-in authorization server
(:mod:`~gateway.security.authserver`)."""

__all__: list[str] = []
