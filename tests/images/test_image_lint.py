"""Every Dockerfile passes hadolint; every compose file validates with `docker-compose config`
(no daemon needed); the .dockerignore keeps the build context small."""

from __future__ import annotations

import os
import re
import subprocess

import pytest
import yaml

from tests.support import docker as ds

DOCKERFILES = sorted((ds.ROOT / "docker").glob("*.Dockerfile"))
COMPOSE_FILES = sorted(
    p for p in (ds.ROOT / "compose").rglob("*.yml") if not p.name.startswith(".")
)
# What the compose files require from the environment (homelab: from .env).
REQUIRED_ENV = {
    "KTRDR_API_TOKEN": "lint-token",
    "POSTGRES_PASSWORD": "lint-password",
    "IMAGE_TAG": "v0.0.0-lint",
}


def test_every_image_has_a_dockerfile():
    names = {p.name for p in DOCKERFILES}
    assert names == {
        "backend.Dockerfile",
        "worker-cpu.Dockerfile",
        "worker-cpu-training.Dockerfile",
        "worker-gpu.Dockerfile",
        "dev.Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint(dockerfile):
    result = subprocess.run(
        [str(ds.VENV_BIN / "hadolint"), str(dockerfile)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    # A "# syntax=" line makes BuildKit pull its frontend from Docker Hub.
    assert not re.search(r"^#\s*syntax\s*=", text, re.M)
    assert 'ENTRYPOINT ["tini", "--"]' in text
    # A late chown -R copies every file it touches into a new layer.
    assert not [
        line
        for line in text.splitlines()
        if "chown -R" in line and not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize(
    "compose_file", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ds.ROOT / "compose"))
)
def test_compose_config(docker_tools, compose_file, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KTRDR_", "POSTGRES_"))}
    env.pop("IMAGE_TAG", None)
    args = [ds.COMPOSE, "--project-directory", str(compose_file.parent)]
    example = compose_file.parent / ".env.example"
    if example.exists():
        # Every setting the file reads is documented in .env.example: validate with it alone
        # plus the secrets a user must fill in.
        env_file = tmp_path / ".env"
        env_file.write_text(
            example.read_text() + "".join(f"{k}={v}\n" for k, v in REQUIRED_ENV.items())
        )
        args += ["--env-file", str(env_file)]
    else:
        env.update(REQUIRED_ENV)
    result = subprocess.run(
        [*args, "-f", str(compose_file), "config"], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    config = yaml.safe_load(result.stdout)
    assert "WARNING" not in result.stderr, result.stderr
    for name, service in config["services"].items():
        assert service.get("restart"), f"{compose_file.name}: {name} has no restart policy"
        if service["image"].split("/")[-1].startswith("ktrdr-"):
            assert service["environment"].get("KTRDR_API_TOKEN"), f"{name}: no token"
            assert service["image"].endswith(f":{REQUIRED_ENV['IMAGE_TAG']}") or (
                compose_file.name == "local.yml"
            ), f"{name}: the image tag does not follow IMAGE_TAG"


def test_homelab_env_example_names_every_variable():

    example = (ds.ROOT / "compose" / "homelab" / ".env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, re.M))
    used: set[str] = set()
    for path in (ds.ROOT / "compose" / "homelab").glob("*.yml"):
        used |= set(re.findall(r"\$\{([A-Z_]+)", path.read_text()))
    assert used - documented == set()


def test_dockerignore_keeps_the_context_small():
    ignored = (ds.ROOT / ".dockerignore").read_text().split()
    for folder in (".git", ".venv", "tests", "bench", "**/__pycache__"):
        assert folder in ignored
