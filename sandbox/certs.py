"""Extra CA bundles: first-class, because corporate TLS-intercepting proxies are common.

An extra bundle is appended to the system bundle (never replacing it) and every common
tool inside the sandbox is pointed at the result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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


class BadBundle(SandboxError):
    """The CA bundle the user named is unreadable or holds no certificate: their input, so exit 2."""

    exit_code = 2


def bundle_problem(path: Path) -> str | None:
    """Why `path` is not a usable PEM CA bundle, or None when it is.

    Loaded with `ssl` (OpenSSL, as the sandbox's tools will), so a block that is not a
    certificate (bad base64, a key, truncated) is refused here, not baked into an image.
    """
    import ssl

    try:
        data = path.read_bytes()
    except IsADirectoryError:
        return f"cannot read the CA bundle {path}: it is a directory"
    except OSError as exc:
        return f"cannot read the CA bundle {path}: {exc.strerror}"
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return f"{path} is not a PEM CA bundle (no 'BEGIN CERTIFICATE' block)"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except (ssl.SSLError, OSError, ValueError) as exc:
        return f"{path}: not a usable CA bundle ({getattr(exc, 'reason', None) or exc})"
    return None


# What OpenSSL, and so the model client (httpx), reads instead of the system's CA store when set.
CLIENT_CA_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def client_bundle_problem(env: Mapping[str, str]) -> str | None:
    """Why the CA store `SSL_CERT_FILE`/`SSL_CERT_DIR` in `env` name cannot be used, or None.

    The model client loads it when it is made and fails with a bare `FileNotFoundError` or
    `ssl.SSLError` (a missing file, a directory, an unreadable file, text that is not PEM);
    said here first, it is one configuration line naming the variable.
    """
    import ssl

    for name in CLIENT_CA_VARIABLES:
        value = env.get(name)
        if not value:
            continue
        where = {"cafile": value} if name == "SSL_CERT_FILE" else {"capath": value}
        if name == "SSL_CERT_FILE" and (problem := bundle_problem(Path(value))):
            return f"{name}={value}: {problem}"
        if name == "SSL_CERT_DIR" and not Path(value).is_dir():
            return f"{name}={value}: not a directory"
        try:
            ssl.create_default_context(**where)
        except (OSError, ssl.SSLError) as exc:
            return f"{name}={value}: not a usable CA bundle ({getattr(exc, 'reason', None) or exc})"
    return None


def read_bundle(path: Path) -> bytes:
    """The bundle's bytes; `BadBundle` when it is unreadable or holds no certificate."""
    problem = bundle_problem(path)
    if problem:
        raise BadBundle(problem)
    return path.read_bytes()


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
