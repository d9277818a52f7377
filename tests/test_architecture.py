"""The house rules a newcomer relies on: imports run one way (the layers in
pyproject's import-linter contract, drawn in the README) and no two modules
import each other, not even for type hints."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from core.settings import PROJECT_ROOT

PACKAGES = ("core", "schemas", "streams", "sinks", "api", "ops", "bench")


@pytest.mark.stack
def test_packages_import_only_the_layers_below_them() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(lint)], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]


def test_no_two_modules_import_each_other() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    circles = {
        tuple(sorted((module, imported)))
        for module in graph.modules
        for imported in graph.find_modules_directly_imported_by(module)
        if graph.find_shortest_chain(importer=imported, imported=module)
    }
    assert not circles, f"modules in a circle: {sorted(circles)}"


# Faust's own vocabulary: the package and its documented types (TP, TopicT).
FAUST_PUBLIC = ("faust", "faust.types")
FAUST_INTERNALS = ("faust", "mode", "aiokafka", "rocksdict", "rocksdb")


def _imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def _private_reads(tree: ast.AST) -> list[tuple[int, str]]:
    """``x._name`` where x is not the object's own ``self``/``cls``, and
    ``getattr(x, "_name")`` and its kin."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append((node.lineno, node.attr))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and _private(node.args[1].value)
        ):
            found.append((node.lineno, node.args[1].value))
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def test_only_streams_faust_reaches_into_faust() -> None:
    """Every change to how Faust, mode, aiokafka or rocksdict behave lives in
    streams/faust/ (its docstring lists them): the rest of streams/ imports
    only ``faust`` and ``faust.types``, and reads no one's private attribute
    but its own."""
    streams = PROJECT_ROOT / "streams"
    problems = []
    for path in sorted(streams.rglob("*.py")):
        if (streams / "faust") in path.parents:
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(PROJECT_ROOT)
        for name in _imported_modules(tree):
            if name.split(".")[0] in FAUST_INTERNALS and name not in FAUST_PUBLIC:
                problems.append(f"{where}: imports {name}")
        problems += [f"{where}:{line}: reads .{attr}" for line, attr in _private_reads(tree)]
    assert not problems, "\n".join(problems)
