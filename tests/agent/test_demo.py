"""`agent demo`, the quick start's second half: a replayed session fixes the bundled project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


def test_demo_fixes_the_project_on_a_branch_and_cleans_up(tmp_path: Path, sandbox_image: str) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "agent", "demo"], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr
    assert "replaying a recorded session" in done.stdout
    assert "tests before: fail" in done.stdout
    assert "tests after, on branch agent/restock-loses-the-first-delivery: pass" in done.stdout
    assert "+    for units in delivered:" in done.stdout
    assert "\x1b[" not in done.stdout + done.stderr  # not a terminal: no colour
    assert not list(tmp_path.glob("moe-agent-demo-*"))  # the scratch project is gone
