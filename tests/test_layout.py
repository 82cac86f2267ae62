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


def _dynamic_import_target(node: ast.Call) -> str | None:
    """The module text that ``importlib.import_module(...)`` (or a bare ``import_module``) names.

    Known when the first argument is a string literal, or an f-string that starts with literal text
    (``f"serving.{name}"`` names a ``serving`` module whatever ``name`` is).
    """
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name != "import_module" or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr) and first.values:
        head = first.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value
    return None


def _imports_in(source: str, filename: str = "<source>") -> set[str]:
    """Top-level packages a module imports: import statements and ``import_module`` calls."""
    tree = ast.parse(source, filename=filename)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and (target := _dynamic_import_target(node)):
            found.add(target.split(".")[0])
    return found


def _imports(path: Path) -> set[str]:
    return _imports_in(path.read_text(), filename=str(path))


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


def test_the_walker_sees_import_module_of_a_package() -> None:
    source = """
import importlib
from importlib import import_module

def load(name):
    importlib.import_module("serving.decision_log")
    import_module(f"training.{name}")
    importlib.import_module(name)  # unknown at parse time: not counted
    importlib.import_module(f"{name}.x")  # starts with a value: not counted
"""
    assert _imports_in(source) == {"importlib", "serving", "training"}


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
