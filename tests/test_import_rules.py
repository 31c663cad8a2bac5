"""The import rules of ARCHITECTURE.md ("Packages", column "may import"), enforced.

The source is read with :mod:`ast`; nothing is imported. Every import counts: ``import x``,
``from x import y`` (checked as the module ``x.y``, so ``from adapters import fixedwidth`` is
``adapters.fixedwidth``), relative imports resolved against the file's package, imports inside
functions and under ``if TYPE_CHECKING:``, and ``importlib.import_module("x")`` /
``__import__("x")`` with a literal name.

A package may always import itself and the standard library (``sys.stdlib_module_names``).
Everything else it imports must be allowed by its row in ``RULES``: first-party modules by
dotted prefix, third-party ones by top-level import name (``iso8583`` is pyiso8583).
"""

from __future__ import annotations

import ast
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import pytest


class Rule(NamedTuple):
    first_party: tuple[str, ...]  # dotted prefixes: "adapters" allows adapters and adapters.*
    third_party: tuple[str, ...]  # top-level import names


ANY: Final = "*"

# package: Rule(first-party prefixes, third-party import names) that it may import besides
# itself and the standard library. ARCHITECTURE.md is the source of truth: change both together.
RULES: Final[dict[str, Rule]] = {
    "canonical_model": Rule((), ()),
    "adapters": Rule(("canonical_model",), ("iso8583", "lxml", "xmlschema")),
    "vault": Rule(("canonical_model",), ("sqlalchemy", "cryptography", "alembic")),
    # sqlalchemy: the inbox and outbox share the transaction of the effect they guard;
    # alembic: their tables are created by migrations, like the vault's.
    "routing": Rule(("canonical_model",), ("pika", "sqlalchemy", "alembic")),
    "journal": Rule(("canonical_model",), ("sqlalchemy", "cryptography", "alembic")),
    "gateway": Rule(
        ("canonical_model", "adapters", "vault", "routing", "journal", "mainframe_sim"),
        # jsonschema / referencing: request bodies checked against the OBIE OpenAPI schemas;
        # cryptography: JWS / JWK (no JOSE library); sqlalchemy / alembic: the state every
        # gateway process shares (consents, idempotency keys, payments), migrated like the
        # vault's tables
        (
            "fastapi",
            "starlette",
            "pydantic",
            "uvicorn",
            "httpx",
            "jsonschema",
            "referencing",
            "cryptography",
            # prometheus_client: /metrics renders a Prometheus registry (observability)
            "prometheus_client",
            "sqlalchemy",
            "alembic",
        ),
    ),
    # Not a row of ARCHITECTURE.md (written before it): metrics, traces and logs; the
    # composition root hands it to the layers it measures.
    "observability": Rule(
        ("canonical_model", "adapters.base", "routing.transport"),
        ("prometheus_client", "opentelemetry"),
    ),
    "hub": Rule((ANY,), (ANY,)),
    "mainframe_sim": Rule(
        ("adapters.fixedwidth", "adapters.framing", "adapters.codepages"), ("sqlalchemy", "pika")
    ),
    # Not layers of ARCHITECTURE.md: they exercise the layers. Listed so that every package
    # on disk has a row (see test_every_package_has_a_rule).
    "bench": Rule((ANY,), (ANY,)),
    "scripts": Rule((), ()),  # the test command's helpers: the standard library only
    "tests": Rule((ANY,), (ANY,)),
}

REPO_ROOT: Final = Path(__file__).resolve().parent.parent

# _typeshed exists for type checkers only (typeshed's stdlib stubs), imported under TYPE_CHECKING.
STDLIB: Final = frozenset(sys.stdlib_module_names) | {"_typeshed"}


def packages_on_disk() -> set[str]:
    """Top-level directories that Python can import as packages: those with an ``__init__.py``,
    and namespace packages (a directory named like a module that holds ``.py`` files)."""
    found: set[str] = set()
    for child in REPO_ROOT.iterdir():
        name = child.name
        if not child.is_dir() or name.startswith((".", "_")) or not name.isidentifier():
            continue
        if (child / "__init__.py").is_file() or any(child.glob("*.py")):
            found.add(name)
    return found


FIRST_PARTY: Final = frozenset(RULES) | packages_on_disk()


@dataclass(frozen=True)
class ImportRef:
    """One import statement (or dynamic import call), resolved to absolute module names."""

    line: int
    module: str  # the absolute module: "x.y" for `import x.y` and for `from x.y import z`
    statement: str  # as written: "import x.y", "from ..y import z, w"
    names: tuple[str, ...] = ()  # z, w of `from x.y import z, w`
    written: str = ""  # the module part of a from-import as written: "..y"
    problem: str = ""  # set when the import cannot be resolved at all


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    statement: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.statement}: {self.reason}"


