"""Whether this machine can install packages, for the `install` test tier.

The install check builds the wheel and installs it into an empty virtualenv, which needs a
package index (PyPI, or whatever pip is configured with). Asking pip itself for one small
distribution we depend on answers through the same index, proxy and certificates the
install will use; pip's HTTP cache makes a second ask cheap.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

PROBE = "typer"  # a dependency of ours, pure Python, small
PROBE_TIMEOUT = 120.0  # seconds


def missing() -> str | None:
    """None when pip can download from its index; else one line saying what to provide."""
    with tempfile.TemporaryDirectory(prefix="moe-agent-index-") as scratch:
        try:
            done = subprocess.run(
                [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", scratch, PROBE],
                capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False,
            )
        except subprocess.TimeoutExpired:
            return f"no package index answered within {PROBE_TIMEOUT:g} s: connect to PyPI or configure pip's index"
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no output")
        return f"pip cannot download from its index ({last.strip()}): connect to PyPI or configure pip's index"
    return None
