"""The test command's dependency audit: known vulnerabilities in what isobridge installs.

Runs ``pip-audit`` (PyPA) over the test virtualenv (the project itself, installed editable,
is skipped) against the package registry's vulnerability data, and:

- fails (exit 1) when any installed distribution has a known vulnerability, naming each with
  its advisory id and the versions that fix it;
- passes with a clear message when the registry cannot be reached, or answers for none of the
  installed versions (a mirror without vulnerability data): the audit could not be made
  here, which is said, never passed off as a clean result;
- otherwise passes, saying how many distributions were audited and how many the registry
  could not answer for.

Run: ``.venv-test/bin/python scripts/audit_dependencies.py`` (``./scripts/test`` does).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

TIMEOUT_SECONDS = 600


def main() -> int:
    command = [
        sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
        "--skip-editable", "--timeout", "15",
    ]  # fmt: skip
    try:
        done = subprocess.run(  # noqa: S603 - this interpreter, a fixed command line
            command, capture_output=True, text=True, timeout=TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"dependency audit skipped: the registry did not answer in {TIMEOUT_SECONDS} s")
        return 0
    try:
        report: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"dependency audit skipped: the registry cannot be reached ({reason})")
        return 0
    audited = [d for d in report.get("dependencies", []) if "skip_reason" not in d]
    skipped = [d for d in report.get("dependencies", []) if "skip_reason" in d]
    vulnerable = [d for d in audited if d.get("vulns")]
    for dependency in vulnerable:
        for vuln in dependency["vulns"]:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version yet"
            print(
                f"VULNERABLE: {dependency['name']} {dependency['version']}: {vuln['id']}"
                f" (fixed in {fixed})"
            )
    if vulnerable:
        print(f"dependency audit failed: {len(vulnerable)} vulnerable distribution(s)")
        return 1
    if not audited:
        print(
            f"dependency audit skipped: the registry has no vulnerability data for any of the"
            f" {len(skipped)} installed distributions (a mirror?)"
        )
        return 0
    print(
        f"dependency audit: {len(audited)} distributions with no known vulnerability;"
        f" {len(skipped)} the registry could not answer for"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
