"""`ktrdr-worker`: run a worker, or report what this machine can compute on.

- ``ktrdr-worker check``: the torch build and devices as JSON (``"torch": null`` where torch
  is not installed: the torch-free backtest worker), or the reason a broken torch fails;
- ``ktrdr-worker training`` / ``ktrdr-worker backtest``: register with the backend and run its
  operations until SIGTERM/SIGINT (settings from the environment: see
  ``ktrdr_worker.service.config``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

from ktrdr_worker.runtime import NO_TORCH, TorchUnavailableError, torch_runtime

_SETTINGS_HELP = (
    "settings come from the environment: KTRDR_API_URL, KTRDR_API_TOKEN, KTRDR_WORKER_ID, "
    "KTRDR_WORKER_CACHE, KTRDR_WORKER_HEALTH_PORT (see ktrdr_worker.service.config)"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ktrdr-worker", description="The ktrdr worker.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="print the torch build and devices as JSON")
    for kind, does in (("training", "train strategies"), ("backtest", "backtest models")):
        commands.add_parser(
            kind, help=f"{does} for the backend until stopped", description=_SETTINGS_HELP
        )
    args = parser.parse_args(argv)
    if args.command in ("training", "backtest"):
        from ktrdr_worker.service import serve

        return serve(args.command)
    try:
        runtime = NO_TORCH if importlib.util.find_spec("torch") is None else torch_runtime()
    except TorchUnavailableError as exc:
        print(f"ktrdr-worker: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(runtime.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
