"""Four distributions in lockstep, each buildable and the CLI installable with pip alone."""

import subprocess
import sys
import tomllib
import zipfile
from email.parser import Parser

import pytest

from tests.support.processes import clean_env
from tests.support.workspace import MEMBERS, uv_bin


def _project(root, member):
    return tomllib.loads((root / "packages" / member / "pyproject.toml").read_text())["project"]


def test_members_share_one_version_and_pin_core_to_it(root):
    versions = {member: _project(root, member)["version"] for member in MEMBERS}
    assert len(set(versions.values())) == 1, versions
    version = versions["ktrdr-core"]
    for member in MEMBERS[1:]:
        deps = _project(root, member)["dependencies"]
        assert f"ktrdr-core=={version}" in deps, f"{member} must require ktrdr-core=={version}"


def test_members_use_hatchling_and_src_layout(root):
    for member in MEMBERS:
        config = tomllib.loads((root / "packages" / member / "pyproject.toml").read_text())
        assert config["build-system"]["build-backend"] == "hatchling.build"
        package = member.replace("-", "_")
        assert (root / "packages" / member / "src" / package / "__init__.py").exists()
        assert (root / "packages" / member / "README.md").exists()


@pytest.fixture(scope="module")
def wheels(root, tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [uv_bin(), "build", "--all-packages", "--wheel", "--out-dir", str(out)],
        cwd=root,
        check=True,
        capture_output=True,
        env=clean_env(),
    )
    return {path.name.split("-")[0].replace("_", "-"): path for path in out.glob("*.whl")}


def _metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode())


@pytest.mark.slow
def test_published_metadata_pins_the_exact_core_version(root, wheels):
    assert sorted(wheels) == sorted(MEMBERS)
    version = _project(root, "ktrdr-core")["version"]
    for member in MEMBERS[1:]:
        requires = _metadata(wheels[member]).get_all("Requires-Dist")
        assert f"ktrdr-core=={version}" in requires, (member, requires)


@pytest.mark.slow
def test_cli_works_from_pip_without_the_workspace(root, wheels, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run(
        [*pip, str(wheels["ktrdr-core"]), str(wheels["ktrdr-cli"])],
        check=True,
        cwd=tmp_path,
        env=clean_env(),
    )
    ktrdr = str(venv / "bin" / "ktrdr")
    version = subprocess.run(
        [ktrdr, "--version"], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    expected = _project(root, "ktrdr-cli")["version"]
    assert version.stdout.splitlines() == [f"ktrdr-core {expected}", f"ktrdr-cli {expected}"]
    help_text = subprocess.run(
        [ktrdr, "--help"], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    assert "Usage: ktrdr" in help_text
    # The shipped examples travel in the core wheel: a pip-only user can start from them.
    strategy = tmp_path / "mine.yaml"
    subprocess.run(
        [ktrdr, "strategies", "init", str(strategy), "--example", "macd_bollinger_mtf"],
        check=True,
        capture_output=True,
    )
    validated = subprocess.run(
        [ktrdr, "strategies", "validate", str(strategy)], capture_output=True, text=True
    )
    assert validated.returncode == 0, validated.stderr
    installed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    for forbidden in ("numpy", "pandas", "torch", "fastapi", "ktrdr-api", "ktrdr-worker"):
        assert f"\n{forbidden}==" not in "\n" + installed, forbidden
