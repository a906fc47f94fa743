"""How long `ktrdr --help` takes, against the interpreter's own start-up, in the same run.

Each command runs N times as a fresh process (interleaved, so load on this shared machine
hits every command alike); the table shows the median wall time in milliseconds. Two ways
to start Python are measured:

- warm: imports read cached bytecode (.pyc), as after `pip install`, which compiles it;
- cold: nothing cached, so every import is compiled from source on every run (what a venv
  installed without bytecode gives in a shell with PYTHONDONTWRITEBYTECODE=1).

`python -c "import typer"` is the floor the CLI cannot go under: the rows beside it say what
ktrdr adds on top. Exits 1 when the warm `ktrdr --help` median misses the target.

    python bench/cli_startup.py [--runs N] [--target-ms 100]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PYTHON = sys.executable
KTRDR = str(Path(sys.executable).parent / "ktrdr")
# name -> (command, extra environment)
COMMANDS: dict[str, tuple[list[str], dict[str, str]]] = {
    'python -c "pass"': ([PYTHON, "-c", "pass"], {}),
    'python -c "import typer"': ([PYTHON, "-c", "import typer"], {}),
    "ktrdr --help": ([KTRDR, "--help"], {}),
    # The app already asks typer for plain help; this shows rich is not loaded either way.
    "  with TYPER_USE_RICH=0": ([KTRDR, "--help"], {"TYPER_USE_RICH": "0"}),
    "ktrdr data --help": ([KTRDR, "data", "--help"], {}),
    "ktrdr --version": ([KTRDR, "--version"], {}),
}


def environment(cache: Path, cached: bool) -> dict[str, str]:
    """The child environment: bytecode read from and written to `cache`, or never written."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")}
    env["PYTHONPYCACHEPREFIX"] = str(cache)  # a private cache: reads only what this run wrote
    if cached:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_once(command: list[str], env: dict[str, str]) -> float:
    """Wall time of one run in milliseconds; exits if the command fails."""
    started = time.perf_counter()
    result = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = (time.perf_counter() - started) * 1000
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr.decode()}")
    return elapsed


def measure(runs: int, cached: bool) -> dict[str, float]:
    """Median milliseconds per command over `runs` interleaved runs."""
    with tempfile.TemporaryDirectory(prefix="ktrdr-bench-pyc-") as cache:
        env = environment(Path(cache), cached)
        for command, extra in COMMANDS.values():  # warm the OS file cache (and the .pyc cache)
            run_once(command, env | extra)
        samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for _ in range(runs):
            for name, (command, extra) in COMMANDS.items():
                samples[name].append(run_once(command, env | extra))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="runs per command (default 21)")
    parser.add_argument("--target-ms", type=float, default=100.0, help="warm `ktrdr --help` goal")
    args = parser.parse_args()
    if not Path(KTRDR).exists():
        sys.exit(f"{KTRDR} not found: run this with the interpreter of the venv holding ktrdr")

    results = {"warm": measure(args.runs, cached=True), "cold": measure(args.runs, cached=False)}
    print(f"median wall time of {args.runs} runs each, milliseconds ({os.cpu_count()} CPUs)")
    print(f"{'command':<26} {'warm':>8} {'cold':>8}   warm: over pass / over typer")
    for name in COMMANDS:
        warm, cold = results["warm"][name], results["cold"][name]
        over_pass = warm - results["warm"]['python -c "pass"']
        over_typer = warm - results["warm"]['python -c "import typer"']
        print(f"{name:<26} {warm:>8.1f} {cold:>8.1f}   {over_pass:>+7.1f} / {over_typer:>+7.1f}")
    help_ms = results["warm"]["ktrdr --help"]
    typer_ms = results["warm"]['python -c "import typer"']
    ratio = help_ms / typer_ms
    verdict = "met" if help_ms <= args.target_ms else "MISSED"
    print(
        f"ktrdr --help (warm): {help_ms:.1f} ms, target {args.target_ms:.0f} ms: {verdict}; "
        f"{ratio:.2f}x `import typer`"
    )
    return 0 if help_ms <= args.target_ms else 1


if __name__ == "__main__":
    sys.exit(main())
