"""The gateway's tests read the OBIE specification from the shared collection too."""

from __future__ import annotations

from pathlib import Path

SHARED_SPECS = (
    Path(__file__).resolve().parents[3] / "shared" / "specs" / "openbanking" / "uk-obie-v4.0"
)
