"""The house rules a newcomer relies on: imports run one way (the layers in
pyproject's import-linter contract, drawn in the README) and no two modules
import each other, not even for type hints."""

from __future__ import annotations

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
