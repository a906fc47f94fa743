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


def _planted(root, tmp_path, module: str, code: str):
    """lint-imports over a copy of the four packages in which ``module`` (a dotted path under
    one of them) holds ``code``; the copies shadow the installed ones through PYTHONPATH."""
    for member in MEMBERS:
        package = member.replace("-", "_")
        shutil.copytree(root / "packages" / member / "src" / package, tmp_path / package)
    target = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    target.write_text(code)
    shutil.copy(root / "pyproject.toml", tmp_path / "pyproject.toml")
    return _lint_imports(tmp_path, clean_env() | {"PYTHONPATH": str(tmp_path)})


def test_import_contracts_catch_the_backend_importing_torch(root, tmp_path):
    result = _planted(root, tmp_path, "ktrdr_api.leak", "import torch  # noqa\n")
    assert result.returncode == 1, result.stdout
    assert "api orchestrates only: no worker, no cli, no numeric stack BROKEN" in result.stdout
    assert "ktrdr_api.leak -> torch" in result.stdout


def test_import_contracts_catch_the_backtest_path_reaching_training_code(root, tmp_path):
    """The fuzzy memberships borrow a helper from the label code (scipy), even through a lazy
    import inside a function: the backtest worker's image has no scipy, so the build fails."""
    fuzzy = root / "packages" / "ktrdr-worker" / "src" / "ktrdr_worker" / "fuzzy.py"
    code = fuzzy.read_text() + (
        "\n\ndef smoothed(values):\n"
        "    from ktrdr_worker.labels import make_labels\n"
        "    return make_labels\n"
    )
    result = _planted(root, tmp_path, "ktrdr_worker.fuzzy", code)
    assert result.returncode == 1, result.stdout
    assert (
        "the backtest worker's paths never import torch, scipy or scikit-learn BROKEN"
        in result.stdout
    )
    assert "ktrdr_worker.fuzzy -> ktrdr_worker.labels" in result.stdout
    assert "1 broken" in result.stdout  # nothing else: the layers allow fuzzy -> labels


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
