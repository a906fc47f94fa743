"""Each distribution declares exactly what it imports, and the lock matches the pyproject files."""

import subprocess

import pytest

from tests.support.processes import clean_env
from tests.support.workspace import MEMBERS, uv_bin, venv_bin


@pytest.mark.parametrize("member", MEMBERS)
def test_deptry_finds_no_missing_unused_or_transitive_dependency(root, member):
    result = subprocess.run(
        [venv_bin("deptry"), "src"],
        cwd=root / "packages" / member,
        capture_output=True,
        text=True,
        check=False,
        env=clean_env() | {"NO_COLOR": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lock_matches_the_pyproject_files(root):
    result = subprocess.run(
        [uv_bin(), "lock", "--locked"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env=clean_env(),
    )
    assert result.returncode == 0, result.stderr
