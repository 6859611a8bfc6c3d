"""Where moe-agent keeps its caches on the host: image build logs, CA bundles, tag caches, mirrors.

XDG base directories: $AGENT_CACHE_DIR when set, else $XDG_CACHE_HOME/moe-agent, else
~/.cache/moe-agent. A relative $XDG_CACHE_HOME is ignored, as the XDG spec asks. (The
user's config file follows $XDG_CONFIG_HOME in `agent.config.user_config_path`.) It lives
at the bottom layer so that sandbox/, tools/, evals/ and agent/ can all use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP = "moe-agent"


def cache_home(env: Mapping[str, str] = os.environ) -> Path:
    """The cache folder (not created here); callers add their own subfolder."""
    if env.get("AGENT_CACHE_DIR"):
        return Path(env["AGENT_CACHE_DIR"]).expanduser()
    xdg = env.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / APP
