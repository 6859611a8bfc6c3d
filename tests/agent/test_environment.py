"""A repository's Dockerfile is built with the user's memory limit on its RUN steps, from the files its
snapshot would hold; setup and Dockerfile images are reused only for the same content."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import shutil

import pytest

from agent.config import SandboxSettings
from agent.config import load_settings
from agent.environment import base_image, build_context, context_files, dockerfile_tag, setup_tag
from agent.errors import EnvironmentProblem
from agent.workspace import UserRepo, git, take_snapshot


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


def _commit_all(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return root


def _content(root: Path, scratch: Path) -> str:
    return take_snapshot(UserRepo.find(root), scratch).content_digest()


PROJECT = {"pyproject.toml": "[project]\nname = 'p'\n", "package.json": '{"scripts": {"postinstall": "node hook.js"}}\n',
           "hook.js": "console.log('ok')\n", "Dockerfile": "FROM debian\nCOPY . /src\n"}


def test_another_repository_at_the_same_path_never_gets_the_first_ones_setup_or_dockerfile_image(
        tmp_path: Path) -> None:
    """Setup commands run as root and may leave anything outside /testbed (`pip install .` copies the
    project, a postinstall hook plants a file); a Dockerfile COPYs the context into the image. A second
    repository cloned to the same path with the same commands and dependency files (a fork's pull request
    in CI's one checkout folder) must neither get the first's image nor make one the first then reuses."""
    settings = SandboxSettings(setup=["npm ci", "pip install ."])
    path = tmp_path / "checkout"
    _commit_all(path, PROJECT)
    (path / "local.txt").write_text("untracked, not ignored: in the snapshot\n")  # a dirty tree is cached too
    first = setup_tag(settings, _content(path, tmp_path / "s1"), "sha256:base")
    again = setup_tag(settings, _content(path, tmp_path / "s2"), "sha256:base")
    first_dockerfile = dockerfile_tag(path / "Dockerfile", context_files(path, "Dockerfile"))
    assert first == again  # the same repository, unchanged: the setup is not run again

    shutil.rmtree(path)
    _commit_all(path, {**PROJECT, "hook.js": "require('fs').writeFileSync('/usr/lib/planted', 'x')\n"})
    (path / "local.txt").write_text("untracked, not ignored: in the snapshot\n")
    assert setup_tag(settings, _content(path, tmp_path / "s3"), "sha256:base") != first
    assert dockerfile_tag(path / "Dockerfile", context_files(path, "Dockerfile")) != first_dockerfile

    elsewhere = tmp_path / "elsewhere"  # content, not place: the same bytes at another path are the same image
    shutil.copytree(path, elsewhere, symlinks=True)
    assert (dockerfile_tag(elsewhere / "Dockerfile", context_files(elsewhere, "Dockerfile"))
            == dockerfile_tag(path / "Dockerfile", context_files(path, "Dockerfile")))


def test_an_ignored_file_changes_neither_image_tag(tmp_path: Path) -> None:
    """What is not in the snapshot is neither in the images nor in their keys: a local `.env` edited
    between runs rebuilds nothing (and is not read)."""
    settings = SandboxSettings(setup=["pip install ."])
    root = _commit_all(tmp_path / "repo", {**PROJECT, ".gitignore": ".env\n"})
    (root / ".env").write_text("K=1\n")
    before = (setup_tag(settings, _content(root, tmp_path / "s1"), "b"),
              dockerfile_tag(root / "Dockerfile", context_files(root, "Dockerfile")))
    (root / ".env").write_text("K=2\n")
    assert before == (setup_tag(settings, _content(root, tmp_path / "s2"), "b"),
                      dockerfile_tag(root / "Dockerfile", context_files(root, "Dockerfile")))
    (root / "hook.js").write_text("changed\n")
    assert before[0] != setup_tag(settings, _content(root, tmp_path / "s3"), "b")


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


def test_a_dockerfile_image_from_before_the_context_rules_is_not_reused(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM debian\n")
    where = os.fsencode((tmp_path / "Dockerfile").resolve())
    olds = {hashlib.sha256(b"FROM debian\n" + b"\0" + where + rule).hexdigest()[:16]
            for rule in (b"", b"\0context-v2-without-git")}  # with .git, then with git-ignored files
    assert dockerfile_tag(tmp_path / "Dockerfile", ["Dockerfile"]).removeprefix("moe-agent-user:") not in olds


IGNORED_LOCALLY = {".env": "API_KEY=sk-local-0123\n", "deploy.pem": "-----BEGIN PRIVATE KEY-----\n",
                   "node_modules/.npmrc": "//registry.npmjs.org/:_authToken=npm_local0123\n",
                   "sub/.env.local": "K=local\n", "excluded.txt": "in info/exclude\n"}


def _repository_with_local_secrets(root: Path, dockerfile: str) -> Path:
    """A cloned repository whose committed `.gitignore` keeps the developer's local secrets out of git."""
    _commit_all(root, {"Dockerfile": dockerfile, ".gitignore": ".env*\n*.pem\nnode_modules/\n", "src/app.py": "1\n",
                       "tracked.pem": "public test fixture\n"})
    git(root, "add", "-f", "tracked.pem")  # tracked files are in the snapshot whatever .gitignore says
    (root / ".git" / "info" / "exclude").write_text("excluded.txt\n")
    for name, text in {**IGNORED_LOCALLY, "new.py": "untracked, not ignored\n"}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "env-link").symlink_to(".env")
    return root


