"""Extra CA bundles: first-class, because corporate TLS-intercepting proxies are common.

An extra bundle is appended to the system bundle (never replacing it) and every common
tool inside the sandbox is pointed at the result.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sandbox.base import SandboxError
from sandbox.cache import cache_home

SYSTEM_BUNDLES = (
    Path("/etc/ssl/certs/ca-certificates.crt"),
    Path("/etc/pki/tls/certs/ca-bundle.crt"),
    Path("/etc/ssl/cert.pem"),
)
CONTAINER_BUNDLE = "/etc/moe-agent/ca-bundle.crt"


def ca_environment(bundle_path: str) -> dict[str, str]:
    """Variables that make pip, requests, curl, git, node and OpenSSL trust the bundle."""
    return {
        name: bundle_path
        for name in (
            "SSL_CERT_FILE",
            "PIP_CERT",
            "REQUESTS_CA_BUNDLE",
            "CURL_CA_BUNDLE",
            "GIT_SSL_CAINFO",
            "NODE_EXTRA_CA_CERTS",
        )
    }


def read_bundle(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SandboxError(f"cannot read the CA bundle {path}: {exc.strerror}") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise SandboxError(f"{path} is not a PEM CA bundle (no 'BEGIN CERTIFICATE' block)")
    return data


def combined_bundle(extra: Path | None, cache_dir: Path | None = None) -> Path | None:
    """The host's system bundle plus `extra`, written once per content to a cache file."""
    if extra is None:
        return None
    system = next((p.read_bytes() for p in SYSTEM_BUNDLES if p.is_file()), b"")
    data = system.rstrip(b"\n") + b"\n" + read_bundle(extra)
    cache_dir = cache_dir or cache_home() / "ca"
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"bundle-{hashlib.sha256(data).hexdigest()[:16]}.crt"
    if not target.exists():
        target.write_bytes(data)
    return target
