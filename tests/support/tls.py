"""A private CA and a server certificate for 127.0.0.1, made with `openssl` the way
compose/README.md tells an operator to (same commands, shorter lifetimes), plus a second CA
that signed nothing of ours (the "wrong CA")."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pki:
    ca: Path  # the CA certificate clients trust (KTRDR_CA_BUNDLE)
    cert: Path  # the backend's certificate (KTRDR_TLS_CERT)
    key: Path  # its key (KTRDR_TLS_KEY)
    wrong_ca: Path  # another CA's certificate: trusting only it must refuse the backend


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {' '.join(args)}\n{result.stderr}"


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.crt"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key.name, "-out", cert.name, "-days", "2", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=folder)  # fmt: skip
    return cert, key


def make_pki(folder: Path) -> Pki:
    """Files under ``folder``: ca.crt/.key, backend.crt/.key (SAN 127.0.0.1 and localhost),
    wrong-ca.crt/.key."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(folder, "ca")
    wrong_ca, _ = _ca(folder, "wrong-ca")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", "backend.key", "-out", "backend.csr", "-subj", "/CN=127.0.0.1",
             cwd=folder)  # fmt: skip
    (folder / "backend.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "extendedKeyUsage=serverAuth\n"
        "basicConstraints=CA:FALSE\n"
    )
    _openssl("x509", "-req", "-in", "backend.csr", "-CA", ca.name, "-CAkey", ca_key.name,
             "-CAcreateserial", "-out", "backend.crt", "-days", "2",
             "-extfile", "backend.ext", cwd=folder)  # fmt: skip
    return Pki(ca=ca, cert=folder / "backend.crt", key=folder / "backend.key", wrong_ca=wrong_ca)
