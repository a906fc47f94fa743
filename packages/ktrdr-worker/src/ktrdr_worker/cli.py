"""`ktrdr-worker check`: report what this worker can compute on, or refuse with the reason."""

from __future__ import annotations

import argparse
import json
import sys

from ktrdr_worker.runtime import TorchUnavailableError, torch_runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ktrdr-worker", description="The ktrdr worker.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="print the torch build and devices as JSON")
    parser.parse_args(argv)
    try:
        runtime = torch_runtime()
    except TorchUnavailableError as exc:
        print(f"ktrdr-worker: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(runtime.as_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
