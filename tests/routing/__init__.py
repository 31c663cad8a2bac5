"""Tests of routing: rules, ordering, inbox, outbox."""
