"""`ktrdr-api serve | migrate`: run the backend or bring its database schema up to date.

``serve`` speaks HTTPS through uvicorn's own TLS when given a certificate and key, and refuses
to listen beyond loopback without TLS (unless told ``--insecure-http``, which it then logs as
a warning at every start) or without a token.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import shutil
import socket
import ssl
import sys
from pathlib import Path

from ktrdr_core.settings import Settings, SettingsError

# Named here, not imported: importing ktrdr_api.metrics would import prometheus_client before
# the variable is set.
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ktrdr-api", description="The ktrdr backend.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API server (settings from KTRDR_*)")
    serve.add_argument("--host", help="listen address (default: KTRDR_API_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: KTRDR_API_PORT or 8000)")
    serve.add_argument(
        "--tls-cert", type=Path, help="serve HTTPS with this PEM certificate chain (KTRDR_TLS_CERT)"
    )
    serve.add_argument("--tls-key", type=Path, help="its PEM private key (KTRDR_TLS_KEY)")
    serve.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain HTTP beyond loopback (KTRDR_INSECURE_HTTP=1); tokens cross the "
        "network readable",
    )
    serve.add_argument(
        "--processes",
        type=int,
        help="API processes sharing the port (default: KTRDR_API_PROCESSES or 1); more than "
        "one needs PostgreSQL, which coordinates them",
    )
    commands.add_parser("migrate", help="apply database migrations and exit")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"ktrdr-api: {exc}", file=sys.stderr)
        return 2

    if args.command == "migrate":
        from ktrdr_api.db import make_engine
        from ktrdr_api.migrations import upgrade

        upgrade(make_engine(settings))
        print(f"ktrdr-api: database at {settings.effective_database_url} is up to date")
        return 0

    host = args.host or settings.api_host
    processes = args.processes or settings.api_processes
    problem = processes_problem(processes, settings.effective_database_url)
    if problem is not None:
        print(f"ktrdr-api: {problem}", file=sys.stderr)
        return 2
    cert = args.tls_cert or settings.tls_cert
    key = args.tls_key or settings.tls_key
    insecure = args.insecure_http or settings.insecure_http
    problem = tls_problem(cert, key)
    if problem is not None:
        print(f"ktrdr-api: {problem}", file=sys.stderr)
        return 2
    if cert is None and not insecure and not is_loopback(host):
        print(
            f"ktrdr-api: refusing to listen on {host} without TLS: tokens would cross the "
            "network readable. Give --tls-cert and --tls-key (KTRDR_TLS_CERT, KTRDR_TLS_KEY; "
            "compose/README.md shows how to make them), or --insecure-http "
            "(KTRDR_INSECURE_HTTP=1) behind a TLS proxy.",
            file=sys.stderr,
        )
        return 2
    if not settings.api_token and not is_loopback(host):
        print(
            f"ktrdr-api: refusing to listen on {host} without a token: anyone who can reach "
            "it could run and delete work. Set KTRDR_API_TOKEN, or listen on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2

    try:
        # Bound before the app is imported (most of start-up): workers that reconnect during
        # a restart wait in the listen backlog and are served the moment the app is ready,
        # instead of being refused and backing off.
        sock = listen(host, args.port or settings.api_port)
    except OSError as exc:
        print(f"ktrdr-api: cannot listen on {host}: {exc}", file=sys.stderr)
        return 2

    if processes > 1:
        # Before anything imports prometheus_client: it picks its storage at import.
        os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_folder(settings.home)

    import uvicorn

    from ktrdr_api.logs import configure_logging

    configure_logging()  # JSON lines unless stderr is a terminal
    database = settings.effective_database_url.partition(":")[0].partition("+")[0]
    name, port = sock.getsockname()[:2]
    log = logging.getLogger("ktrdr_api")
    if cert is None and not is_loopback(host):
        log.warning(
            "INSECURE: serving plain HTTP on %s (--insecure-http): tokens and data cross the "
            "network readable; serve TLS (--tls-cert/--tls-key) unless a TLS proxy fronts it",
            host,
        )
    log.info(
        "serving on %s://%s:%d (%s database, token %s, %d process%s)",
        "https" if cert else "http",
        f"[{name}]" if ":" in name else name,
        port,
        database,
        "required" if settings.api_token else "off",
        processes,
        "" if processes == 1 else "es",
    )
    options = dict(
        log_config=None,  # keep the handler configured above
        log_level="info",
        # No line per request: /metrics carries latencies per route, and a log write per
        # request would cost a large share of the status-read throughput.
        access_log=False,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )
    if processes == 1:
        from ktrdr_api.app import create_app

        uvicorn.Server(uvicorn.Config(create_app(settings), **options)).run(sockets=[sock])
        return 0
    # N processes accept on the one socket (the kernel spreads connections); uvicorn's
    # supervisor starts each (an app of its own from the environment) and replaces one that
    # dies. PostgreSQL coordinates them (ktrdr_api.coordination).
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config("ktrdr_api.app:serve_app", factory=True, workers=processes, **options)
    Multiprocess(config, sockets=[sock]).run()
    return 0


def processes_problem(processes: int, database_url: str) -> str | None:
    """Why ``processes`` API processes cannot share ``database_url``, or None."""
    if processes > 1 and database_url.startswith("sqlite"):
        return (
            f"{processes} API processes need PostgreSQL (KTRDR_DATABASE_URL="
            "postgresql+psycopg://…), which coordinates them: SQLite serves exactly one "
            "process. Run one process (--processes 1), or move to PostgreSQL "
            '(compose/README.md, "Scaling").'
        )
    return None


def metrics_folder(home: Path) -> str:
    """A fresh, empty folder for the processes' metric files (prometheus_client's
    multiprocess mode), under ``home``: counts start at zero with the server."""
    folder = home / "metrics"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return str(folder)


def tls_problem(cert: Path | None, key: Path | None) -> str | None:
    """Why ``cert`` and ``key`` cannot serve TLS (one without the other, a file that is not
    there or not PEM, a key that does not match), or None."""
    if (cert is None) != (key is None):
        return "TLS needs both --tls-cert and --tls-key (KTRDR_TLS_CERT, KTRDR_TLS_KEY)"
    if cert is None or key is None:
        return None
    for path in (cert, key):
        if not path.is_file():
            return f"TLS: {path}: no such file"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        return f"TLS: cannot use certificate {cert} with key {key}: {exc}"
    return None


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening (address reuse on, so a restart
    right after a crash can bind again)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


if __name__ == "__main__":
    sys.exit(main())
