"""Walk uv.lock and report every forbidden package a distribution can reach.

Every production edge counts: all markers, the distribution's own extras and
every extra its dependencies ask for; dependency groups do not (they are
development tools, never installed with the package).

    python scripts/lock_boundaries.py [uv.lock]   # exit 1 and print chains on a violation
"""

from __future__ import annotations

import fnmatch
import sys
import tomllib
from collections import deque
from pathlib import Path

# A parameter study's driver runs on a worker: the backend keeps the study, never Optuna.
SEARCH = ("optuna",)
NUMERIC = ("torch", "scikit-learn", "numpy", "pandas", "scipy", "triton", "nvidia-*", "cuda-*")

# distribution -> patterns it must never reach
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "ktrdr-core": (*NUMERIC, *SEARCH, "ktrdr-api", "ktrdr-worker", "ktrdr-cli"),
    "ktrdr-api": (*NUMERIC, *SEARCH, "ktrdr-worker", "ktrdr-cli"),
    "ktrdr-cli": (*NUMERIC, *SEARCH, "ktrdr-api", "ktrdr-worker"),
    "ktrdr-worker": ("ktrdr-api", "ktrdr-cli"),
}
# distribution -> packages it must reach (the worker exists to run torch)
REQUIRED: dict[str, tuple[str, ...]] = {"ktrdr-worker": ("torch",)}


def _edges(lock: dict) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
    """name -> [(dependency name, extras it asks for)], every version of a name merged."""
    edges: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for package in lock["package"]:
        out = edges.setdefault(package["name"], [])
        for dep in package.get("dependencies", []):
            out.append((dep["name"], tuple(dep.get("extra", ()))))
    return edges


def _extras(lock: dict) -> dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]]:
    """(name, extra) -> the dependencies that extra adds."""
    extras: dict[tuple[str, str], list[tuple[str, tuple[str, ...]]]] = {}
    for package in lock["package"]:
        for extra, deps in package.get("optional-dependencies", {}).items():
            extras.setdefault((package["name"], extra), []).extend(
                (dep["name"], tuple(dep.get("extra", ()))) for dep in deps
            )
    return extras


def reachable(lock: dict, root: str) -> dict[str, str | None]:
    """Every package reachable from `root`, mapped to the package it was first reached from."""
    edges, extras = _edges(lock), _extras(lock)
    if root not in edges:
        raise KeyError(f"{root} is not in the lock")
    own_extras = tuple(extra for (name, extra) in extras if name == root)
    parent: dict[str, str | None] = {root: None}
    queue: deque[tuple[str, tuple[str, ...]]] = deque([(root, own_extras)])
    seen_extras: set[tuple[str, str]] = set()
    while queue:
        name, wanted = queue.popleft()
        deps = list(edges.get(name, []))
        for extra in wanted:
            if (name, extra) not in seen_extras:
                seen_extras.add((name, extra))
                deps.extend(extras.get((name, extra), []))
        for dep, dep_extras in deps:
            if dep not in parent:
                parent[dep] = name
                queue.append((dep, dep_extras))
            elif dep_extras:
                # Already reached, but this edge may switch on extras not yet walked.
                queue.append((dep, dep_extras))
    return parent


def chain(parent: dict[str, str | None], name: str) -> str:
    """`torch <- ktrdr-core <- ktrdr-api`: how `name` was reached."""
    links = [name]
    while (up := parent[links[-1]]) is not None:
        links.append(up)
    return " <- ".join(links)


def violations(lock: dict) -> list[str]:
    """One line per forbidden package reached or required package missed."""
    problems: list[str] = []
    for root, patterns in FORBIDDEN.items():
        parent = reachable(lock, root)
        for name in sorted(parent):
            if name != root and any(fnmatch.fnmatch(name, p) for p in patterns):
                problems.append(f"{root} must not reach {name}: {chain(parent, name)}")
        for name in REQUIRED.get(root, ()):
            if name not in parent:
                problems.append(f"{root} must reach {name}, but no dependency edge leads there")
    return problems


def main(argv: list[str]) -> int:
    path = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent.parent / "uv.lock"
    problems = violations(tomllib.loads(path.read_text()))
    for line in problems:
        print(line)
    if not problems:
        print(f"{path}: every distribution stays inside its boundaries")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
