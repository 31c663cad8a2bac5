"""Collection settings for the whole repository (doctests run over the packages too)."""

# Alembic runs the migration scripts itself; imported by pytest (--doctest-modules) they
# fail outside a migration context.
collect_ignore_glob = [
    "vault/migrations/*",
    "routing/migrations/*",
    "hub/migrations/*",
    "gateway/migrations/*",
    "journal/migrations/*",
]
