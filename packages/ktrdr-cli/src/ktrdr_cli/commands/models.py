"""`ktrdr models list | show | download | delete | export | import`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ktrdr_cli.context import client, emit, fail, group, handles_api_errors, short_time, table

app = group("Trained model bundles.")


@app.command("list")
@handles_api_errors
def list_models() -> None:
    """Stored models: id, strategy, data and creation time."""
    with client() as api:
        views = api.list_models()
    emit(
        views,
        lambda: table(
            [
                [
                    m.model_id,
                    m.name,
                    ",".join(f"{d.symbol}/{d.timeframe}" for d in m.data),
                    short_time(m.created_at),
                    f"{m.size / 1e6:.2f} MB",
                ]
                for m in views
            ],
            ["MODEL", "STRATEGY", "DATA", "CREATED", "SIZE"],
        ),
    )


@app.command("show")
@handles_api_errors
def show(model_id: str) -> None:
    """The bundle's metadata: features, labels, data ranges, test metrics."""
    with client() as api:
        view = api.get_model(model_id)

    def human() -> None:
        meta = view.metadata
        typer.echo(f"{view.model_id}  {view.name}  strategy {view.strategy_hash}")
        for key in ("seed", "device", "created_at"):
            if key in meta:
                typer.echo(f"  {key:<10} {meta[key]}")
        features = meta.get("feature_names") or []
        typer.echo(
            f"  features   {len(features)}: {', '.join(features[:8])}"
            + (" …" if len(features) > 8 else "")
        )
        for ref in view.data:
            typer.echo(
                f"  data       {ref.symbol}/{ref.timeframe} v{ref.version} {ref.first} → {ref.last}"
            )

    emit(view, human)


@app.command("download")
@handles_api_errors
def download(
    model_id: str,
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Save the bundle zip (checksum verified)."""
    target = output or Path(f"{model_id}.zip")
    if not target.parent.is_dir():
        fail(f"{target.parent}: no such folder (for {target.name})")
    with client() as api:
        sha = api.download_model(model_id, target)
    emit({"path": str(target), "sha256": sha}, lambda: typer.echo(f"saved {target} ({sha[:16]})"))


@app.command("export")
def export(model_id: str, file: Path) -> None:
    """Save the bundle zip to FILE (the same as download -o FILE)."""
    download(model_id, file)


@app.command("delete")
@handles_api_errors
def delete(
    model_id: str,
    force: Annotated[bool, typer.Option(help="delete even if a backtest uses it")] = False,
) -> None:
    """Delete a model; refused while a live backtest uses it, unless --force."""
    with client() as api:
        view = api.delete_model(model_id, force)
    emit(view, lambda: typer.echo(f"deleted {view.model_id}"))


@app.command("import")
@handles_api_errors
def import_model(
    file: Annotated[Path, typer.Argument(help="a bundle zip (from `ktrdr models export`)")],
) -> None:
    """Upload a bundle trained elsewhere; the backend checks it and catalogues the model."""
    if not file.is_file():
        fail(f"{file}: no such file")
    with client() as api:
        view = api.import_model(file)

    def human() -> None:
        typer.echo(f"imported {view.model_id} ({view.name}) from {file}")
        for ref in view.data:
            typer.echo(f"  trained on {ref.symbol}/{ref.timeframe} {ref.first} → {ref.last}")
        if view.data:
            typer.echo(
                "  a backtest uses this backend's newest data of those symbols and "
                "timeframes: import it with `ktrdr data import` if it is missing"
            )

    emit(view, human)
