"""Which locked packages an install profile leaves out, as `uv sync` arguments.

The one place that says what each environment and image installs besides the lock:

- ``cpu-torch``: the CUDA build left out (torch, triton, nvidia-*, cuda-*); the caller then
  installs the CPU build of the locked torch (scripts/setup-env, the CPU training image).
  Only those names: the CPU torch still needs sympy, networkx, jinja2, ... from the lock.
- ``torch-free``: the backtest worker (ktrdr-worker-cpu): torch, scipy and scikit-learn left
  out, and with them every package only they bring in (sympy, networkx, joblib, triton,
  nvidia-*, ...), computed from the lock; a package something else still needs stays.
- ``gpu``: the CUDA image (ktrdr-worker-gpu): triton left out, and whatever only it brings
  in. triton serves only torch.compile, which no training path calls.

    python3 scripts/install_profile.py PROFILE [--package NAME] [--lock PATH] [--names]

prints ``--no-install-package NAME`` pairs, one pair a line (``--names``: the names alone),
ready for ``xargs uv sync ...``. Plain python3 >= 3.11, standard library only.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from lock_boundaries import reachable

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Profile:
    """``roots``: the packages (fnmatch patterns) a profile leaves out. ``with_only_theirs``:
    also leave out every package that only the roots bring into ``--package``'s closure."""

    roots: tuple[str, ...]
    with_only_theirs: bool
    summary: str


PROFILES: dict[str, Profile] = {
    "cpu-torch": Profile(
        roots=("torch", "triton", "nvidia-*", "cuda-*"),
        with_only_theirs=False,
        summary="the CUDA build of torch left out; install the CPU build of the locked torch",
    ),
    "torch-free": Profile(
        roots=("torch", "scipy", "scikit-learn"),
        with_only_theirs=True,
        summary="the backtest worker: no torch, scipy, scikit-learn, nor what only they need",
    ),
    "gpu": Profile(
        # To keep triton (should torch.compile ever be used), make this roots=().
        roots=("triton",),
        with_only_theirs=True,
        summary="the CUDA worker: everything in the lock but triton (torch.compile only)",
    ),
}


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


def _without(lock: dict, patterns: tuple[str, ...]) -> dict:
    """The lock with every edge into a package matching ``patterns`` cut."""
    packages = []
    for package in lock["package"]:
        copy = dict(package)
        copy["dependencies"] = [
            dep for dep in package.get("dependencies", []) if not _matches(dep["name"], patterns)
        ]
        copy["optional-dependencies"] = {
            extra: [dep for dep in deps if not _matches(dep["name"], patterns)]
            for extra, deps in package.get("optional-dependencies", {}).items()
        }
        packages.append(copy)
    return {**lock, "package": packages}


def left_out(lock: dict, profile: str, package: str = "ktrdr-worker") -> list[str]:
    """The sorted names ``profile`` leaves out of ``package``'s install (every marker, extra).

    ``cpu-torch`` matches names across the whole lock (it serves the dev environment too);
    the others take ``package``'s closure minus its closure with the roots' edges cut.
    """
    spec = PROFILES[profile]
    names = sorted({p["name"] for p in lock["package"]})
    if not spec.with_only_theirs:
        return [name for name in names if _matches(name, spec.roots)]
    everything = set(reachable(lock, package))
    remaining = set(reachable(_without(lock, spec.roots), package))
    return sorted(everything - remaining)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="install_profile.py",
        description="Print the `--no-install-package NAME` arguments of an install profile.",
    )
    parser.add_argument("profile", choices=sorted(PROFILES))
    parser.add_argument("--package", default="ktrdr-worker", help="default: ktrdr-worker")
    parser.add_argument("--lock", type=Path, default=ROOT / "uv.lock", help="default: uv.lock")
    parser.add_argument("--names", action="store_true", help="print the names alone")
    args = parser.parse_args(argv)
    lock = tomllib.loads(args.lock.read_text())
    try:
        names = left_out(lock, args.profile, args.package)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    for name in names:
        print(name if args.names else f"--no-install-package {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
