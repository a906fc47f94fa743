"""The resolved lock keeps each distribution inside its room (DESIGN.md §1)."""

import subprocess
import sys
import tomllib

import lock_boundaries


def _lock(root):
    return tomllib.loads((root / "uv.lock").read_text())


def test_committed_lock_respects_every_boundary(root):
    assert lock_boundaries.violations(_lock(root)) == []


def test_worker_reaches_torch_through_its_own_dependency(root):
    parent = lock_boundaries.reachable(_lock(root), "ktrdr-worker")
    assert lock_boundaries.chain(parent, "torch") == "torch <- ktrdr-worker"


def _add_dependency(lock_text: str, package: str, dependency: str) -> str:
    """Insert `dependency` into `package`'s dependency list in the lock's text."""
    marker = f'name = "{package}"\n'
    start = lock_text.index(marker)
    deps = lock_text.index("dependencies = [\n", start) + len("dependencies = [\n")
    return lock_text[:deps] + f'    {{ name = "{dependency}" }},\n' + lock_text[deps:]


def _run_walker(tmp_path, text):
    path = tmp_path / "uv.lock"
    path.write_text(text)
    script = lock_boundaries.__file__
    return subprocess.run(
        [sys.executable, script, str(path)], capture_output=True, text=True, check=False
    )


def test_walker_catches_torch_reaching_the_backend_through_core(root, tmp_path):
    text = _add_dependency((root / "uv.lock").read_text(), "ktrdr-core", "torch")
    result = _run_walker(tmp_path, text)
    assert result.returncode == 1
    assert "ktrdr-api must not reach torch: torch <- ktrdr-core <- ktrdr-api" in result.stdout
    assert "ktrdr-cli must not reach torch: torch <- ktrdr-core <- ktrdr-cli" in result.stdout
    # torch's CUDA dependencies are caught too, with the longer chain.
    assert "ktrdr-api must not reach triton: triton <- torch <- ktrdr-core <- ktrdr-api" in (
        result.stdout
    )


def test_walker_catches_a_sibling_and_a_deep_numeric_edge(root, tmp_path):
    text = _add_dependency((root / "uv.lock").read_text(), "ktrdr-cli", "ktrdr-api")
    text = _add_dependency(text, "httpx", "numpy")
    result = _run_walker(tmp_path, text)
    assert result.returncode == 1
    assert "ktrdr-cli must not reach ktrdr-api: ktrdr-api <- ktrdr-cli" in result.stdout
    assert "ktrdr-core must not reach numpy: numpy <- httpx <- ktrdr-core" in result.stdout


def test_walker_follows_extras_that_a_dependency_asks_for(root):
    lock = _lock(root)
    # psycopg[binary] is how the backend gets its driver: the extra must be walked.
    parent = lock_boundaries.reachable(lock, "ktrdr-api")
    assert lock_boundaries.chain(parent, "psycopg-binary") == (
        "psycopg-binary <- psycopg <- ktrdr-api"
    )


def test_walker_reports_a_worker_without_torch(root, tmp_path):
    lines = (root / "uv.lock").read_text().splitlines(keepends=True)
    start = lines.index('name = "ktrdr-worker"\n')
    kept = [
        line
        for i, line in enumerate(lines)
        if not (i > start and i < start + 40 and line.strip() == '{ name = "torch" },')
    ]
    result = _run_walker(tmp_path, "".join(kept))
    assert result.returncode == 1
    assert "ktrdr-worker must reach torch" in result.stdout
