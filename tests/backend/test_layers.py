"""The backend's layers import in one direction: the two doors (api, web) over http over services
over chat and db over core. Neither door imports the other; nothing imports upwards."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BACKEND = Path(__file__).resolve().parents[2] / "backend"
# package -> the backend packages it must never import
FORBIDDEN: dict[str, set[str]] = {
    "api": {"web"},
    "web": {"api"},
    "http": {"api", "web"},
    "services": {"api", "web", "http"},
    "chat": {"api", "web", "http", "services"},
    "db": {"api", "web", "http", "services", "chat"},
    "core": {"api", "web", "http", "services", "chat", "db", "schemas"},
    "schemas": {"api", "web", "http", "services", "db"},
}


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(backend package imported, line, inside a function?) for every backend import of a file."""
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f) if n is not f}
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] if node.module != "backend" else [f"backend.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "backend" and len(parts) > 1:
                found.append((parts[1], getattr(node, "lineno", 0), id(node) in nested))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports_point_one_way(package: str) -> None:
    bad = [f"{path.relative_to(BACKEND.parent)}:{line} imports backend.{target}"
           for path in sorted((BACKEND / package).rglob("*.py"))
           for target, line, _ in _imports(path) if target in FORBIDDEN[package]]
    assert not bad, "\n".join(bad)


def test_no_import_hides_inside_a_function_to_dodge_a_cycle() -> None:
    # Only the process entry points build the app lazily (they run before it exists).
    allowed = {"backend/cli.py", "backend/server.py"}
    hidden = [f"{path.relative_to(BACKEND.parent)}:{line} imports backend.{target}"
              for path in sorted(BACKEND.rglob("*.py")) if str(path.relative_to(BACKEND.parent)) not in allowed
              for target, line, inside in _imports(path) if inside]
    assert not hidden, "\n".join(hidden)
