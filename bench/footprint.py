"""Installed footprint of each distribution, from the lock, as an image would install it.

One fresh environment per distribution (non-editable, no dev tools, CPU torch for
the training worker), built by scripts/setup-env; plus the backtest worker's environment
(ktrdr-worker with the torch-free profile of scripts/install_profile.py: no torch, scipy or
scikit-learn), what the ktrdr-worker-cpu image installs before it drops pandas' and numpy's
test suites. Prints a table and exits 1 when a target is missed; the targets decide how small
the images can be.

    python bench/footprint.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# row -> (distribution, extra scripts/setup-env arguments, target in MB or None: report only)
ROWS: dict[str, tuple[str, tuple[str, ...], int | None]] = {
    "ktrdr-core": ("ktrdr-core", (), 20),
    "ktrdr-cli": ("ktrdr-cli", (), 40),
    "ktrdr-api": ("ktrdr-api", (), 70),
    "ktrdr-worker": ("ktrdr-worker", (), None),
    "ktrdr-worker torch-free": ("ktrdr-worker", ("--torch-free",), None),
}
# Installer tooling is not part of what the distribution needs.
NOT_COUNTED = ("pip", "setuptools", "_distutils_hack", "distutils-precedence.pth")


def site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def measure(env: Path) -> tuple[int, float, bool]:
    """(number of distributions, size in MB of site-packages without pip/setuptools, torch?)"""
    site = site_packages(env)
    total = 0
    dists = 0
    for entry in site.iterdir():
        base = entry.name.split("-")[0]
        if entry.name.startswith(NOT_COUNTED) or base in NOT_COUNTED:
            continue
        if entry.name.endswith(".dist-info"):
            dists += 1
        if entry.is_dir():
            total += sum(f.stat().st_size for f in entry.rglob("*") if f.is_file())
        else:
            total += entry.stat().st_size
    return dists, total / 1e6, (site / "torch").is_dir()


def build(member: str, env: Path, extra: tuple[str, ...] = ()) -> float:
    started = time.perf_counter()
    result = subprocess.run(
        [str(ROOT / "scripts" / "setup-env"), "--package", member, *extra],
        env=dict(os.environ, UV_PROJECT_ENVIRONMENT=str(env)),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        sys.exit(f"building the {member} environment failed:\n{result.stderr}")
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the environments here and keep them")
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="ktrdr-footprint-"))
    rows = []
    for label, (member, extra, target) in ROWS.items():
        env = base / (member + "".join(extra).replace("--", "-"))
        seconds = build(member, env, extra)
        dists, size, torch = measure(env)
        ok = target is None or size <= target
        rows.append((label, dists, size, torch, target, ok, seconds))

    header = f"{'environment':<23} {'packages':>8} {'site-packages MB':>17} {'torch':>6} "
    header += f"{'target MB':>10} {'result':>7} {'build s':>8}"
    print(header)
    print("-" * len(header))
    for member, dists, size, torch, target, ok, seconds in rows:
        target_text = f"≤ {target}" if target is not None else "report"
        result = "PASS" if ok else "FAIL"
        print(
            f"{member:<23} {dists:>8} {size:>17.1f} {'yes' if torch else 'no':>6} "
            f"{target_text:>10} {result:>7} {seconds:>8.1f}"
        )
    if not args.keep:
        subprocess.run(["rm", "-rf", str(base)], check=True)
    return 0 if all(row[5] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
