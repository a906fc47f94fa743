"""Real services the tests need, started on loopback by the tests themselves.

Under CI=true a service that cannot start fails the run; elsewhere the tests
that need it are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@dataclass
class ApiProcess:
    """A real `ktrdr-api serve` on a loopback port."""

    process: subprocess.Popen
    url: str
    home: Path
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_api(home: Path, *, database_url: str | None = None, token: str = "",
              extra_env: dict[str, str] | None = None) -> ApiProcess:  # fmt: skip
    """Start the backend from its console script and wait until /health answers 200."""
    import sys

    import httpx

    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("KTRDR_DATABASE_URL", None)
    env.update(KTRDR_HOME=str(home), KTRDR_API_HOST="127.0.0.1", KTRDR_API_PORT=str(port),
               KTRDR_API_TOKEN=token)  # fmt: skip
    if database_url:
        env["KTRDR_DATABASE_URL"] = database_url
    env.update(extra_env or {})
    log = home / "api.log"
    script = Path(sys.executable).parent / "ktrdr-api"
    process = subprocess.Popen(
        [str(script), "serve"], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )
    api = ApiProcess(process, f"http://127.0.0.1:{port}", home, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ktrdr-api exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{api.url}/api/v1/health", timeout=0.5).status_code == 200:
                return api
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    api.stop()
    raise RuntimeError(f"ktrdr-api did not become healthy in 30 s:\n{log.read_text()}")
