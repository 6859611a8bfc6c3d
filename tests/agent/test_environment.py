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
from agent.environment import (base_image, build_context, context_files, dockerfile_tag, remote_urls,
                               setup_inputs, setup_tag)
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


def _inputs(root: Path, scratch: Path, commands: list[str]) -> str:
    return setup_inputs(commands, take_snapshot(UserRepo.find(root), scratch).files, root)


PROJECT = {"pyproject.toml": "[project]\nname = 'p'\n", "package.json": '{"scripts": {"postinstall": "node hook.js"}}\n',
           "hook.js": "console.log('ok')\n", "Dockerfile": "FROM debian\nCOPY . /src\n", "src/p.py": "x = 1\n",
           "hatch_build.py": "# a hatchling build hook\n", ".npmrc": "ignore-scripts=false\n",
           "scripts/setup.sh": "echo setup\n", "packages/web/package.json": "{}\n", "sub/build.py": "# not a hook\n"}
SETUP = ["npm ci", "pip install .", "bash ./scripts/setup.sh"]


def _clone(origin: Path, path: Path, url: str) -> None:
    subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True)
    git(path, "remote", "set-url", "origin", url)


def test_another_repository_at_the_same_path_never_gets_the_first_ones_setup_or_dockerfile_image(
        tmp_path: Path) -> None:
    """Setup commands run as root and may leave anything outside /testbed (`pip install .` copies the
    project, a postinstall hook plants a file); a Dockerfile COPYs the context into the image. Another
    repository cloned to the same path with the same commands and dependency files must neither get the
    first's image nor make one the first then reuses: its remote's URL differs."""
    settings = SandboxSettings(setup=SETUP)
    origin = _commit_all(tmp_path / "origin", PROJECT)
    path = tmp_path / "checkout"
    _clone(origin, path, "https://x:token1@example.com/a/project.git")
    first = setup_tag(settings, _inputs(path, tmp_path / "s1", SETUP), "sha256:base")
    first_dockerfile = dockerfile_tag(path / "Dockerfile", context_files(path, "Dockerfile"))
    git(path, "remote", "set-url", "origin", "https://x:token2@example.com/a/project.git")  # a rotated token
    assert setup_tag(settings, _inputs(path, tmp_path / "s2", SETUP), "sha256:base") == first

    shutil.rmtree(path)  # a look-alike: the same files, another repository, the same path
    _clone(origin, path, "https://example.com/b/look-alike.git")
    assert setup_tag(settings, _inputs(path, tmp_path / "s3", SETUP), "sha256:base") != first
    git(path, "remote", "remove", "origin")  # no remote: the path alone
    no_remote = setup_tag(settings, _inputs(path, tmp_path / "s4", SETUP), "sha256:base")
    assert no_remote != first

    elsewhere = tmp_path / "elsewhere"  # another path, same files: the setup runs again; the Dockerfile image is reused
    shutil.copytree(path, elsewhere, symlinks=True)
    assert setup_tag(settings, _inputs(elsewhere, tmp_path / "s5", SETUP), "sha256:base") != no_remote
    assert dockerfile_tag(elsewhere / "Dockerfile", context_files(elsewhere, "Dockerfile")) == first_dockerfile
    (elsewhere / "hook.js").write_text("require('fs').writeFileSync('/usr/lib/planted', 'x')\n")
    assert dockerfile_tag(elsewhere / "Dockerfile", context_files(elsewhere, "Dockerfile")) != first_dockerfile


@pytest.mark.parametrize(("edit", "runs_again"), [
    *((edit, False) for edit in ("src/p.py", "hook.js", "sub/build.py", "new.txt", "commit:src/p.py", ".env")),
    *((edit, True) for edit in ("pyproject.toml", "hatch_build.py", ".npmrc", "packages/web/package.json",
                                "scripts/setup.sh", "requirements-dev.txt", "build.py", "commit:package.json")),
])
def test_the_setup_runs_again_only_when_a_file_deciding_what_it_installs_changes(
        tmp_path: Path, edit: str, runs_again: bool) -> None:
    """Like Docker layers keyed by the lock files they copy: editing code, adding a file or committing does
    not run `pip install` / `npm ci` again (a git-ignored file is not even in the snapshot); the files that
    decide what the setup installs or runs do, by name at any depth (a workspace member's package.json), at
    the root (`build.py`, `requirements*.txt`) or named by a command (`scripts/setup.sh`), committed or not."""
    settings = SandboxSettings(setup=SETUP)
    root = _commit_all(tmp_path / "repo", {**PROJECT, ".gitignore": ".env\n"})
    git(root, "remote", "add", "origin", "git@example.com:a/project.git")
    before = setup_tag(settings, _inputs(root, tmp_path / "s1", SETUP), "b")
    committed, _, name = edit.rpartition(":")
    (root / name).write_text("changed\n")
    if committed:
        git(root, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "more")
    assert (setup_tag(settings, _inputs(root, tmp_path / "s2", SETUP), "b") != before) is runs_again


def test_an_ignored_file_changes_neither_image_tag(tmp_path: Path) -> None:
    """What is not in the snapshot is neither in the images nor in their keys: a local `.env` edited
    between runs rebuilds nothing (and is not read), even when its name is a dependency file's."""
    settings = SandboxSettings(setup=SETUP)
    root = _commit_all(tmp_path / "repo", {**PROJECT, ".gitignore": ".env\n/requirements-local.txt\n"})
    (root / ".env").write_text("K=1\n")
    (root / "requirements-local.txt").write_text("a\n")
    before = (setup_tag(settings, _inputs(root, tmp_path / "s1", SETUP), "b"),
              dockerfile_tag(root / "Dockerfile", context_files(root, "Dockerfile")))
    (root / ".env").write_text("K=2\n")
    (root / "requirements-local.txt").write_text("b\n")
    assert before == (setup_tag(settings, _inputs(root, tmp_path / "s2", SETUP), "b"),
                      dockerfile_tag(root / "Dockerfile", context_files(root, "Dockerfile")))


def test_the_setup_key_reads_the_remotes_from_the_repositorys_own_config(tmp_path: Path) -> None:
    """Every remote counts, as "NAME URL" without userinfo; the user's global config is not the repository's."""
    root = _commit_all(tmp_path / "repo", PROJECT)
    assert remote_urls(root) == []
    git(root, "remote", "add", "upstream", "ssh://git@example.com/a/project.git")
    git(root, "remote", "add", "origin", "https://me:ghp_secret@example.com/me/project")
    assert remote_urls(root) == ["origin https://example.com/me/project", "upstream ssh://example.com/a/project.git"]


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
