"""Real services the tests need, started on loopback by the tests themselves.

Under CI=true a service that cannot start fails the run; elsewhere the tests
that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ktrdr_core.client import KtrdrClient

BIN = Path(sys.executable).parent  # the venv's console scripts (ktrdr-api, ktrdr-worker)
PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def unavailable(reason: str) -> None:
    """Fail under CI, skip elsewhere."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required test service unavailable under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    bin_dir: Path
    run_as: list[str]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database on this server; returns its SQLAlchemy URL."""
        subprocess.run(
            [*self.run_as, str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p",
             str(self.port), "-U", "postgres", name],
            check=True, capture_output=True,
        )  # fmt: skip
        return self.url(name)

    def ctl(self, action: str) -> None:
        """pg_ctl start|stop, for tests that take the database away and bring it back."""
        args = [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-w"]
        if action == "start":
            args += ["-o", f"-p {self.port} -k {self.data_dir} -h 127.0.0.1", "-l",
                     str(self.data_dir / "server.log"), "start"]  # fmt: skip
        else:
            args += ["-m", "fast", "stop"]
        subprocess.run(args, check=True, capture_output=True)


def start_postgres(base: Path) -> PostgresServer:
    """initdb + pg_ctl on a free loopback port (about a second); trust auth, loopback only."""
    bin_dir = next((b for b in PG_BIN_CANDIDATES if (b / "initdb").exists()), None)
    if bin_dir is None:
        unavailable("PostgreSQL server binaries not found under /usr/lib/postgresql")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            unavailable("running as root without runuser to drop to the postgres user")
        run_as = ["runuser", "-u", "postgres", "--"]
        # pytest's own temp folders are private to root; the server needs one it can enter.
        base = Path(tempfile.mkdtemp(prefix="ktrdr-pg-"))
        shutil.chown(base, "postgres")
        os.chmod(base, 0o755)
    data_dir = base / "pgdata"
    try:
        subprocess.run(
            [*run_as, str(bin_dir / "initdb"), "-D", str(data_dir), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True,
        )  # fmt: skip
        server = PostgresServer(free_port(), data_dir, bin_dir, run_as)
        with open(data_dir / "postgresql.conf", "a") as conf:
            # Tests need speed, not durability.
            conf.write("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n")
        server.ctl("start")
    except (subprocess.CalledProcessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        unavailable(f"PostgreSQL did not start: {exc} {detail.decode(errors='replace')}")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
            return server
        except OSError:
            time.sleep(0.05)
    unavailable("PostgreSQL started but does not accept connections")
    raise AssertionError("unreachable")


def wait_until(condition: Callable[[], Any], what: str, limit_s: float = 60.0,
               logs: Callable[[], str] | None = None) -> Any:  # fmt: skip
    """Poll ``condition`` until it returns something truthy (returned); a bounded wait for real
    processes, never a timing assertion. ``logs`` adds the processes' logs to the failure."""
    deadline = time.monotonic() + limit_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{logs()}" if logs else ""
            raise AssertionError(f"gave up after {limit_s:.0f} s waiting for {what}{detail}")
        time.sleep(0.05)


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a child: no KTRDR_* leaking in from the caller's shell; bytecode
    cached outside the tree, so each torch-importing child after the first starts fast (this
    machine sets PYTHONDONTWRITEBYTECODE, which would make every child compile torch anew)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTRDR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(Path(tempfile.gettempdir()) / "ktrdr-test-pycache")
    env.update(extra)
    return env


def log_tail(path: Path, chars: int = 6000) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"--- {path.name}: no log ---"
    return f"--- {path.name} (last {chars} chars) ---\n{text[-chars:]}"


class ApiServer:
    """`ktrdr-api serve` on a fixed loopback port, restartable (same port, same or new home)."""

    def __init__(self, home: Path, *, lease_seconds: float | None = 3.0,
                 database_url: str | None = None, token: str = "", port: int | None = None,
                 extra_env: dict[str, str] | None = None):  # fmt: skip
        self.home = home
        self.extra_env = extra_env or {}
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lease_seconds = lease_seconds
        self.database_url = database_url
        self.token = token
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.home / "api.log"

    def start(self, home: Path | None = None) -> ApiServer:
        """Start (again, on another home when given) and wait until /health answers 200."""
        if home is not None:
            self.home = home
        self.home.mkdir(parents=True, exist_ok=True)
        env = process_env(
            {
                "KTRDR_HOME": str(self.home),
                "KTRDR_API_HOST": "127.0.0.1",
                "KTRDR_API_PORT": str(self.port),
                "KTRDR_API_TOKEN": self.token,
            }
        )
        if self.lease_seconds is not None:  # None: the backend's default lease
            env["KTRDR_LEASE_SECONDS"] = str(self.lease_seconds)
        if self.database_url:
            env["KTRDR_DATABASE_URL"] = self.database_url
        env.update(self.extra_env)
        self.process = subprocess.Popen(
            [str(BIN / "ktrdr-api"), "serve"],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.starts += 1

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"ktrdr-api exited with {self.process.returncode}\n"
                                     f"{log_tail(self.log)}")  # fmt: skip
            try:
                return httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "ktrdr-api /health", 60, lambda: log_tail(self.log))
        return self

    def kill(self) -> None:
        """Stop at once (SIGKILL): a crash, or a restart that does not wait for long polls."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def client(self) -> KtrdrClient:
        return KtrdrClient(self.url, token=self.token)


def start_api(home: Path, *, database_url: str | None = None, token: str = "",
              extra_env: dict[str, str] | None = None) -> ApiServer:  # fmt: skip
    """Start the backend (default lease) and wait until /health answers 200."""
    return ApiServer(
        home, lease_seconds=None, database_url=database_url, token=token, extra_env=extra_env
    ).start()
