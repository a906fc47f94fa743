"""The built images: who runs, what PID 1 is, what each layer holds, and how big they are."""

from __future__ import annotations

import tomllib

import install_profile
import pytest

from tests.support import docker as ds

pytestmark = pytest.mark.slow  # builds images

# image fixture -> expected command
IMAGES = {
    "backend_image": ["ktrdr-api", "serve"],
    "worker_cpu_image": ["ktrdr-worker", "backtest"],
    "worker_cpu_training_image": ["ktrdr-worker", "training"],
}
# docs: ../shared/DESIGN.md §5, issues 8, 18 and 20. The backend: at most base + 80 MB. The
# torch-free backtest worker: at most 350 MB in all, base included (300 MB, plus at most 50 MB
# for Optuna and what it brings: the parameter study's driver runs there). The CPU training worker:
# at most 100 MB beyond the base, torch and the numeric stack. The original system's targets
# and what it reached, for scale.
BACKEND_MAX_OVER_BASE = 80e6
WORKER_CPU_MAX_TOTAL = 350e6
# Optuna and what only the study driver needs of it, measured inside the torch-free image.
SEARCH_DISTRIBUTIONS = ["optuna", "sqlalchemy", "alembic", "mako", "colorlog", "tqdm"]
SEARCH_MAX = 50e6
TRAINING_MAX_OVER_NUMERIC = 100e6
ORIGINAL = {
    "ktrdr-backend": "original: target 200-300 MB, reached 534 MB",
    "ktrdr-worker-cpu": "original: target 500 MB, reached 1.35 GB",
    "ktrdr-worker-cpu-training": "original: no such image (its CPU worker: 1.35 GB)",
}
# Import names (top level of site-packages) the torch-free image must not hold.
TORCH_FREE_FORBIDDEN = ("torch", "scipy", "sklearn", "triton", "nvidia", "sympy", "cuda")


@pytest.fixture(scope="module", params=sorted(IMAGES))
def image(request) -> tuple[str, list[str]]:
    return request.getfixturevalue(request.param), IMAGES[request.param]


@pytest.fixture(scope="module")
def scans() -> dict[str, tuple[ds.LayerScan, dict[str, bytes]]]:
    return {}


def layer_scan(tag: str, scans) -> tuple[ds.LayerScan, dict[str, bytes]]:
    """One `docker save` pass per image, shared by the tests below."""
    if tag not in scans:
        needles = ds.extra_ca_needles(ds.public_bundles(tag))
        with ds.phase(f"layer scan {tag.split('/')[-1]}"):
            scans[tag] = (ds.scan_layers(tag, needles), needles)
    return scans[tag]


def test_runs_as_non_root_under_tini(image):
    tag, command = image
    config = ds.inspect(tag)["Config"]
    assert config["User"] not in ("", "root", "0", "0:0"), config["User"]
    assert config["Entrypoint"] == ["tini", "--"]
    assert config["Cmd"] == command
    assert config["Healthcheck"]["Test"][0] == "CMD"
    # Through the image's own entrypoint: PID 1 is tini, the command runs as uid 10001.
    out = ds.docker(
        "run",
        "--rm",
        "--network",
        "host",
        tag,
        "sh",
        "-c",
        "tr '\\0' ' ' </proc/1/cmdline; echo; id -u",
    ).stdout.split("\n")
    assert out[0].split()[:2] == ["tini", "--"], out
    assert out[1] == "10001", out


def test_layers_hold_one_venv_and_no_secrets_or_uv(image, scans):
    tag, _ = image
    scan, needles = layer_scan(tag, scans)
    assert scan.layers_holding("opt/venv/") == 1, "the virtual environment spans several layers"
    paths = list(scan.paths())
    assert not [p for p in paths if p.startswith("run/secrets/") or p.endswith("/run/secrets/ca")]
    uv = [p for p in paths if p.endswith(("bin/uv", "bin/uvx")) or "site-packages/uv/" in p]
    assert not uv, f"uv in the runtime image: {uv[:5]}"
    leaked = {name: files for name, files in scan.files_with.items() if files}
    assert not leaked, f"the build CA bundle landed in a layer: {leaked}"
    if needles:
        print(f"{tag}: no layer holds any of {len(needles)} certificate(s) only the build knew")


def test_backend_holds_no_worker_and_no_numeric_stack(backend_image, scans):
    scan, _ = layer_scan(backend_image, scans)
    forbidden = ("ktrdr_worker", "torch", "numpy", "pandas", "scipy", "sklearn", "talib")
    found = [
        p
        for p in scan.paths()
        if "site-packages/" in p and p.split("site-packages/")[1].split("/")[0] in forbidden
    ]
    assert not found, found[:10]


