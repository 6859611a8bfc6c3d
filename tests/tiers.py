"""Test tiers: groups of tests that need something a bare clone does not have (loaded with `-p`).

A tier is a pytest marker plus a check that says, in one line, what is missing and where to
put it (real SWE-bench data, a package index, a real model server). When the check
fails, the tier's tests are skipped and the run ends with that ONE line, not one per test;
nothing is read at import or collection time, so a bare clone collects cleanly. A run that
names the tier in $MOE_AGENT_REQUIRE_TIERS (comma-separated; `.ci/run` names every tier)
stops before running anything instead, because CI always has what the tiers need.

A new tier: one line in `TIERS` below, its check in the module that owns what it needs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pytest

from tests import package_index, real_model_server, shared_data

REQUIRE_ENV = "MOE_AGENT_REQUIRE_TIERS"


@dataclass(frozen=True)
class Tier:
    """`marker` names the tier's pytest marker; `missing()` is None when it can run, else one line."""

    marker: str
    description: str
    missing: Callable[[], str | None]


TIERS: tuple[Tier, ...] = (
    Tier("swebench_data", "reads the real SWE-bench data (official logs, real rows) from $SWEBENCH_DATA",
         shared_data.missing),
    Tier("install", "builds the wheel and installs it, no extras, in a fresh virtualenv from the package index",
         package_index.missing),
    Tier("real_model", "runs agent doctor and agent fix against llama-server serving Qwen2.5-Coder-0.5B "
         "(.ci/llm-server)", real_model_server.missing),
)
_skipped = pytest.StashKey[dict[str, tuple[int, str]]]()


def required(env: Mapping[str, str] = os.environ) -> set[str]:
    """The tiers this run must not skip, from $MOE_AGENT_REQUIRE_TIERS; `all` means every tier."""
    names = {name.strip() for name in env.get(REQUIRE_ENV, "").split(",") if name.strip()}
    return {tier.marker for tier in TIERS} if "all" in names else names


def pytest_configure(config: pytest.Config) -> None:
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier.marker}: {tier.description}")
    unknown = required() - {tier.marker for tier in TIERS}
    if unknown:
        raise pytest.UsageError(f"{REQUIRE_ENV} names unknown tiers: {', '.join(sorted(unknown))} "
                                f"(known: {', '.join(tier.marker for tier in TIERS)}, all)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check each tier that has selected tests, once; skip them all, or stop when it is required."""
    skipped: dict[str, tuple[int, str]] = {}
    for tier in TIERS:
        members = [item for item in items if item.get_closest_marker(tier.marker)]
        if not members or (why := tier.missing()) is None:
            continue
        if tier.marker in required():
            raise pytest.UsageError(f"tier {tier.marker} is required ({REQUIRE_ENV}) but cannot run: {why}")
        for item in members:
            item.add_marker(pytest.mark.skip(reason=f"tier {tier.marker}: {why}"))
        skipped[tier.marker] = (len(members), why)
    config.stash[_skipped] = skipped


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    for marker, (count, why) in config.stash.get(_skipped, {}).items():
        terminalreporter.write_line(f"tier {marker}: {count} tests skipped: {why}", yellow=True)
