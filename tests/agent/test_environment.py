"""A repository's Dockerfile is built with the user's memory limit on its RUN steps."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.config import SandboxSettings
from agent.environment import base_image, dockerfile_tag, setup_tag


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


def test_a_look_alike_repository_never_makes_the_setup_image_another_one_reuses(tmp_path: Path) -> None:
    """Setup commands run as root and may leave anything outside /testbed: a fork copying a
    project's commands and dependency files must not plant the image that project then starts from."""
    settings = SandboxSettings(setup=["pip install -e ."])
    original, look_alike = tmp_path / "project", tmp_path / "look-alike"
    for repo in (original, look_alike):
        repo.mkdir()
        (repo / "pyproject.toml").write_text("[project]\nname = 'p'\n")
        (repo / "Dockerfile").write_text("FROM debian\nCOPY . /src\n")
    assert setup_tag(settings, original, "sha256:base") == setup_tag(settings, original, "sha256:base")
    assert setup_tag(settings, original, "sha256:base") != setup_tag(settings, look_alike, "sha256:base")
    assert dockerfile_tag(original / "Dockerfile") != dockerfile_tag(look_alike / "Dockerfile")
