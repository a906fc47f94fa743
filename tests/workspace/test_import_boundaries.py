"""Import-level boundaries: import-linter contracts and what the backend really loads."""

import shutil
import subprocess
import sys
import textwrap

from tests.support.processes import clean_env
from tests.support.workspace import MEMBERS, venv_bin

NUMERIC = ("numpy", "pandas", "scipy", "torch", "sklearn", "talib")


def _lint_imports(cwd, env=None):
    return subprocess.run(
        [venv_bin("lint-imports"), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_import_contracts_are_kept(root):
    result = _lint_imports(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_import_contracts_catch_the_backend_importing_torch(root, tmp_path):
    # A copy of the four packages in which the backend grows a torch import; the
    # copies shadow the installed ones through PYTHONPATH.
    for member in MEMBERS:
        package = member.replace("-", "_")
        shutil.copytree(root / "packages" / member / "src" / package, tmp_path / package)
    (tmp_path / "ktrdr_api" / "leak.py").write_text("import torch  # noqa\n")
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    env = clean_env() | {"PYTHONPATH": str(tmp_path)}
    result = _lint_imports(tmp_path, env)
    assert result.returncode == 1, result.stdout
    assert "api orchestrates only: no worker, no cli, no numeric stack BROKEN" in result.stdout
    assert "ktrdr_api.leak -> torch" in result.stdout


def _modules_loaded_after(code: str) -> set[str]:
    script = textwrap.dedent(code) + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return {name.split(".")[0] for name in result.stdout.split()}


def test_backend_app_loads_no_numeric_library(tmp_path):
    loaded = _modules_loaded_after(
        f"""
        import pkgutil, ktrdr_api, ktrdr_core
        from ktrdr_core.settings import Settings
        from ktrdr_api.app import create_app
        create_app(Settings(home={str(tmp_path)!r}))
        for pkg in (ktrdr_api, ktrdr_core):
            for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                if ".migrations." not in info.name:
                    __import__(info.name)
        """
    )
    assert "fastapi" in loaded  # the probe really imported the app
    assert loaded.isdisjoint(NUMERIC), sorted(loaded & set(NUMERIC))


def test_cli_loads_no_numeric_library():
    loaded = _modules_loaded_after(
        """
        import pkgutil, ktrdr_cli
        for info in pkgutil.walk_packages(ktrdr_cli.__path__, "ktrdr_cli."):
            __import__(info.name)
        """
    )
    assert "typer" in loaded
    assert loaded.isdisjoint(NUMERIC), sorted(loaded & set(NUMERIC))
