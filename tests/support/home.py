"""HOME moved to a temporary folder for the whole test run, so that nothing a test runs, in
this process or in a child, can write to the user's home (``~/.ktrdr`` above all: a
developer's own stack, database and logs).

What the tools the tests run need from the real home stays reachable:

- caches (uv's, pip's, uv-managed Pythons): pointed at the real ones by UV_CACHE_DIR,
  PIP_CACHE_DIR and UV_PYTHON_INSTALL_DIR, where they exist, so building wheels and
  installing them keeps working offline;
- configuration files the tools only read (pip's find-links and extra indexes, uv's
  settings, git's): linked into the temporary home;
- the Docker client's configuration: DOCKER_CONFIG, where ``~/.docker`` exists.

XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME and XDG_STATE_HOME point into the temporary
home too, in case the user's shell sets them to folders of the real one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

# Read-only configuration, relative to a home folder (XDG paths as their defaults).
CONFIG_FILES = (
    ".config/pip/pip.conf",
    ".pip/pip.conf",
    ".config/uv/uv.toml",
    ".gitconfig",
    ".config/git/config",
)


@dataclass
class HomeRedirect:
    real_home: Path
    temp_home: Path
    saved: dict[str, str | None] = field(default_factory=dict)

    def set(self, name: str, value: str) -> None:
        self.saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def unset(self, name: str) -> None:
        self.saved.setdefault(name, os.environ.get(name))
        os.environ.pop(name, None)

    def restore(self) -> None:
        """Put back every variable as it was before ``redirect_home``."""
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self.saved.clear()


def real_home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def redirect_home(temp_home: Path) -> HomeRedirect:
    """Point HOME (and the XDG folders) at ``temp_home`` for this process and its children."""
    real = real_home()
    redirect = HomeRedirect(real, temp_home)
    temp_home.mkdir(parents=True, exist_ok=True)

    def xdg(name: str, default: str) -> Path:
        return Path(os.environ.get(name) or real / default)

    real_cache = xdg("XDG_CACHE_HOME", ".cache")
    real_config = xdg("XDG_CONFIG_HOME", ".config")
    real_data = xdg("XDG_DATA_HOME", ".local/share")

    for variable, folder in (
        ("UV_CACHE_DIR", real_cache / "uv"),
        ("PIP_CACHE_DIR", real_cache / "pip"),
        ("UV_PYTHON_INSTALL_DIR", real_data / "uv" / "python"),
        ("DOCKER_CONFIG", real / ".docker"),
    ):
        if variable not in os.environ and folder.is_dir():
            redirect.set(variable, str(folder))

    for relative in CONFIG_FILES:
        if relative.startswith(".config/"):
            source = real_config / relative.removeprefix(".config/")
        else:
            source = real / relative
        if source.is_file():
            link = temp_home / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)

    redirect.set("HOME", str(temp_home))
    redirect.set("XDG_CONFIG_HOME", str(temp_home / ".config"))
    redirect.set("XDG_CACHE_HOME", str(temp_home / ".cache"))
    redirect.set("XDG_DATA_HOME", str(temp_home / ".local" / "share"))
    redirect.set("XDG_STATE_HOME", str(temp_home / ".local" / "state"))
    return redirect
