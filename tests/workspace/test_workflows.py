"""The GitHub workflows are valid and call the same script as the README and .ci/run."""

import subprocess

import yaml

from tests.support.workspace import venv_bin


def test_workflows_pass_actionlint(root):
    workflows = sorted((root / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run(
        [venv_bin("actionlint"), *map(str, workflows)], capture_output=True, text=True, cwd=root
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_runs_the_readme_test_command(root):
    readme = (root / "README.md").read_text()
    assert "\nscripts/test\n" in readme
    assert "exec scripts/test" in (root / ".ci" / "run").read_text()
    workflow = yaml.safe_load((root / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert {"run": "scripts/test"} in steps


def test_every_workflow_is_linted(root):
    names = {p.name for p in (root / ".github" / "workflows").glob("*.yml")}
    assert {"ci.yml", "images.yml", "release.yml"} <= names


def test_images_workflow_builds_each_image_for_its_platforms(root):
    workflow = yaml.safe_load((root / ".github" / "workflows" / "images.yml").read_text())
    matrix = {m["image"]: m for m in workflow["jobs"]["build"]["strategy"]["matrix"]["include"]}
    assert {m: matrix[m]["platforms"] for m in matrix} == {
        "ktrdr-backend": "linux/amd64,linux/arm64",
        "ktrdr-worker-cpu": "linux/amd64,linux/arm64",
        "ktrdr-worker-cpu-training": "linux/amd64,linux/arm64",
        "ktrdr-worker-gpu": "linux/amd64",
    }
    for entry in matrix.values():
        assert (root / entry["dockerfile"]).is_file()
    build = next(
        s
        for s in workflow["jobs"]["build"]["steps"]
        if s.get("uses", "").startswith("docker/build-push-action")
    )
    assert "scope=${{ matrix.image }}" in build["with"]["cache-from"]
    assert "scope=${{ matrix.image }}" in build["with"]["cache-to"]


def test_release_workflow_uses_trusted_publishing(root):
    workflow = yaml.safe_load((root / ".github" / "workflows" / "release.yml").read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # PyYAML reads the key `on` as True
    packages = workflow["jobs"]["build"]["strategy"]["matrix"]["package"]
    assert sorted(packages) == sorted(p.name for p in (root / "packages").iterdir())
    publish = workflow["jobs"]["publish"]
    assert publish["permissions"] == {"id-token": "write"}
    assert "password" not in str(publish["steps"])
