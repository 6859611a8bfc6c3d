"""Test tiers: a bare clone skips a tier in one line; a run that requires it stops instead."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import shared_data
from tests.tiers import REQUIRE_ENV, TIERS, pytest_configure, required

ROOT = Path(__file__).resolve().parents[1]
# One test of the swebench_data tier and one plain test, in a module that imports quickly.
SELECTION = ["tests/evals/test_report.py", "-k", "shared_official_run or report_sorts_every_outcome"]


def run_pytest(env_changes: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in env_changes} | {
        k: v for k, v in env_changes.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SELECTION],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_missing_data_skips_the_tier_in_one_line_and_the_rest_runs(tmp_path: Path) -> None:
    done = run_pytest({"SWEBENCH_DATA": str(tmp_path / "nowhere"), REQUIRE_ENV: None})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "swebench_data" in line]
    assert len(lines) == 1, done.stdout
    assert str(tmp_path / "nowhere") in lines[0] and "$SWEBENCH_DATA" in lines[0] and "1 tests skipped" in lines[0]
    assert "1 passed, 1 skipped" in done.stdout


def test_a_required_tier_without_its_data_stops_the_run(tmp_path: Path) -> None:
    done = run_pytest({"SWEBENCH_DATA": str(tmp_path / "nowhere"), REQUIRE_ENV: "swebench_data"})
    assert done.returncode not in (0, 1, 5), done.stdout + done.stderr  # a usage error: nothing ran
    assert "tier swebench_data is required" in done.stderr and str(tmp_path / "nowhere") in done.stderr
    assert "passed" not in done.stdout


def test_unknown_required_tier_is_named(pytestconfig: pytest.Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "swebench_data,gpu")
    with pytest.raises(pytest.UsageError, match="unknown tiers: gpu"):
        pytest_configure(pytestconfig)


def test_all_requires_every_tier() -> None:
    assert required({REQUIRE_ENV: "all"}) == {tier.marker for tier in TIERS}
    assert required({REQUIRE_ENV: " install , "}) == {"install"} and required({}) == set()


def test_data_location_env_beats_shared_beats_the_folder_beside_the_clone(tmp_path: Path) -> None:
    assert shared_data.swebench_data({"SWEBENCH_DATA": "/data/sb", "MOE_AGENT_SHARED": "/s"}) == Path("/data/sb")
    assert shared_data.swebench_data({"MOE_AGENT_SHARED": "/s"}) == Path("/s/data/swebench")
    assert shared_data.swebench_data({}) == ROOT.parent / "shared" / "data" / "swebench"


def test_missing_names_the_folder_and_what_it_lacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    monkeypatch.setattr(shared_data, "SWEBENCH", data)
    assert shared_data.missing() == (f"no SWE-bench data at {data}: put the data (tasks/, eval_logs/) there, "
                                     "or set $SWEBENCH_DATA to where it is")
    for path in shared_data.EXPECTED:
        (data / path).parent.mkdir(parents=True, exist_ok=True)
        (data / path).write_text("")
    assert shared_data.missing() is None
    (data / shared_data.EXPECTED[1]).unlink()
    assert f"{data} lacks {shared_data.EXPECTED[1]}:" in (shared_data.missing() or "")
