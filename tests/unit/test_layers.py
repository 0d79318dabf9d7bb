"""The layering DESIGN §8 draws, checked on the import statements of every module: a
new import that reaches across it fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "imagegate"

# package -> packages of ours it must never import (directly, at any depth of the module)
FORBIDDEN: dict[str, set[str]] = {
    "domain": {
        "api",
        "services",
        "engine",
        "db",
        "providers",
        "sandbox",
        "render",
        "imaging",
        "storage",
        "webhooks",
        "cli",
        "rate_limits",
        "net",
    },
    "api": {"db", "engine", "providers", "sandbox", "render"},
    "providers": {"db", "storage", "api", "services", "engine", "sandbox", "cli"},
    "render": {"providers", "sandbox", "db", "api", "services", "engine", "storage"},
    "imaging": {"providers", "sandbox", "render", "db", "api", "services", "engine"},
    "sandbox": {"db", "api", "services", "engine", "storage"},
    "db": {"api", "services", "engine", "providers", "sandbox", "cli"},
    "services": {"api", "cli"},
    "engine": {"api", "cli"},
}


def _imports(path: Path) -> set[str]:
    """The top-level packages of ours (``imagegate.<name>``) that a module imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "imagegate" and len(parts) > 1:
                found.add(parts[1])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_across_the_layers(package: str) -> None:
    assert _modules(package), f"imagegate.{package} has no modules: update FORBIDDEN"
    crossings = [
        f"{path.relative_to(PACKAGE)} imports imagegate.{name}"
        for path in _modules(package)
        for name in sorted(_imports(path) & FORBIDDEN[package])
    ]
    assert crossings == []


def test_the_concepts_a_newcomer_looks_for_have_a_module() -> None:
    for module in (
        "domain/circuit_breaker.py",
        "domain/retry.py",
        "rate_limits/__init__.py",
        "services/pagination.py",
        "providers/progress.py",
        "imaging/codec.py",
        "imaging/grid.py",
        "sandbox/__init__.py",
        "render/__init__.py",
    ):
        assert (PACKAGE / module).is_file(), module
