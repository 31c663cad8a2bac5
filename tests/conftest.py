"""Every test runs with its own hub state directory, never the user's."""

from __future__ import annotations

from pathlib import Path

import pytest

_SETTINGS = (
    "ISOBRIDGE_VAULT_URL",
    "ISOBRIDGE_MASTER_KEYS",
    "ISOBRIDGE_KEY_FILE",
    "ISOBRIDGE_TOKEN_MODE",
    "ISOBRIDGE_JOURNAL_URL",
)


SHARED = Path(__file__).resolve().parents[2] / "shared"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The shared reference data (official XSD samples, NIST vectors) sits beside the clone
    (``../shared``); without it the tests that check against it cannot run, so say so."""
    if not SHARED.is_dir():
        raise pytest.UsageError(
            f"the tests read the shared reference data at {SHARED} (../shared beside the clone)"
        )


@pytest.fixture(autouse=True)
def isolated_hub_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``ISOBRIDGE_HOME`` in the test's temporary directory; no other hub setting inherited."""
    home = tmp_path / "isobridge-home"
    monkeypatch.setenv("ISOBRIDGE_HOME", str(home))
    for name in _SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return home
