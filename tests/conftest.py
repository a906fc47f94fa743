"""What every test folder shares: a run that leaves nothing behind and never touches the
user's home, and real databases on loopback.

- Before collection, the run is marked and the real ``~/.ktrdr`` listed
  (tests/support/leftovers.py), then HOME moves to a temporary folder for the whole run
  (tests/support/home.py); children started through tests/support/processes.py get a
  KTRDR_HOME of their own under it.
- After every fixture's teardown, the run fails if a process it started is still alive, the
  real ``~/.ktrdr`` changed, or 127.0.0.1:8000 is held but was free at the start.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import processes
from tests.support.home import HomeRedirect, real_home, redirect_home
from tests.support.leftovers import LeftoverWatch, stop
from tests.support.postgres import PostgresServer, start_postgres

_db_names = itertools.count()
_watch = pytest.StashKey[LeftoverWatch]()
_home = pytest.StashKey[HomeRedirect]()
_scratch = pytest.StashKey[Path]()
_found = pytest.StashKey[list[str]]()


def pytest_configure(config: pytest.Config) -> None:
    homes = [real_home() / ".ktrdr"]
    if os.environ.get("KTRDR_HOME"):  # the caller's own ktrdr home, if the shell sets one
        homes.append(Path(os.environ["KTRDR_HOME"]))
    config.stash[_watch] = LeftoverWatch.start(homes)
    scratch = Path(tempfile.mkdtemp(prefix="ktrdr-tests-"))
    config.stash[_scratch] = scratch
    redirect = config.stash[_home] = redirect_home(scratch / "home")
    redirect.unset("KTRDR_HOME")  # in-process code falls back on the temporary ~/.ktrdr
    processes.use_scratch(scratch / "ktrdr-homes")


@pytest.hookimpl(trylast=True)  # after the runner's final teardown of every fixture
def pytest_sessionfinish(session: pytest.Session) -> None:
    watch = session.config.stash.get(_watch, None)
    if watch is None:
        return
    found, alive = watch.findings()
    if not found:
        return
    stop(alive)
    session.config.stash[_found] = found
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if session.config.pluginmanager.get_plugin("terminalreporter") is None:
        print("\n".join(_report(found)), file=sys.stderr)


def _report(found: list[str]) -> list[str]:
    return [
        "the test run left things behind (processes listed were stopped just now):",
        *(f"  {line}" for line in found),
        "every process a test starts must be stopped by the test or its fixture, and get its",
        "own KTRDR_HOME and ports (tests/support/processes.py, tests/support/ports.py)",
    ]


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    found = config.stash.get(_found, None)
    if found:
        terminalreporter.section("leftovers", sep="=", red=True, bold=True)
        for line in _report(found):
            terminalreporter.write_line(line, red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if (redirect := config.stash.get(_home, None)) is not None:
        redirect.restore()
    processes.use_scratch(None)
    if (scratch := config.stash.get(_scratch, None)) is not None:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(autouse=True)
def _run_in_a_scratch_folder(tmp_path, monkeypatch):
    """Commands that write beside the caller (charts, downloads) never land in the checkout."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> PostgresServer:
    """One real PostgreSQL server for the whole run, stopped at the end."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    yield server
    server.ctl("stop")
    shutil.rmtree(server.data_dir.parent, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database of each supported kind: a SQLite file, then a fresh PostgreSQL DB."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ktrdr.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"ktrdr_test_{next(_db_names)}")
