"""scripts/install_profile.py against the real uv.lock: what each environment and image leaves
out (../shared/DESIGN.md §5, issue 18)."""

import fnmatch
import subprocess
import tomllib

import install_profile
import lock_boundaries
import pytest

CUDA = ("torch", "triton", "nvidia-*", "cuda-*")


@pytest.fixture(scope="module")
def lock(root) -> dict:
    return tomllib.loads((root / "uv.lock").read_text())


def _is_cuda(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in CUDA)


def test_torch_free_leaves_out_the_training_stack_and_only_what_it_alone_needs(lock):
    left_out = set(install_profile.left_out(lock, "torch-free"))
    assert {"torch", "scipy", "scikit-learn", "sympy", "triton"} <= left_out
    assert {"networkx", "joblib", "threadpoolctl"} <= left_out
    assert any(name.startswith("nvidia-") for name in left_out)
    for kept in ("numpy", "pandas", "ta-lib", "httpx", "pydantic", "safetensors", "ktrdr-core"):
        assert kept not in left_out, kept
    # Never a package that something installed still needs (ktrdr-worker itself asks for the
    # three roots: that is the point of the profile).
    installed = set(lock_boundaries.reachable(lock, "ktrdr-worker")) - left_out - {"ktrdr-worker"}
    needed = {
        dep["name"]
        for package in lock["package"]
        if package["name"] in installed
        for dep in package.get("dependencies", [])
    }
    assert not (needed & left_out), sorted(needed & left_out)
    # And every package left out is reachable from ktrdr-worker (nothing invented).
    assert left_out <= set(lock_boundaries.reachable(lock, "ktrdr-worker"))


def test_gpu_leaves_out_only_triton(lock):
    assert install_profile.left_out(lock, "gpu") == ["triton"]


def test_cpu_torch_leaves_out_only_the_cuda_build(lock):
    left_out = install_profile.left_out(lock, "cpu-torch")
    assert "torch" in left_out and "triton" in left_out
    assert any(name.startswith("nvidia-") for name in left_out)
    assert [name for name in left_out if not _is_cuda(name)] == []
    # Every CUDA package of the lock: the CPU torch installed afterwards brings none back.
    assert left_out == sorted({p["name"] for p in lock["package"] if _is_cuda(p["name"])})


def test_the_script_prints_uv_arguments_with_plain_python(root):
    """As the Dockerfiles and scripts/setup-env run it: the system python3, no venv."""
    result = subprocess.run(
        ["python3", str(root / "scripts" / "install_profile.py"), "gpu"],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["--no-install-package triton"]
    unknown = subprocess.run(
        ["python3", str(root / "scripts" / "install_profile.py"), "cuda-free"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 2 and "invalid choice" in unknown.stderr


def test_every_profile_is_named_in_setup_env_or_a_dockerfile(root):
    """One list, one place: nobody writes the CUDA patterns out again."""
    users = [root / "scripts" / "setup-env", *sorted((root / "docker").glob("*.Dockerfile"))]
    text = "\n".join(path.read_text() for path in users)
    for profile in install_profile.PROFILES:
        assert f"install_profile.py {profile}" in text or (
            f'profile="{profile}"' in text or f"profile={profile}" in text
        ), profile
    for path in users:
        assert 'startswith(("nvidia-", "cuda-"))' not in path.read_text(), path
