"""Benchmark: the persistent vault against raw AES-256-GCM + HMAC-SHA256, in one run.

Floor: what a vault cannot avoid per card number, done with the raw libraries: one
HMAC-SHA256 (the fingerprint) and one AES-256-GCM encryption of the PAN (cryptography).
Then, on a SQLite vault in a temporary directory (the embedded default):

- tokenize of a known PAN (answered from the in-process cache after the fingerprint);
- tokenize of new PANs, persisted: batches of ``--batch`` (``tokenize_many``, one
  transaction each) and, for reference, one transaction per PAN (``tokenize``);
- detokenize with its audit row committed before the answer: batches
  (``detokenize_many``) and one by one (``detokenize``).

Run::

    .venv/bin/python -m bench.vault_throughput [--cards 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import hmac
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cryptography
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from canonical_model.pan import PanToken
from vault.keys import FileKeyProvider
from vault.policy import Caller
from vault.sql import SqlVault

TENANT = "bench"
OPERATOR = Caller("bench", frozenset({"operator"}))


def _cards(count: int, seed: int) -> list[str]:
    import random

    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < count:
        body = "4" + "".join(rng.choice("0123456789") for _ in range(14))
        total = 0
        for position, char in enumerate(reversed(body)):
            value = int(char) * (2 if position % 2 == 0 else 1)
            total += value - 9 if value > 9 else value
        found[body + str((10 - total % 10) % 10)] = None
    return list(found)


def _rate(operation: Callable[[], int]) -> float:
    """Operations per second of ``operation``, which does some and says how many."""
    start = time.perf_counter()
    done = operation()
    return done / (time.perf_counter() - start)


def run(cards: int, batch: int) -> dict[str, float]:
    pans = _cards(cards, seed=1)
    singles = _cards(min(2000, cards // 4), seed=2)
    key, mac_key = AESGCM(secrets.token_bytes(32)), secrets.token_bytes(32)

    def floor() -> int:
        for pan in pans:
            hmac.digest(mac_key, pan.encode(), "sha256")
            key.encrypt(os.urandom(12), pan.encode(), b"isobridge/pan/bench/token/1")
        return len(pans)

    results: dict[str, float] = {"floor: HMAC-SHA256 + AES-256-GCM (raw)": _rate(floor)}
    with tempfile.TemporaryDirectory(prefix="isobridge-bench-") as home:
        keys = FileKeyProvider.create(Path(home) / "keys.json")
        vault = SqlVault.open(f"sqlite:///{Path(home) / 'vault.db'}", keys, create=True)
        try:
            vault.tokenize(pans[0], tenant=TENANT)  # tenant keys created outside the timing

            def new_batched() -> int:
                for start in range(0, len(pans), batch):
                    vault.tokenize_many(pans[start : start + batch], tenant=TENANT)
                return len(pans)

            def new_single() -> int:
                for pan in singles:
                    vault.tokenize(pan, tenant=TENANT)
                return len(singles)

            def known() -> int:
                for pan in pans:
                    vault.tokenize(pan, tenant=TENANT)
                return len(pans)

            results[f"tokenize new PAN, SQLite, batches of {batch}"] = _rate(new_batched)
            results["tokenize new PAN, SQLite, one commit each"] = _rate(new_single)
            results["tokenize known PAN"] = _rate(known)
            tokens = vault.tokenize_many(pans, tenant=TENANT)

            def detokenize_batched() -> int:
                for start in range(0, len(tokens), batch):
                    vault.detokenize_many(
                        tokens[start : start + batch], tenant=TENANT, purpose="bench",
                        caller=OPERATOR,
                    )  # fmt: skip
                return len(tokens)

            def detokenize_single() -> int:
                chosen: list[PanToken] = tokens[: len(singles)]
                for token in chosen:
                    vault.detokenize(token, tenant=TENANT, purpose="bench", caller=OPERATOR)
                return len(chosen)

            results[f"detokenize + audit, batches of {batch}"] = _rate(detokenize_batched)
            results["detokenize + audit, one commit each"] = _rate(detokenize_single)
        finally:
            vault.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--cards", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}, cryptography {cryptography.__version__}")
    print(f"{args.cards} cards, batches of {args.batch}\n")
    results = run(args.cards, args.batch)
    floor = results["floor: HMAC-SHA256 + AES-256-GCM (raw)"]
    for label, rate in results.items():
        print(f"  {label:<48} {rate:>10,.0f}/s   {floor / rate:6.1f}x floor cost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
