"""Docker for the image tests (tests/images), started by the tests themselves (see
../shared/DESIGN.md §7).

- the Debian packages (docker.io, docker-compose, debootstrap) through apt-get when missing;
- a Docker daemon with no bridge and no iptables (``dockerd --bridge=none --iptables=false``),
  reused when one already answers; left running afterwards, like a system service, so that
  concurrent or later test runs share it and its build cache;
- the base image (scripts/docker-base: debootstrap bookworm + Python 3.11, cached);
- the CPU torch wheel of the locked version, served on loopback as a PEP 503 index (for the
  CPU training image; the torch-free ktrdr-worker-cpu needs none);
- BuildKit builds through the Debian docker client (20.10) with host networking and the
  machine's CA bundle as a build secret.

Each phase's duration is recorded in ``TIMINGS`` and printed at the end of the run.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from lock_boundaries import reachable

from tests.support.leftovers import outlives_the_run, outliving_env
from tests.support.processes import BIN

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = BIN  # the test venv's console scripts
# Debian's client: the newer one that may come first on PATH has no buildx, so it cannot
# build with BuildKit here.
DOCKER = "/usr/bin/docker"
DOCKERD = "/usr/sbin/dockerd"
COMPOSE = "/usr/bin/docker-compose"
DEBOOTSTRAP = "/usr/sbin/debootstrap"
APT_PACKAGES = {
    "docker.io": (DOCKER, DOCKERD),
    "docker-compose": (COMPOSE,),
    "debootstrap": (DEBOOTSTRAP,),
}
CACHE = Path(os.environ.get("KTRDR_DOCKER_CACHE", "/var/cache/ktrdr-docker"))
BASE_IMAGE = "ktrdr-base:bookworm"
# Where the test images are tagged: compose files name KTRDR_REGISTRY/IMAGE:IMAGE_TAG.
REGISTRY = "ktrdr-test"
TAG = "test"
TEST_LABEL = "org.ktrdr.image-test"
CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt")
BUILD_TIMEOUT_S = 45 * 60

TIMINGS: dict[str, float] = {}
SIZES: list[dict[str, object]] = []


@contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[name] = TIMINGS.get(name, 0.0) + time.monotonic() - started


class DockerUnavailable(Exception):
    """Docker cannot be set up on this machine; the message says why."""


def run(
    args: list[str], *, timeout: float = 600, check: bool = True, **kwargs
) -> subprocess.CompletedProcess:
    """Run a command, capturing text output; a failure names the command and shows its output."""
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(
            f"{' '.join(args)} took longer than {timeout:.0f} s:\n"
            f"{(exc.stdout or '')[-4000:]}{(exc.stderr or '')[-4000:]}"
        ) from None
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited with {result.returncode}:\n"
            f"{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        )
    return result


def docker(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    return run([DOCKER, *args], timeout=timeout, check=check)


# --- set-up phases -------------------------------------------------------------------------


def ensure_packages() -> None:
    """apt-get only the packages whose binaries are missing (a runner with Docker already
    installed keeps its own engine)."""
    missing = [
        package
        for package, binaries in APT_PACKAGES.items()
        if not all(Path(b).exists() for b in binaries)
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise DockerUnavailable(f"{', '.join(missing)} missing and not root to apt-get them")
    if shutil.which("apt-get") is None:
        raise DockerUnavailable(f"{', '.join(missing)} missing and no apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "--no-install-recommends", *missing],
    ):
        result = subprocess.run(args, capture_output=True, text=True, env=env, timeout=900)
        if result.returncode != 0:
            raise DockerUnavailable(f"{' '.join(args)} failed:\n{result.stderr[-3000:]}")


def daemon_answers() -> bool:
    return subprocess.run([DOCKER, "info"], capture_output=True, timeout=30).returncode == 0


def ensure_daemon() -> None:
    """Reuse a running daemon; otherwise start one with no bridge and no iptables."""
    if daemon_answers():
        return
    if os.geteuid() != 0:
        raise DockerUnavailable("no Docker daemon answers and not root to start dockerd")
    log_dir = CACHE / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / "dockerd.log"
    # Detached into its own session: it outlives this test run (a service, shared by runs),
    # so the end-of-run check for leftover processes leaves it alone.
    daemon = subprocess.Popen(
        [DOCKERD, "--bridge=none", "--iptables=false", "--ip6tables=false"],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=outliving_env(),
    )
    outlives_the_run(daemon.pid)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if daemon_answers():
            return
        time.sleep(0.5)
    raise DockerUnavailable(f"dockerd did not answer within 90 s:\n{log.read_text()[-3000:]}")


def ensure_base_image() -> None:
    result = subprocess.run(
        [str(ROOT / "scripts" / "docker-base"), BASE_IMAGE],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        raise DockerUnavailable(f"scripts/docker-base failed:\n{result.stdout}{result.stderr}")


def locked_version(name: str) -> str:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return next(p["version"] for p in lock["package"] if p["name"] == name)


def cpu_torch_wheel() -> Path:
    """The CPU wheel of the locked torch, as pip finds it (PIP_FIND_LINKS / PIP_EXTRA_INDEX_URL,
    like scripts/setup-env), cached under CACHE."""
    version = locked_version("torch")
    folder = CACHE / "wheels" / f"torch-{version}-py311"
    found = sorted(folder.glob("torch-*.whl"))
    if not found:
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [
                sys.executable if shutil.which("python3") is None else "python3",
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "-d",
                str(folder),
                f"torch=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        found = sorted(folder.glob("torch-*.whl"))
        if result.returncode != 0 or not found:
            raise DockerUnavailable(f"pip download torch=={version} failed:\n{result.stderr}")
    wheel = found[0]
    if "+cpu" not in wheel.name and os.uname().machine == "x86_64":
        raise DockerUnavailable(
            f"pip offered {wheel.name}, not the CPU build of torch {version}: point pip at the "
            "CPU wheels (PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu)"
        )
    return wheel


@dataclass
class WheelIndex:
    """A PEP 503 simple index on loopback that serves one folder of wheels."""

    url: str
    server: http.server.ThreadingHTTPServer
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_wheels(wheel: Path, root: Path) -> WheelIndex:
    project = root / "simple" / "torch"
    project.mkdir(parents=True, exist_ok=True)
    (project / wheel.name).symlink_to(wheel)
    href = wheel.name.replace("+", "%2B")
    (project / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{href}">{wheel.name}</a></body></html>\n'
    )
    handler = functools.partial(QuietHandler, directory=str(root))
    # A fixed port where possible: the URL is a build argument, and a new one each run would
    # re-run the build step that uses it.
    server = None
    for port in (*range(18765, 18775), 0):
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
            break
        except OSError:
            continue
    assert server is not None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return WheelIndex(f"http://127.0.0.1:{server.server_address[1]}/simple", server, thread)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def build(image: str, dockerfile: str, build_args: dict[str, str], log_dir: Path) -> str:
    """Build ``docker/<dockerfile>`` from the workspace root; returns the tag."""
    tag = f"{REGISTRY}/{image}:{TAG}"
    args = [
        DOCKER,
        "build",
        "--network",
        "host",
        "--progress",
        "plain",
        "-f",
        str(ROOT / "docker" / dockerfile),
        "-t",
        tag,
        "--build-arg",
        f"BASE_IMAGE={BASE_IMAGE}",
    ]
    args += ["--label", f"{TEST_LABEL}=1"]
    for name, value in build_args.items():
        args += ["--build-arg", f"{name}={value}"]
    if CA_BUNDLE.is_file():
        args += ["--secret", f"id=ca,src={CA_BUNDLE}"]
    args.append(str(ROOT))
    log = log_dir / f"build-{image}.log"
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    with log.open("w") as out:
        try:
            code = subprocess.run(
                args, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=BUILD_TIMEOUT_S
            ).returncode
        except subprocess.TimeoutExpired:
            code = None
    if code != 0:
        raise AssertionError(
            f"building {image} failed ({'timed out' if code is None else f'exit {code}'}); "
            f"last lines of {log}:\n{log.read_text()[-8000:]}"
        )
    # The previous build of this tag is now dangling: remove it (only images built here), so
    # repeated runs do not fill the disk.
    docker("image", "prune", "-f", "--filter", f"label={TEST_LABEL}=1", check=False)
    return tag


# --- inspection -----------------------------------------------------------------------------


def inspect(tag: str) -> dict:
    return json.loads(docker("image", "inspect", tag).stdout)[0]


@dataclass
class LayerScan:
    """What each layer of an image holds (paths), and which layers hold forbidden content."""

    layers: list[set[str]] = field(default_factory=list)
    files_with: dict[str, list[str]] = field(default_factory=dict)

    def layers_holding(self, prefix: str) -> int:
        return sum(any(p.startswith(prefix) for p in layer) for layer in self.layers)

    def paths(self) -> Iterator[str]:
        for layer in self.layers:
            yield from layer


def scan_layers(tag: str, needles: dict[str, bytes], max_file_bytes: int = 4 << 20) -> LayerScan:
    """Stream ``docker save`` and record every path of every layer, plus which files (of at
    most ``max_file_bytes``) contain each needle: deleted files linger in lower layers, so
    the layers are what must be clean, not the final file system."""
    scan = LayerScan(files_with={name: [] for name in needles})
    proc = subprocess.Popen([DOCKER, "save", tag], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    with tarfile.open(fileobj=proc.stdout, mode="r|") as outer:
        for member in outer:
            if not member.name.endswith("layer.tar"):
                continue
            layer: set[str] = set()
            blob = outer.extractfile(member)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r|") as inner:
                for entry in inner:
                    layer.add(entry.name.removeprefix("./"))
                    if not entry.isfile() or entry.size > max_file_bytes or not needles:
                        continue
                    handle = inner.extractfile(entry)
                    content = handle.read() if handle else b""
                    for name, needle in needles.items():
                        if needle in content:
                            scan.files_with[name].append(entry.name)
            scan.layers.append(layer)
    if proc.wait() != 0:
        raise AssertionError(f"docker save {tag} failed")
    return scan


SITE_PACKAGES = "opt/venv/lib/python3.11/site-packages/"


def site_packages_entries(scan: LayerScan) -> set[str]:
    """The top-level names in the image's site-packages (``torch``, ``numpy-2.4.6.dist-info``),
    over every layer."""
    return {
        path[len(SITE_PACKAGES) :].split("/")[0]
        for path in scan.paths()
        if path.startswith(SITE_PACKAGES) and len(path) > len(SITE_PACKAGES)
    }


def distribution_names(entries: set[str]) -> set[str]:
    """The installed distributions' names as the lock spells them, from their .dist-info
    folders (``scikit_learn-1.7.dist-info`` -> ``scikit-learn``)."""
    return {
        entry.removesuffix(".dist-info").rsplit("-", 1)[0].replace("_", "-").lower()
        for entry in entries
        if entry.endswith(".dist-info")
    }


def pem_certificates(text: str) -> list[str]:
    blocks = text.split("-----BEGIN CERTIFICATE-----")[1:]
    return ["".join(b.split("-----END CERTIFICATE-----")[0].split()) for b in blocks]


def extra_ca_needles(public_bundles: str) -> dict[str, bytes]:
    """Certificates in this machine's CA bundle that the image's public bundles (Debian's,
    certifi's) lack, i.e. a TLS-intercepting proxy's CA: a 64-character line of each, as
    stored on disk, to look for in every layer. Empty where the machine adds nothing."""
    if not CA_BUNDLE.is_file():
        return {}
    public = set(pem_certificates(public_bundles))
    needles: dict[str, bytes] = {}
    for number, cert in enumerate(pem_certificates(CA_BUNDLE.read_text(errors="replace"))):
        if cert not in public:
            needles[f"{CA_BUNDLE} certificate #{number}"] = cert[len(cert) // 2 :][:64].encode()
    return needles


# Run inside an image: the public CA bundles it carries, concatenated.
PUBLIC_BUNDLES_SCRIPT = """
import pathlib
paths = [pathlib.Path("/etc/ssl/certs/ca-certificates.crt")]
try:
    import certifi
    paths.append(pathlib.Path(certifi.where()))
except ImportError:
    pass
print("".join(p.read_text() for p in paths if p.is_file()))
"""


def public_bundles(tag: str) -> str:
    return docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "python3",
        tag,
        "-c",
        PUBLIC_BUNDLES_SCRIPT,
    ).stdout


NUMERIC_ROOTS = ("torch", "numpy", "pandas", "scipy", "scikit-learn", "ta-lib")


def numeric_distributions() -> list[str]:
    """torch and the numeric stack as the lock installs them: the dependency closure of
    NUMERIC_ROOTS (extras included: torch reaches the nvidia-* runtime through cuda-toolkit's
    extras), minus what ktrdr-core needs anyway (pydantic, httpx, ...)."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    numeric: set[str] = set()
    for root in NUMERIC_ROOTS:
        numeric |= set(reachable(lock, root))
    return sorted(numeric - set(reachable(lock, "ktrdr-core")))


# Run inside an image: bytes installed for each named distribution (its RECORD plus the
# bytecode compiled beside each of its modules).
SIZE_SCRIPT = """
import json, sys, importlib.metadata as md
total = {}
for name in sys.argv[1:]:
    try:
        dist = md.distribution(name)
    except md.PackageNotFoundError:
        continue
    size = 0
    for f in dist.files or []:
        p = f.locate()
        if p.is_file():
            size += p.stat().st_size
        if p.suffix == ".py":
            for pyc in p.parent.joinpath("__pycache__").glob(p.stem + ".cpython-*.pyc"):
                size += pyc.stat().st_size
    total[name] = size
print(json.dumps(total))
"""


def installed_bytes(tag: str, distributions: list[str]) -> dict[str, int]:
    result = docker(
        "run",
        "--rm",
        "--network",
        "host",
        "--entrypoint",
        "python3",
        tag,
        "-c",
        SIZE_SCRIPT,
        *distributions,
    )
    return json.loads(result.stdout)


def mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB"
