"""A real PostgreSQL server on loopback, started by the tests (initdb + pg_ctl, about a
second); trust auth, loopback only. Where it cannot start, ``unavailable`` says why."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.ci import unavailable
from tests.support.ports import free_port

PG_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
# Every data folder a server was started in during this run: the end-of-run check reports a
# server still running in one (it may run as another user, out of reach of other checks).
STARTED: list[Path] = []


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
            if self.data_dir not in STARTED:
                STARTED.append(self.data_dir)
        else:
            args += ["-m", "fast", "stop"]
        subprocess.run(args, check=True, capture_output=True)


def start_postgres(base: Path) -> PostgresServer:
    """initdb + pg_ctl on a free loopback port; stop it with ``server.ctl("stop")``."""
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


def running_servers() -> list[tuple[Path, int]]:
    """(data folder, postmaster pid) of every server this run started that still runs."""
    found = []
    for data_dir in STARTED:
        try:
            pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        if Path(f"/proc/{pid}").exists():
            found.append((data_dir, pid))
    return found
