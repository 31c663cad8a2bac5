"""Alembic migrations of the vault's schema (:mod:`vault.schema`); run by :mod:`vault.migrate`."""
