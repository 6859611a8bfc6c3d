"""Whether this machine has the real model server, for the `real_model` test tier.

`.ci/llm-server` builds llama.cpp's `llama-server` and fetches Qwen2.5-Coder-0.5B once per
machine (`.ci/setup` runs it); its `ready` command checks the binary and the model's
checksum without starting anything.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

SERVER_SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "llm-server"
MODEL = "0.5b"


def missing() -> str | None:
    """None when llama-server and the 0.5B model are in the cache; else one line saying how to get them."""
    done = subprocess.run(["bash", str(SERVER_SCRIPT), "ready", MODEL], capture_output=True, timeout=120)
    if done.returncode == 0:
        return None
    return f"llama-server and Qwen2.5-Coder-{MODEL.upper()} are not set up here: run bash .ci/llm-server install {MODEL}"
