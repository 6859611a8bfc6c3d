"""Edits to ignore and attributes files that let local secrets into a commit, an image or a package (#16, ninth tester)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agent.ignore_rules import IgnoreEdit, unignored
from agent.patch_policy import PatchRefused, enforce, review_patch


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          check=True, capture_output=True, text=True).stdout


def edit_patch(tmp_path: Path, name: str, before: str, after: str) -> str:
    """The patch `git diff` writes for changing `name` from `before` to `after` ("" absent)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "app.py").write_text("x = 1\n")
    if before:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(before)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    if after:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(after)
    else:
        (repo / name).unlink()
    git(repo, "add", "-A")
    return git(repo, "diff", "--cached", "--binary", "--no-renames", "HEAD")


@pytest.mark.parametrize(("name", "before", "after", "detail"), [
    (".gitignore", "*.log\n", "*.log\n!.env\n", "adds `!.env`: un-ignores .env, sub/.env"),
    (".gitignore", ".env\n*.log\n", "*.log\n", "removes `.env`: un-ignores .env, sub/.env"),
    ("pkg/.gitignore", "dist/\n", "dist/\n!*.pem\n", "adds `!*.pem`: un-ignores server.pem, sub/server.pem"),
    (".gitignore", "/secrets/\n", "", "removes `/secrets/`: un-ignores secrets/token"),  # the file deleted
    (".dockerignore", "node_modules\n*.key\n", "node_modules\n",
     "removes `*.key`: un-ignores server.key, config/master.key, sub/server.key, sub/config/master.key"),
    (".npmignore", "test/\n", "test/\n!.npmrc\n", "adds `!.npmrc`: un-ignores .npmrc, sub/.npmrc"),
    (".GitIgnore", "id_*\n", "\n", "removes `id_*`: un-ignores id_rsa, id_ed25519, id_ecdsa, id_dsa and 4 more"),
    (".gitattributes", "secrets/** filter=git-crypt diff=git-crypt\n", "*.png binary\n",
     "removes `secrets/** filter=git-crypt diff=git-crypt`: secrets/** is no longer encrypted on commit"),
    (".gitattributes", "*.enc filter=sops\n", "*.enc filter=sops\nkeys/* -filter\n",
     "adds `keys/* -filter`: keys/* is no longer encrypted on commit"),
])
def test_an_edit_that_unignores_secrets_is_listed_and_refused(tmp_path: Path, name, before, after, detail) -> None:
    review = review_patch(edit_patch(tmp_path, name, before, after))
    assert [(f.kind, f.path, f.detail) for f in review.findings] == [("ignore_rules", name, detail)]
    with pytest.raises(PatchRefused, match=r"local secret files can be committed.*\['ignore_rules'\]"):
        enforce(review, allow=["tool_config", "ci_config"])
    enforce(review, allow=["ignore_rules"])


@pytest.mark.parametrize(("name", "before", "after"), [
    (".gitignore", "*.log\n", "*.log\n.env\nnode_modules/\n"),  # ignoring more
    (".gitignore", "", "__pycache__/\n.env\n"),  # a new .gitignore
    (".gitignore", ".env\n", ".env*\n"),  # replaced by a broader pattern
    (".gitignore", ".env\n*.log\n", "*.log\n.env\n"),  # reordered
    (".gitignore", ".env\n", ".env\n!.env.example\n"),  # committing the example is its purpose
    (".gitignore", "build/\n*.log\n", "*.log\n"),  # un-ignores build output, no secret
    (".gitignore", "dist/\n", "dist/\n!dist/index.js\n"),
    (".dockerignore", ".git\n", ".git\n.env\n"),
    (".gitattributes", "*.bin filter=lfs diff=lfs merge=lfs -text\n", "*.sh text eol=lf\n"),  # LFS is no encryption
    (".gitattributes", "", "*.png binary\n"),
])
def test_ordinary_ignore_and_attribute_edits_pass(tmp_path: Path, name, before, after) -> None:
    assert review_patch(edit_patch(tmp_path, name, before, after)).findings == []


def test_git_is_asked_once_for_every_pattern_of_a_patch(monkeypatch) -> None:
    import agent.ignore_rules as ignore_rules

    calls: list[list[str]] = []
    real = ignore_rules.subprocess.run
    monkeypatch.setattr(ignore_rules.subprocess, "run", lambda args, *a, **kw: calls.append(args) or real(args, *a, **kw))
    found = unignored([IgnoreEdit(".gitignore", ("!.env",), ("*.pem",)), IgnoreEdit("a/.npmignore", ("!*.key",), ())])
    assert [path for path, _ in found] == [".gitignore", ".gitignore", "a/.npmignore"]
    assert [args[1] for args in calls] == ["init", "check-ignore"]
    calls.clear()
    assert unignored([IgnoreEdit(".gitignore", (".env", "dist/"), ())]) == [] and calls == []  # nothing to ask


