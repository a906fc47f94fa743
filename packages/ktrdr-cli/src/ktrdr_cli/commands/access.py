"""`ktrdr tokens create | list | revoke` and `ktrdr audit`: who may use the backend, and what
they did (both need an admin token: KTRDR_API_TOKEN, or one made with `--role admin`)."""

from __future__ import annotations

from typing import Annotated

import typer

from ktrdr_cli.context import client, emit, group, handles_api_errors, short_time, table

tokens_app = group(
    "Bearer tokens with a role (admin, researcher, worker, reader): create, list, revoke."
)

ROLES = "admin, researcher, worker or reader"


@tokens_app.command("create")
@handles_api_errors
def create(
    role: Annotated[str, typer.Option("--role", help=ROLES)],
    name: Annotated[str, typer.Option("--name", help="who holds it: a host, a person")],
) -> None:
    """Make a token; its secret is printed this once (the backend keeps only a hash)."""
    with client() as api:
        created = api.create_token(name, role)

    def human() -> None:
        typer.echo(f"{created.token_id}  {created.name}  role {created.role}")
        typer.echo(created.secret)
        typer.echo(
            "Shown once: put it in the holder's KTRDR_API_TOKEN now; revoke with "
            f"`ktrdr tokens revoke {created.token_id}`.",
            err=True,
        )

    emit(created, human)


@tokens_app.command("list")
@handles_api_errors
def list_tokens(
    all_: Annotated[bool, typer.Option("--all", help="revoked tokens too")] = False,
) -> None:
    """Tokens by id, name and role (never their secrets), with their last use."""
    with client() as api:
        views = api.list_tokens(include_revoked=all_)
    emit(
        views,
        lambda: table(
            [
                [
                    v.token_id,
                    v.name,
                    v.role.value,
                    short_time(v.created_at),
                    short_time(v.last_used_at),
                    short_time(v.revoked_at),
                ]
                for v in views
            ],
            ["TOKEN", "NAME", "ROLE", "CREATED", "LAST USED", "REVOKED"],
        ),
    )


@tokens_app.command("revoke")
@handles_api_errors
def revoke(token_id: str) -> None:
    """Revoke a token: the next request carrying it is refused."""
    with client() as api:
        view = api.revoke_token(token_id)
    emit(
        view,
        lambda: typer.echo(
            f"revoked {view.token_id} ({view.name}, {view.role}) at {short_time(view.revoked_at)}"
        ),
    )


@handles_api_errors
def audit(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000)] = 50,
    token: Annotated[str | None, typer.Option("--token-id", help="only this token's")] = None,
    action: Annotated[
        str | None, typer.Option("--action", help="e.g. data.delete, token.revoke, request")
    ] = None,
    refused: Annotated[bool, typer.Option("--refused", help="only refused requests")] = False,
) -> None:
    """The audit trail: deletes, imports, cancels, token changes and refused requests.

    Newest first: when, who (token name, id, role), what, the outcome, from where."""
    with client() as api:
        events = api.audit_events(
            limit=limit, token_id=token, action=action, outcome="refused" if refused else None
        )
    emit(
        events,
        lambda: table(
            [
                [
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    f"{e.token_name} ({e.token_id}, {e.role.value})",
                    e.action,
                    e.target,
                    e.outcome.value,
                    e.client or "-",
                    e.detail or "",
                ]
                for e in events
            ],
            ["WHEN (UTC)", "WHO", "ACTION", "TARGET", "OUTCOME", "FROM", "DETAIL"],
        ),
    )
