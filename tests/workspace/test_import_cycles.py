"""No import circles inside a package: grimp finds none in the real code, and the layers and
acyclic-siblings contracts break on a circle planted in a copy of the packages."""

from __future__ import annotations

import shutil
import subprocess

import grimp
import pytest

from tests.support.processes import clean_env
from tests.support.workspace import MEMBERS, venv_bin

PACKAGES = ("ktrdr_api", "ktrdr_core", "ktrdr_worker", "ktrdr_cli")


def _circles(package: str) -> list[list[str]]:
    """Groups of modules of ``package`` that import each other round (Tarjan's strongly
    connected components of grimp's graph, groups of one left out)."""
    graph = grimp.build_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if not imported.startswith(package):
                continue
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return circles


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_itself_round_a_circle(package):
    assert _circles(package) == []


def test_a_planted_circle_breaks_the_layer_contracts(root, tmp_path):
    # A copy of the four packages in which the ids leaf imports the operations it serves, and
    # the plain strategy sections import the model built on them; the copies shadow the
    # installed packages through PYTHONPATH.
    for member in MEMBERS:
        package = member.replace("-", "_")
        shutil.copytree(root / "packages" / member / "src" / package, tmp_path / package)
    with (tmp_path / "ktrdr_api" / "ids.py").open("a") as ids:
        ids.write("\nfrom ktrdr_api import operations  # noqa: E402,F401\n")
    with (tmp_path / "ktrdr_core" / "strategy" / "sections.py").open("a") as sections:
        sections.write("\nfrom ktrdr_core.strategy import schema  # noqa: E402,F401\n")
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    result = subprocess.run(
        [venv_bin("lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=clean_env() | {"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    out = " ".join(result.stdout.split())  # the report wraps long contract names
    assert result.returncode == 1, result.stdout
    assert "api layers: app and routes on top" in out and "BROKEN" in out
    assert "ktrdr_api.ids -> ktrdr_api.operations" in out
    assert "ktrdr_core.strategy.sections -> ktrdr_core.strategy.schema" in out
    assert "no import circles among the modules of any package or subpackage BROKEN" in out