def test_worker_cpu_holds_no_torch_scipy_sklearn_or_cuda(worker_cpu_image, scans):
    """Every layer of the backtest image, not just its final file system: no torch, scipy,
    scikit-learn, triton or nvidia-* package, nor any distribution the torch-free profile of
    scripts/install_profile.py leaves out."""
    scan, _ = layer_scan(worker_cpu_image, scans)
    entries = ds.site_packages_entries(scan)
    assert "numpy" in entries and "pandas" in entries and "talib" in entries, sorted(entries)
    found = sorted(
        e for e in entries if e.split("-")[0].split(".")[0].lower() in TORCH_FREE_FORBIDDEN
    )
    assert not found, found
    lock = tomllib.loads((ds.ROOT / "uv.lock").read_text())
    left_out = set(install_profile.left_out(lock, "torch-free"))
    assert not ds.distribution_names(entries) & left_out
    # What the trim removed is only what no import path reads.
    assert not [e for e in scan.paths() if "site-packages/pandas/tests/" in e][:1]
    assert not [e for e in scan.paths() if e.endswith("talib/_ta_lib.c")]


def test_the_study_driver_runs_inside_the_torch_free_image(worker_cpu_image):
    """Optuna's TPE, median pruner and PED-ANOVA importance on numpy alone: a study against a
    backend played in-process (tests/support/tuning_probe.py), inside the image."""
    import json

    from tests.support.tuning_probe import PROBE

    out = ds.docker(
        "run", "--rm", "--network", "host", "--entrypoint", "python3", worker_cpu_image,
        "-c", PROBE,
    ).stdout  # fmt: skip
    result = json.loads(out.strip().splitlines()[-1])
    assert result["imported"] == [] and len(result["importance"]) == 2, result
    added = sum(ds.installed_bytes(worker_cpu_image, SEARCH_DISTRIBUTIONS).values())
    print(f"ktrdr-worker-cpu: Optuna and its own dependencies add {ds.mb(added)}")
    assert added <= SEARCH_MAX, f"Optuna adds {ds.mb(added)}, budget {ds.mb(SEARCH_MAX)}"


def test_worker_cpu_training_carries_the_cpu_torch_and_no_cuda(worker_cpu_training_image, scans):
    scan, _ = layer_scan(worker_cpu_training_image, scans)
    entries = ds.site_packages_entries(scan)
    assert {"torch", "scipy", "sklearn", "numpy", "pandas", "talib"} <= entries
    cuda = sorted(e for e in entries if e.startswith(("nvidia", "triton", "cuda")))
    assert not cuda, cuda
    out = ds.docker(
        "run",
        "--rm",
        "--network",
        "host",
        worker_cpu_training_image,
        "python3",
        "-c",
        "import torch; print(torch.__version__, torch.version.cuda)",
    ).stdout.split()
    assert out == [f"{ds.locked_version('torch')}+cpu", "None"], out


def test_sizes_meet_targets(backend_image, worker_cpu_image, worker_cpu_training_image):
    base = ds.inspect(ds.BASE_IMAGE)["Size"]
    numeric = ds.numeric_distributions()
    failures = []
    for tag in (backend_image, worker_cpu_image, worker_cpu_training_image):
        name = tag.split("/")[-1].split(":")[0]
        total = ds.inspect(tag)["Size"]
        stack = sum(ds.installed_bytes(tag, numeric).values())
        if name == "ktrdr-backend":
            target = f"<= base + {ds.mb(BACKEND_MAX_OVER_BASE)}"
            ok = total - base <= BACKEND_MAX_OVER_BASE
        elif name == "ktrdr-worker-cpu":
            target = f"<= {ds.mb(WORKER_CPU_MAX_TOTAL)} in all"
            ok = total <= WORKER_CPU_MAX_TOTAL
        else:
            target = f"- torch+numeric <= {ds.mb(TRAINING_MAX_OVER_NUMERIC)}"
            ok = total - base - stack <= TRAINING_MAX_OVER_NUMERIC
        ds.SIZES.append(
            {
                "image": name,
                "total": total,
                "minus_base": total - base,
                "minus_numeric": total - base - stack,
                "target": f"{target} ({ORIGINAL[name]}){'' if ok else '  FAIL'}",
            }
        )
        print(f"{name}: {ds.mb(total)} in all, {ds.mb(total - base)} beyond the base; {target}")
        if not ok:
            failures.append(f"{name}: {ds.mb(total)} in all, target {target}")
    ds.SIZES.append(
        {
            "image": "ktrdr-base",
            "total": base,
            "minus_base": 0,
            "minus_numeric": 0,
            "target": "debootstrap bookworm + python3 (stands in for python:3.11-slim)",
        }
    )
    assert not failures, failures
