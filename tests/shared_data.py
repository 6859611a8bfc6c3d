"""Where the real SWE-bench data lives: shared/ beside the clone, here and in CI.

`MOE_AGENT_SHARED` points elsewhere when needed.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(os.environ.get("MOE_AGENT_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
SWEBENCH = SHARED / "data" / "swebench"
