"""A repository's Dockerfile is built with the user's memory limit on its RUN steps."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from agent.config import SandboxSettings
from agent.environment import base_image, build_context, dockerfile_tag, setup_tag
from agent.errors import EnvironmentProblem


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


GIT_CONFIG = b'[remote "origin"]\n\turl = https://x:ghp_planted0123@github.com/o/r\n'


def test_the_build_context_never_holds_a_git_directory_or_file(tmp_path: Path) -> None:
    """A repository's Dockerfile could `COPY .git/config` (the user's credential URL) into the image."""
    repo = tmp_path / "repo"
    files = {"Dockerfile": b"FROM debian\nCOPY .git/config /opt/gitcfg\n", "src/app.py": b"print(1)\n",
             ".git/config": GIT_CONFIG, ".git/objects/ab/cd": b"x", "vendor/lib/.git": b"gitdir: ../../.git/modules/lib\n",
             "vendor/lib/x.c": b"", "docs/.GIT/config": GIT_CONFIG, ".gitignore": b"*.pyc\n", "secret.env": b"K=v\n",
             ".dockerignore": b"# comment\nsecret.env\n!.git\n"}
    for name, data in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(data)
    (tmp_path / "host.txt").write_text("host secret\n")
    (repo / "link-out").symlink_to(tmp_path / "host.txt")
    (repo / "link-git").symlink_to(".git/config")

    with build_context(repo, "Dockerfile") as context, tarfile.open(fileobj=context) as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = b"".join(tar.extractfile(m).read() for m in members.values() if m.isfile())  # type: ignore[union-attr]

    assert sorted(members) == [".dockerignore", ".gitignore", "Dockerfile", "docs", "link-git", "link-out", "src",
                               "src/app.py", "vendor", "vendor/lib", "vendor/lib/x.c"]
    assert members["link-out"].issym() and members["link-git"].issym()  # links, never the files they name
    assert b"planted" not in contents and b"host secret" not in contents and b"K=v" not in contents


def test_a_dockerfile_image_from_before_the_context_rule_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian\n")
    old = hashlib.sha256(b"FROM debian\n" + b"\0" + os.fsencode((tmp_path / "Dockerfile").resolve())).hexdigest()[:16]
    assert dockerfile_tag(tmp_path / "Dockerfile") != f"moe-agent-user:{old}"


@pytest.mark.docker
def test_a_dockerfile_copying_git_config_fails_with_one_clear_line(tmp_path: Path, docker_client: Any,
                                                                    sandbox_image: str) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(GIT_CONFIG)
    (tmp_path / "Dockerfile").write_text(f"FROM {sandbox_image}\nCOPY .git/config /opt/gitcfg\n")
    with pytest.raises(EnvironmentProblem) as failed:
        base_image(SandboxSettings(dockerfile=tmp_path / "Dockerfile"), docker_client, lambda line: None)
    message = str(failed.value)
    assert "\n" not in message and "planted" not in message
    assert ".git/config" in message and "without .git" in message
    assert not docker_client.images.list(name=dockerfile_tag(tmp_path / "Dockerfile"))
