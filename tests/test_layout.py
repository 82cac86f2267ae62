"""Layout guards: import direction between the packages, and what a wheel would ship."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("features", "training", "serving")
# features <- training <- serving: a package may import only those to its left.
ALLOWED = {
    "features": {"features"},
    "training": {"features", "training"},
    "serving": {"features", "training", "serving"},
}
FORBIDDEN_TOP_LEVEL = {"data", "notebooks", "tests"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package: str) -> None:
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = (_imports(path) & (set(PACKAGES) | FORBIDDEN_TOP_LEVEL)) - ALLOWED[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "imports against the direction features <- training <- serving:\n" + "\n".join(
        offenders
    )


def test_no_package_shadows_a_library() -> None:
    # A mlflow/__init__.py or a module named like a dependency would shadow the real library.
    assert not (ROOT / "mlflow" / "__init__.py").exists()
    for name in ("mlflow", "lightgbm", "bentoml", "pandas", "sklearn"):
        assert not list(ROOT.glob(f"*/{name}.py")), f"a module named {name}.py shadows the library"


def test_wheel_ships_only_the_import_packages() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {pattern.split(".")[0] for pattern in include}
    assert tops == set(PACKAGES)
