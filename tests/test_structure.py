"""The shape of sparkrec/: stage packages whose imports run one way, small modules, no import cycles."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

from helpers import ROOT

PACKAGE = ROOT / "sparkrec"
# Which packages each package may import. Stages use core and the models; score reads prepare's
# vocabularies; evaluate uses score's library (scorers, planning), never its job stages.
ALLOWED = {
    "core": set(),
    "models": {"core"},
    "prepare": {"core"},
    "synthetic": {"core", "prepare"},
    "train": {"core", "models"},
    "score": {"core", "models", "prepare"},
    "evaluate": {"core", "models", "prepare", "score"},
}
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The sparkrec modules `path` imports, at module level or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sparkrec"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sparkrec"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                is_module = (ROOT / (submodule.replace(".", "/") + ".py")).is_file()
                found.add(submodule if is_module else node.module)
    return found


MODULES = {module_name(path): imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_module_belongs_to_a_known_package():
    assert {package(module) for module in MODULES} - {""} == set(ALLOWED)
    assert sorted(path.name for path in PACKAGE.glob("*.py")) == ["__init__.py"]


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_package_imports_run_one_way(name):
    crossing = {
        f"{module} -> {target}"
        for module, targets in MODULES.items()
        if package(module) == name
        for target in targets
        if package(target) != name and package(target) not in ALLOWED[name]
    }
    assert crossing == set()


def test_no_module_uses_another_stage_s_job_stages():
    crossing = {
        f"{module} -> {target}"
        for module, targets in MODULES.items()
        for target in targets
        if target.endswith(".stages") and package(target) != package(module)
    }
    assert crossing == set()


def test_the_package_allowance_is_itself_acyclic():
    TopologicalSorter(ALLOWED).static_order()


def test_module_imports_are_acyclic():
    graph = {module: {target for target in targets if target in MODULES} for module, targets in MODULES.items()}
    try:
        list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


def test_modules_stay_small():
    assert {
        module: lines
        for module, path in ((module_name(p), p) for p in PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    } == {}
