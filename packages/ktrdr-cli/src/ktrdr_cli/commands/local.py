"""`ktrdr local up | down | status | logs`: the stack on this machine, as processes."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.context import emit, fail, group, table

app = group("Run the API and workers on this machine.")

SlotOption = Annotated[int, typer.Option("--slot", help="isolated stack N (own home and ports)")]


@app.command("up")
def up(slot: SlotOption = 0) -> None:
    """Start the API and one training and one backtest worker; wait until they are ready."""
    from ktrdr_cli.local_stack import StackError
    from ktrdr_cli.local_stack import up as start

    try:
        stack = start(slot)
    except StackError as exc:
        fail(str(exc))
    emit(
        {"slot": stack.slot, "url": stack.url, "home": str(stack.home), "pids": stack.pids},
        lambda: typer.echo(
            f"ktrdr local stack (slot {stack.slot}) is up at {stack.url}\n"
            f"  home  {stack.home}\n  logs  {stack.logs}\n"
            f"  use it with: KTRDR_API_URL={stack.url} ktrdr ..."
        ),
    )


@app.command("down")
def down(slot: SlotOption = 0) -> None:
    """Stop the slot's processes."""
    from ktrdr_cli.local_stack import StackError
    from ktrdr_cli.local_stack import down as stop

    try:
        stopped = stop(slot)
    except StackError as exc:
        fail(str(exc))
    emit(
        {"stopped": stopped},
        lambda: typer.echo(
            f"stopped {', '.join(stopped)}" if stopped else f"nothing running in slot {slot}"
        ),
    )


@app.command("status")
def status() -> None:
    """Every local stack: slot, URL, which processes are alive, and whether the API answering
    on its port is healthy and its own (another backend there shows as "foreign")."""
    from ktrdr_cli.local_stack import all_stacks, answering_instance

    rows = []
    for stack in all_stacks():
        alive = stack.alive()
        answering = answering_instance(stack.url)
        if answering is None:
            api = "down"
        elif stack.instance_id and answering == stack.instance_id and alive.get("api"):
            api = "ours"
        else:
            api = "foreign"
        rows.append(
            {
                "slot": stack.slot,
                "url": stack.url,
                "home": str(stack.home),
                "processes": alive,
                "api": api,
                "healthy": api == "ours",
            }
        )
    emit(
        rows,
        lambda: table(
            [
                [
                    str(r["slot"]),
                    r["url"],
                    {"ours": "yes", "down": "no"}.get(r["api"], "no: another backend answers"),
                    ", ".join(f"{n}:{'up' if ok else 'down'}" for n, ok in r["processes"].items())
                    or "-",
                    r["home"],
                ]
                for r in rows
            ],
            ["SLOT", "URL", "HEALTHY", "PROCESSES", "HOME"],
        ),
    )


@app.command("logs")
def logs(
    service: Annotated[str, typer.Argument(help="api, training-worker or backtest-worker")] = "api",
    slot: SlotOption = 0,
    lines: Annotated[int, typer.Option("--lines", "-n", help="last N lines")] = 50,
) -> None:
    """The last lines of a service's log."""
    from ktrdr_cli.local_stack import SERVICES, stack_for

    if service not in SERVICES:
        fail(f"unknown service {service!r}; choose from {', '.join(SERVICES)}", code=2)
    path = stack_for(slot).logs / f"{service}.log"
    if not path.exists():
        fail(f"no log at {path}: has slot {slot} been started? (`ktrdr local up --slot {slot}`)")
    text = path.read_text(errors="replace").splitlines()[-lines:]

    def human() -> None:
        typer.echo(f"==> {path}")
        for line in text:
            typer.echo(line)

    emit({"service": service, "slot": slot, "path": str(path), "lines": text}, human)