def test_an_ignore_file_renamed_away_is_listed() -> None:
    renamed = "diff --git a/.gitignore b/gitignore.old\nsimilarity index 100%\nrename from .gitignore\nrename to gitignore.old\n"
    assert [(f.kind, f.path, f.detail) for f in review_patch(renamed).findings] == [
        ("ignore_rules", "gitignore.old", "renamed from .gitignore: none of its rules apply")]
    moved = "diff --git a/a/.gitignore b/b/.gitignore\nsimilarity index 100%\nrename from a/.gitignore\nrename to b/.gitignore\n"
    assert review_patch(moved).findings == []


# -- the eleventh tester: secret files of other tools (#16). Each pattern is the one a project's .gitignore keeps the
# file out with (GitHub's gitignore templates, the tools' docs); removing it, or negating it, must be listed.
ELEVENTH_TESTER_SECRET_RULES = [
    ("local.settings.json", "local.settings.json"), ("serviceAccountKey.json", "serviceAccountKey.json"),
    ("*-service-account*.json", "my-project-service-account-1a2b.json"), (".pgpass", ".pgpass"),
    (".streamlit/secrets.toml", ".streamlit/secrets.toml"), ("*.ovpn", "client.ovpn"), ("auth.json", "auth.json"),
    ("kubeconfig", "kubeconfig"), (".kube/", ".kube/config"), ("wp-config.php", "wp-config.php"),
    ("appsettings.*.json", "appsettings.Development.json"), ("*.gpg", "secring.gpg"), ("secring.*", "secring.gpg"),
    (".my.cnf", ".my.cnf"), ("credentials.json", "credentials.json"), ("token.json", "token.json"),
    ("client_secret*.json", "client_secret_123.apps.googleusercontent.com.json"), (".htpasswd", ".htpasswd"),
    ("*.keystore", "release.keystore"), (".git-credentials", ".git-credentials"), ("id_ed25519", "id_ed25519"),
    ("*.ppk", "key.ppk"), (".s3cfg", ".s3cfg"), (".boto", ".boto"), ("terraform.tfstate", "terraform.tfstate"),
    ("*.tfstate*", "terraform.tfstate"), (".envrc", ".envrc"), ("*.p8", "AuthKey_ABC123.p8"),
    (".vault-token", ".vault-token"), (".docker/", ".docker/config.json"), ("_netrc", "_netrc"),
    # a fresh tester (#16): gitrob's `.asc` key bundles, Firebase Admin key downloads, token files, Rails credentials
    ("*.asc", "private.asc"), ("firebase-adminsdk*.json", "firebase-adminsdk.json"),
    ("*firebase-adminsdk*.json", "my-app-firebase-adminsdk-ab1cd-0123456789.json"), ("token.txt", "token.txt"),
    ("config/credentials.yml.enc", "config/credentials.yml.enc"), ("*.enc", "config/credentials.yml.enc"),
    ("/config/credentials.yml.enc", "config/credentials.yml.enc"),
]


@pytest.mark.parametrize(("pattern", "sample"), ELEVENTH_TESTER_SECRET_RULES)
def test_removing_or_negating_the_eleventh_testers_secret_rules_is_listed(pattern: str, sample: str) -> None:
    """#16, eleventh tester: on main 80c6074 these edits passed (their files were no sample)."""
    removed = unignored([IgnoreEdit(".gitignore", ("*.log",), (pattern, "*.log"))])
    negated = unignored([IgnoreEdit("app/.gitignore", ("!" + pattern,), ())])
    assert [path for path, _ in removed] == [".gitignore"] and sample in removed[0][1].split(": ", 1)[1]
    assert [path for path, _ in negated] == ["app/.gitignore"] and f"`!{pattern}`" in negated[0][1]


@pytest.mark.parametrize("line", [
    "!secrets/db.yml.gpg",  # blackbox and pass commit files encrypted to .gpg on purpose
    "!appsettings.json",  # committed by every ASP.NET Core template
    "!.env.example", "!kubeconfig.example", "!local.settings.example.json", "!docs/auth.md", "!token.py",
    "!.streamlit/config.toml", "!wp-config-sample.php", "!*.pub", "!KEYS.asc", "!docs/token.md",
])
def test_un_ignoring_the_committed_counterparts_of_secret_files_passes(line: str) -> None:
    assert unignored([IgnoreEdit(".gitignore", (line,), ())]) == []


def test_a_removed_secret_rule_is_refused_end_to_end(tmp_path: Path) -> None:
    review = review_patch(edit_patch(tmp_path, ".gitignore", "node_modules/\nlocal.settings.json\n", "node_modules/\n"))
    assert [(f.kind, f.detail) for f in review.findings] == [
        ("ignore_rules", "removes `local.settings.json`: un-ignores local.settings.json, sub/local.settings.json")]
    with pytest.raises(PatchRefused):
        enforce(review, allow=[])
