"""Compile and run the COBOL programs under ``cobol/`` with GnuCOBOL (``cobc``).

Executables are cached by a hash of the sources and the compiler options, under the system's
temporary directory, so a test session compiles each program once. ``scripts/test`` installs
Debian's ``gnucobol3`` when ``cobc`` is missing; without it these tests fail, they do not skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["COBOL_DIR", "compile_program", "run_program"]

COBOL_DIR = Path(__file__).parent / "cobol"


def compile_program(program: str, *options: str) -> Path:
    """The executable of ``cobol/{program}.cbl`` built with ``cobc -x`` and ``options``."""
    cobc = shutil.which("cobc")
    if cobc is None:
        raise RuntimeError(
            "cobc (GnuCOBOL) is not installed: run scripts/test, or apt-get install gnucobol3"
        )
    digest = hashlib.sha256(" ".join(options).encode())
    for source in sorted(COBOL_DIR.iterdir()):
        digest.update(source.name.encode() + source.read_bytes())
    cache = Path(tempfile.gettempdir()) / f"isobridge-cobc-{os.getuid()}" / digest.hexdigest()[:16]
    executable = cache / program
    if executable.exists():
        return executable
    cache.mkdir(parents=True, exist_ok=True)
    building = cache / f"{program}.{os.getpid()}.tmp"
    result = subprocess.run(
        [
            cobc,
            "-x",
            *options,
            "-I",
            str(COBOL_DIR),
            "-o",
            str(building),
            str(COBOL_DIR / f"{program}.cbl"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cobc failed for {program}:\n{result.stdout}{result.stderr}")
    building.replace(executable)
    return executable


def run_program(executable: Path, *args: str, cwd: Path) -> str:
    """Run a compiled program with ``args`` on its command line; its standard output."""
    result = subprocess.run(
        [str(executable), *args], capture_output=True, text=True, cwd=cwd, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"{executable.name} failed ({result.returncode}): {result.stderr}")
    return result.stdout
