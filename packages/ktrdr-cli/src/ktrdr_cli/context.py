"""What every command shares: where the backend is, how to print, how to fail.

The root callback fills `STATE` from `--url`, `--token` and `--json` (or the
environment); commands call `client()` and `emit()`. Errors are one line on
stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from ktrdr_core.client import KtrdrClient

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    url: str | None = None
    token: str | None = None
    json: bool = False


STATE = State()


def group(help: str) -> typer.Typer:
    """A command group with plain help text (see app.py: rich help costs ~100 ms a call)."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None, add_completion=False)


def client() -> KtrdrClient:
    """A client for the backend named by --url/--token, else KTRDR_API_URL/KTRDR_API_TOKEN."""
    from ktrdr_core.client import KtrdrClient
    from ktrdr_core.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc), code=2)
    url = STATE.url or settings.effective_api_url
    if not url.startswith(("http://", "https://")):
        fail(
            f"backend URL {url!r} (--url or KTRDR_API_URL) is not an http(s) URL; "
            "e.g. http://127.0.0.1:8000",
            code=2,
        )
    token = STATE.token if STATE.token is not None else settings.api_token
    return KtrdrClient(url, token=token)


def fail(message: str, *, code: int = 1, body: dict[str, Any] | None = None) -> None:
    """Print one clear line on stderr and exit with `code`. Under --json the line is JSON,
    ``{"error": message, "code": code}``, plus the backend's answer (``body``) when there is one."""
    if STATE.json:
        import json

        document: dict[str, Any] = {"error": message, "code": code}
        if body:
            document["detail"] = body
        typer.echo(json.dumps(document, default=str), err=True)
    else:
        typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def handles_api_errors(func: F) -> F:
    """Backend and local-file errors become one line and exit 1 (unreachable backend: a hint)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from pydantic import ValidationError

        from ktrdr_core.errors import ApiError, RequestError

        try:
            return func(*args, **kwargs)
        except RequestError as exc:
            fail(str(exc), code=2)
        except ValidationError as exc:
            # A request the client refuses to send: say which value, and why.
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']} (got {err.get('input')!r})"
                for err in exc.errors()
            )
            fail(f"invalid input: {problems}", code=2)
        except ApiError as exc:
            from ktrdr_core.client import CertificateRefused

            if isinstance(exc, CertificateRefused):
                fail(str(exc))
            if exc.status is None:
                fail(
                    f"cannot reach the backend at {exc.url}: is the backend running? "
                    "try `ktrdr local up`"
                )
            detail = _detail(exc)
            fail(f"{detail} (HTTP {exc.status})", body=exc.body)
        except OSError as exc:
            # A local file the command reads or writes (a CSV, a bundle, a chart folder).
            where = exc.filename if exc.filename is not None else "local file"
            fail(f"{where}: {exc.strerror or exc}")

    return wrapper  # type: ignore[return-value]


def _detail(exc: Any) -> str:
    body = getattr(exc, "body", None)
    message = str(exc.args[0]) if exc.args else str(exc)
    if isinstance(body, dict):
        issues = body.get("issues") or []
        lines = [f"  {_where(i)}: {i.get('message')}" for i in issues if isinstance(i, dict)]
        if lines:
            return message.splitlines()[0] + "\n" + "\n".join(lines)
    return message


def _where(issue: dict[str, Any]) -> str:
    """`line 3 (ohlc_consistency)` for data problems, the key path for strategy problems."""
    rule = f" ({issue['rule']})" if issue.get("rule") else ""
    if issue.get("line") is not None:
        return f"line {issue['line']}{rule}"
    if rule:  # a data problem of the whole file (empty, no rows): still name the rule
        return f"file{rule}"
    return issue.get("path") or "(file)"


def emit(data: Any, human: Callable[[], None]) -> None:
    """With --json print `data` as JSON; otherwise call `human` to print for a person."""
    if STATE.json:
        import json  # here, not at the top: `ktrdr --help` never needs it

        sys.stdout.write(json.dumps(_plain(data), indent=2, default=str) + "\n")
    else:
        human()


def _plain(data: Any) -> Any:
    import dataclasses

    if hasattr(data, "model_dump"):
        return data.model_dump(mode="json")
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return dataclasses.asdict(data)
    if isinstance(data, list | tuple):
        return [_plain(item) for item in data]
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    return data


def table(rows: list[list[str]], headers: list[str]) -> None:
    """A plain aligned text table (rich is kept for progress and reports)."""
    if not rows:
        typer.echo("(none)")
        return
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=False)]
    typer.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def short_time(value: Any) -> str:
    """`2024-01-02 14:00` from a datetime (UTC), or '-'."""
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"