def module_name(relpath: str) -> tuple[str, bool]:
    """``adapters/iso8583/adapter.py`` -> (``adapters.iso8583.adapter``, False);
    ``adapters/iso8583/__init__.py`` -> (``adapters.iso8583``, True)."""
    parts = list(Path(relpath).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _dynamic_import(node: ast.Call) -> tuple[str, str] | None:
    """``importlib.import_module("x")`` or ``__import__("x")`` with a literal absolute name."""
    func = node.func
    if isinstance(func, ast.Name) and func.id in {"import_module", "__import__"}:
        callee = func.id
    elif (
        isinstance(func, ast.Attribute)
        and func.attr == "import_module"
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    ):
        callee = "importlib.import_module"
    else:
        return None
    if not node.args:
        return None
    first = node.args[0]
    if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
        return None
    if not first.value or first.value.startswith("."):
        return None
    return first.value, f"{callee}({first.value!r})"


def iter_imports(tree: ast.AST, module: str, is_package: bool) -> Iterator[ImportRef]:
    """Every import in ``tree``, the source of ``module`` (a package when ``is_package``)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield ImportRef(node.lineno, alias.name, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            written = "." * node.level + (node.module or "")
            names = tuple(alias.name for alias in node.names)
            statement = f"from {written} import {', '.join(names)}"
            target = node.module or ""
            if node.level:
                parts = package.split(".") if package else []
                if node.level > len(parts):
                    problem = f"relative import beyond the top-level package of {module}"
                    yield ImportRef(node.lineno, "", statement, names, written, problem)
                    continue
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            yield ImportRef(node.lineno, target, statement, names, written)
        elif isinstance(node, ast.Call):
            found = _dynamic_import(node)
            if found is not None:
                yield ImportRef(node.lineno, found[0], found[1])


def _matches(module: str, prefix: str) -> bool:
    return prefix == ANY or module == prefix or module.startswith(prefix + ".")


def forbidden(package: str, module: str) -> str | None:
    """Why ``package`` may not import ``module``, or None when it may."""
    rule = RULES[package]
    top = module.partition(".")[0]
    if top in FIRST_PARTY:
        if top == package or any(_matches(module, prefix) for prefix in rule.first_party):
            return None
        allowed = ", ".join(rule.first_party) or "no other first-party package"
        return f"{package} may not import {module} (first-party allowed: {allowed})"
    if top in STDLIB:
        return None
    if ANY in rule.third_party or top in rule.third_party:
        return None
    allowed = ", ".join(rule.third_party) or "none, standard library only"
    return f"{package} may not import third-party {top!r} (third-party allowed: {allowed})"


def check_source(source: str | bytes, relpath: str) -> list[Violation]:
    """The violations in one file's source; ``relpath`` is its path from the repository root
    (``mainframe_sim/ledger.py``), which gives its package, its rule and its module name."""
    package = Path(relpath).parts[0]
    module, is_package = module_name(relpath)
    try:
        with warnings.catch_warnings():
            # Invalid escapes and the like are ruff's business, not this test's.
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=relpath)
    except SyntaxError as error:
        return [Violation(relpath, error.lineno or 0, "(source)", f"cannot parse: {error.msg}")]
    violations: list[Violation] = []
    for ref in iter_imports(tree, module, is_package):
        violations.extend(
            Violation(relpath, ref.line, statement, reason)
            for statement, reason in _check_import(package, ref)
        )
    return sorted(violations, key=lambda v: (v.line, v.statement))


def _check_import(package: str, ref: ImportRef) -> Iterator[tuple[str, str]]:
    """(statement, reason) for each forbidden part of one import."""
    if ref.problem:
        yield ref.statement, ref.problem
        return
    reason = forbidden(package, ref.module)
    if reason is None:
        return
    allowed_below = any(p.startswith(ref.module + ".") for p in RULES[package].first_party)
    if not ref.names or not allowed_below:
        yield ref.statement, reason
        return
    # `from adapters import fixedwidth` imports the module adapters.fixedwidth, which an
    # allowed prefix may cover though adapters itself is not allowed: judge each name alone.
    for name in ref.names:
        name_reason = reason if name == "*" else forbidden(package, f"{ref.module}.{name}")
        if name_reason is not None:
            yield f"from {ref.written} import {name}", name_reason


def check_package(package: str) -> list[Violation]:
    violations: list[Violation] = []
    for path in sorted((REPO_ROOT / package).rglob("*.py*")):
        if path.suffix not in {".py", ".pyi"} or "__pycache__" in path.parts:
            continue
        relpath = path.relative_to(REPO_ROOT).as_posix()
        violations.extend(check_source(path.read_bytes(), relpath))
    return violations


@pytest.mark.parametrize("package", sorted(p for p in RULES if (REPO_ROOT / p).is_dir()))
def test_package_imports_follow_the_architecture(package: str) -> None:
    violations = check_package(package)
    assert not violations, f"{len(violations)} import(s) break ARCHITECTURE.md's rules:\n" + (
        "\n".join(str(v) for v in violations)
    )


def test_every_package_has_a_rule() -> None:
    missing = sorted(packages_on_disk() - set(RULES))
    assert not missing, (
        f"top-level package(s) without an import rule: {', '.join(missing)}; "
        "add a row to RULES in tests/test_import_rules.py (and to ARCHITECTURE.md)"
    )


def test_rule_table_is_consistent() -> None:
    for package, rule in RULES.items():
        for prefix in rule.first_party:
            assert prefix == ANY or prefix.partition(".")[0] in RULES, (package, prefix)
            assert prefix.partition(".")[0] != package, f"{package}: itself is always allowed"
        for name in rule.third_party:
            assert name == ANY or "." not in name, (package, name)
            assert name not in STDLIB, f"{package}: {name} is in the standard library"
            assert name not in FIRST_PARTY, f"{package}: {name} is a first-party package"


# --- the checker, checked --------------------------------------------------------------------

MAINFRAME_SOURCE = """\
import json
from adapters.fixedwidth import Codec
from adapters import fixedwidth, base
from . import faults
from .ledger import Ledger
import requests


def later() -> None:
    import vault.memory
    from ..adapters import framing
    importlib.import_module("routing.memory")
"""


def test_checker_finds_each_kind_of_violation() -> None:
    found = check_source(MAINFRAME_SOURCE, "mainframe_sim/server.py")
    assert [(v.line, v.statement) for v in found] == [
        (3, "from adapters import base"),
        (6, "import requests"),
        (10, "import vault.memory"),
        (11, "from ..adapters import framing"),
        (12, "importlib.import_module('routing.memory')"),
    ]
    assert str(found[0]) == (
        "mainframe_sim/server.py:3: from adapters import base: mainframe_sim may not import "
        "adapters.base (first-party allowed: adapters.fixedwidth, adapters.framing, "
        "adapters.codepages)"
    )
    assert "third-party 'requests'" in found[1].reason
    assert found[2].reason.startswith("mainframe_sim may not import vault.memory ")
    assert "beyond the top-level package" in found[3].reason


def test_checker_resolves_relative_imports_in_subpackages() -> None:
    source = "from .. import base\nfrom ...vault import memory\nfrom . import specs\n"
    found = check_source(source, "adapters/iso8583/__init__.py")
    # ".." from the package adapters.iso8583 is adapters; "..." would be outside it.
    assert [(v.line, v.reason) for v in found] == [
        (2, "relative import beyond the top-level package of adapters.iso8583")
    ]
    # A relative import stays inside its own top-level package: adapters.vault, not vault.
    tree = ast.parse("from ..vault import memory\nfrom .specs import SPECS\n")
    module, is_package = module_name("adapters/iso8583/adapter.py")
    assert (module, is_package) == ("adapters.iso8583.adapter", False)
    assert [ref.module for ref in iter_imports(tree, module, is_package)] == [
        "adapters.vault",
        "adapters.iso8583.specs",
    ]


def test_checker_keeps_canonical_model_to_the_standard_library() -> None:
    source = (
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "import decimal\n"
        "from canonical_model.money import Money\n"
        "if TYPE_CHECKING:\n"
        "    from _typeshed import ReadableBuffer\n"
        "    from typing_extensions import Self\n"
        "from adapters.base import Adapter, AdapterError\n"
    )
    found = check_source(source, "canonical_model/messages.py")
    assert [(v.line, v.statement) for v in found] == [
        (7, "from typing_extensions import Self"),
        (8, "from adapters.base import Adapter, AdapterError"),
    ]
    assert found[1].reason.startswith("canonical_model may not import adapters.base ")
    assert found[0].reason == (
        "canonical_model may not import third-party 'typing_extensions' "
        "(third-party allowed: none, standard library only)"
    )


def test_checker_reports_source_it_cannot_parse() -> None:
    found = check_source("def broken(:\n", "vault/store.py")
    assert len(found) == 1
    assert found[0].line == 1
    assert found[0].reason.startswith("cannot parse")
    # A warning while parsing (an invalid escape) is ruff's to report; here it is no error.
    assert check_source('import re\nDIGITS = re.compile("\\d+")\n', "vault/store.py") == []