def test_the_build_context_holds_only_what_the_snapshot_would(tmp_path: Path) -> None:
    """The build's RUN steps have the network: a git-ignored local file in the context could be sent anywhere."""
    root = _repository_with_local_secrets(tmp_path / "repo", "FROM debian\nCOPY . /src\n")
    (root / "sub" / "Dockerfile").write_text("FROM debian\n")
    with build_context(root, "Dockerfile") as context, tarfile.open(fileobj=context) as tar:
        members = {m.name: m for m in tar.getmembers()}
        contents = b"".join(tar.extractfile(m).read() for m in members.values() if m.isfile())  # type: ignore[union-attr]
    assert sorted(members) == [".gitignore", "Dockerfile", "env-link", "new.py", "src", "src/app.py", "sub",
                               "sub/Dockerfile", "tracked.pem"]
    assert members["env-link"].issym()  # a link to an ignored file, whose target is not there
    assert not any(secret.encode() in contents for secret in IGNORED_LOCALLY.values())
    assert context_files(root / "sub", "Dockerfile") == ["Dockerfile"]  # a subfolder's context, same rule


def test_a_repository_may_not_name_an_ignored_file_as_its_dockerfile(tmp_path: Path) -> None:
    root = _repository_with_local_secrets(tmp_path / "repo", "FROM debian\n")
    (root / ".agent.toml").write_text('[sandbox]\ndockerfile = ".env"\n')
    warnings: list[str] = []
    settings = load_settings(root, env={"XDG_CONFIG_HOME": str(tmp_path / "none")}, warn=warnings.append)
    assert settings.sandbox.dockerfile is None
    assert any("sandbox.dockerfile" in line and "ignores" in line for line in warnings), warnings


@pytest.mark.docker
def test_a_repository_dockerfile_never_sees_a_git_ignored_file(tmp_path: Path, docker_client: Any,
                                                               sandbox_image: str) -> None:
    """`COPY .env` fails with one line; `COPY . /src` brings the snapshot's files and none of the local ones."""
    root = _repository_with_local_secrets(tmp_path / "repo", f"FROM {sandbox_image}\nCOPY .env /opt/x\n")
    with pytest.raises(EnvironmentProblem) as failed:
        base_image(SandboxSettings(dockerfile=root / "Dockerfile"), docker_client, lambda line: None)
    assert "\n" not in str(failed.value) and ".env" in str(failed.value) and "git-ignored" in str(failed.value)
    assert "sk-local" not in str(failed.value)

    (root / "Dockerfile").write_text(f"FROM {sandbox_image}\nCOPY . /src\n")
    tag = base_image(SandboxSettings(dockerfile=root / "Dockerfile"), docker_client, lambda line: None)
    try:
        listing = docker_client.containers.run(tag, ["find", "/src", "-mindepth", "1"], remove=True,
                                               network_mode="none").decode()
    finally:
        docker_client.images.remove(tag, force=True)
    assert sorted(listing.split()) == sorted(f"/src/{name}" for name in (
        ".gitignore", "Dockerfile", "env-link", "new.py", "src", "src/app.py", "tracked.pem"))


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
    assert not docker_client.images.list(name=dockerfile_tag(tmp_path / "Dockerfile", ["Dockerfile"]))
