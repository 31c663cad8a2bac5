"""Tests of the event journal."""
