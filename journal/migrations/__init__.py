"""Alembic migrations of the journal's tables (:mod:`journal.schema`), run by journal.migrate."""
