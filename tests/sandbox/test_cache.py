"""Cache locations follow XDG: $AGENT_CACHE_DIR, else $XDG_CACHE_HOME/moe-agent, else ~/.cache/moe-agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.cache import cache_home
from sandbox.certs import combined_bundle
from tests.fakes.certs import CA_PEM
from tools.tags import TagCache


def test_explicit_dir_beats_xdg_beats_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_home({"AGENT_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert cache_home({"XDG_CACHE_HOME": "/x"}) == Path("/x/moe-agent")
    assert cache_home({}) == tmp_path / "home" / ".cache" / "moe-agent"
    # The XDG spec: a relative path in these variables is invalid and ignored.
    assert cache_home({"XDG_CACHE_HOME": "relative/cache"}) == tmp_path / "home" / ".cache" / "moe-agent"


def test_caches_land_under_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert TagCache().path.parent == tmp_path / "xdg" / "moe-agent" / "tags"
    extra = tmp_path / "corp.pem"
    extra.write_bytes(CA_PEM)
    bundle = combined_bundle(extra)
    assert bundle is not None and bundle.parent == tmp_path / "xdg" / "moe-agent" / "ca"
