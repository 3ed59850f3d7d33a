"""The packages' dependency direction (docs/architecture.md), read from every import statement.

kovr is the shared core (settings, prompt, kovr.modeling); training (finetune) and serving
(model_server) build on it and never on each other; research may use any of them, none of them
uses research. kovr.cli names the command modules as strings (the composition root), which is
not an import edge here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRODUCT = ("kovr", "backend", "model_server", "finetune", "migrations")
# package -> packages it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "kovr": ("backend", "model_server", "finetune", "research"),
    "finetune": ("model_server", "backend", "research"),
    "model_server": ("finetune", "backend", "research"),
    "backend": ("finetune", "research"),
    "migrations": ("research",),
}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of every absolute import in the file, inside functions too."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def edges(package: str) -> dict[str, set[str]]:
    return {str(path.relative_to(REPO)): imported_packages(path) for path in sorted((REPO / package).rglob("*.py"))}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_direction(package: str) -> None:
    wrong = {file: sorted(set(FORBIDDEN[package]) & found) for file, found in edges(package).items()}
    assert not {file: bad for file, bad in wrong.items() if bad}, f"{package} imports what it must not"


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from model_server.engine import Engine\n    import research.vr\n")
    assert imported_packages(source) == {"model_server", "research"}


def test_every_product_package_is_checked() -> None:
    assert set(PRODUCT) == set(FORBIDDEN)
