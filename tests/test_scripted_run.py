"""The end-to-end runs' own setup (tests/scripted_run.py), which the benchmarks use too: fast, no Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.scripted_run import committed_repo, git, run_agent


def test_a_committed_repo_holds_the_files_given_and_those_already_there_in_one_commit_on_main(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "setup.py").write_text("setup()\n")
    repo = committed_repo(tmp_path / "repo", {"calc.py": "x = 1\n", "pkg/deep/mod.py": "y = 2\n"}, "base")
    assert git(repo, "ls-files").split() == ["calc.py", "pkg/deep/mod.py", "setup.py"]
    assert git(repo, "log", "--format=%s %an").splitlines() == ["base t"]
    assert git(repo, "symbolic-ref", "--short", "HEAD").strip() == "main" and git(repo, "status", "--porcelain") == ""


def test_a_run_reads_the_config_under_its_own_home_and_never_the_machine_s(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file below is unreadable TOML, so `agent fix` stops at once naming the one it read."""
    repo = committed_repo(tmp_path / "repo", {"calc.py": "x = 1\n"})
    machine, user, named = tmp_path / "machine.toml", tmp_path / "home" / ".config" / "moe-agent" / "config.toml", \
        tmp_path / "named.toml"
    user.parent.mkdir(parents=True)
    for path in (machine, user, named):
        path.write_text("broken = [\n")
    monkeypatch.setenv("AGENT_CONFIG", str(machine))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for extra, read in (({}, user), ({"AGENT_CONFIG": str(named)}, named)):
        done = run_agent("http://127.0.0.1:9/v1", tmp_path / "home", "fix", "-C", str(repo), "--json", "x",
                         env_extra=extra, timeout=120)
        result = json.loads(done.stdout)
        assert done.returncode == 2 and result["message"].startswith(f"{read}: invalid TOML"), done.stdout
