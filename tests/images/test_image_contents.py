"""The built images: who runs, what PID 1 is, what each layer holds, and how big they are."""

from __future__ import annotations

import pytest

from tests.support import docker as ds

pytestmark = pytest.mark.slow  # builds images

# image fixture -> (expected command, size rule)
IMAGES = {
    "backend_image": ["ktrdr-api", "serve"],
    "worker_cpu_image": ["ktrdr-worker", "training"],
}
# docs: ../shared/DESIGN.md §5 and issue 8. The backend: at most base + 80 MB. The CPU worker:
# at most 100 MB beyond the base, torch and the numeric stack. The seed's images, for scale.
BACKEND_MAX_OVER_BASE = 80e6
WORKER_MAX_OVER_NUMERIC = 100e6
SEED = {"ktrdr-backend": "seed 534 MB", "ktrdr-worker-cpu": "seed 1.35 GB"}


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


def test_sizes_meet_targets(backend_image, worker_cpu_image):
    base = ds.inspect(ds.BASE_IMAGE)["Size"]
    numeric = ds.numeric_distributions()
    failures = []
    for tag in (backend_image, worker_cpu_image):
        name = tag.split("/")[-1].split(":")[0]
        total = ds.inspect(tag)["Size"]
        stack = sum(ds.installed_bytes(tag, numeric).values())
        if name == "ktrdr-backend":
            target, ok = (
                f"<= base + {ds.mb(BACKEND_MAX_OVER_BASE)}",
                total - base <= BACKEND_MAX_OVER_BASE,
            )
        else:
            target = f"- torch+numeric <= {ds.mb(WORKER_MAX_OVER_NUMERIC)}"
            ok = total - base - stack <= WORKER_MAX_OVER_NUMERIC
        ds.SIZES.append(
            {
                "image": name,
                "total": total,
                "minus_base": total - base,
                "minus_numeric": total - base - stack,
                "target": f"{target} ({SEED[name]}){'' if ok else '  FAIL'}",
            }
        )
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
