"""A repository's Dockerfile is built with the user's memory limit on its RUN steps."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.config import SandboxSettings
from agent.environment import base_image


@pytest.mark.docker
def test_a_repository_dockerfile_builds_under_the_users_memory_limit(tmp_path: Path, docker_client: Any,
                                                                    sandbox_image: str) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(f"FROM {sandbox_image}\nUSER root\n"
                          "RUN cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes "
                          "> /opt/build-memory 2>/dev/null || true\nUSER agent\n")
    tag = base_image(SandboxSettings(dockerfile=dockerfile, memory="300m"), docker_client, lambda line: None)
    try:
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", tag, "cat", "/opt/build-memory"],
                             capture_output=True, text=True, timeout=60).stdout
    finally:
        docker_client.images.remove(tag, force=True)
    assert str(300 * 1024 ** 2) in out.split(), out
