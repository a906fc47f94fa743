"""The GitHub workflows are valid and call the same script as the README and .ci/run."""

import subprocess

import yaml
from workspace_support import venv_bin


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
