"""What an edit to an ignore file (or to `.gitattributes`) lets out: local secret files it un-ignores.

`.gitignore` keeps a developer's `.env`, keys and credentials out of every `git add -A`; `.dockerignore`
keeps them out of an image's build context (and so out of its layers); `.npmignore` out of a published
package. An edit that adds a negation (`!.env`, `!*.pem`) or removes a pattern (`.env`, `*.key`) makes
such files committable, buildable or publishable again on the next ordinary command, with nothing in
the diff that looks like a secret. `.gitattributes` matters the same way where git-crypt, transcrypt or
a similar filter encrypts files on commit: removing or unsetting the filter commits them in clear.

Patterns are read as git reads them: each one is put in a `.gitignore` of its own in a scratch
repository and `git check-ignore --no-index` is asked which of `SECRET_FILE_SAMPLES` (at the ignore
file's folder and one below) it matches, so anchors (`/x`), folders (`secrets/`), `**` and escapes mean
what they mean to git. A sample a removed pattern matched that an added pattern of the same file still
ignores is not un-ignored (`.env` replaced by `.env*`). `.dockerignore` and `.npmignore` are read with
git's rules too (npm's are git's; Docker's differ only in anchoring, which the samples at both depths cover).
"""

from __future__ import annotations

import os
import posixpath
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

# Ignore files whose patterns keep files out of something delivered: a commit, an image, a package.
IGNORE_FILE_NAMES = (".gitignore", ".dockerignore", ".npmignore")
ATTRIBUTES_FILE_NAME = ".gitattributes"
# Names local secrets go by (paths relative to the ignore file's folder), one sample per kind of file: what an
# ignore rule keeps out is read by asking git which samples the rule matches, so a sample stands for every rule
# that would ignore that kind of file (`*.ovpn`, `client*.ovpn`, `vpn/`). Not `.env.example` or `.env.sample`:
# committing those is their purpose. Sources:
# - gitrob's file-name signatures (github.com/michenriksen/gitrob, core/signatures.go: `\A\.?pgpass\z`, `.ovpn`,
#   `.s3cfg`, `.git-credentials`, `.my.cnf`, `.htpasswd`, `.ppk`, `_rsa`/`_dsa`/`_ed25519`/`_ecdsa` keys,
#   `secring`, `.kdbx`, `.jks`, `.p12`/`.pfx`, `.tfvars`, `.dockercfg`, `credentials.xml`, `.boto`, and `.asc`,
#   "Potential cryptographic key bundle": an ASCII-armored key export), the list shhgit and later scanners copy;
# - GitHub's gitignore templates (github.com/github/gitignore): `wp-config.php` (WordPress), `local.settings.json`
#   (AzureFunctions), `*.tfstate`/`*.tfvars` (Terraform), `*.jks`/`*.keystore` (Android), `.env` (Python, Node),
#   `config/master.key` (Rails), `auth.json` (Composer: "auth.json holds credentials", getcomposer.org/doc/
#   articles/authentication-for-private-packages.md);
# - the tools' own docs for where they keep a credential in the project: Streamlit's `.streamlit/secrets.toml`
#   (docs.streamlit.io, secrets management), Firebase Admin's `serviceAccountKey.json` and Google Cloud's
#   `<project>-<id>.json`/`*-service-account*.json` keys, Google OAuth's `client_secret_<id>.json`, `token.json`
#   and `credentials.json` (developers.google.com, Python quickstarts), kubectl's `kubeconfig`/`.kube/config`,
#   direnv's `.envrc` (exports a project's environment: its tokens, direnv.net), Vault's `.vault-token`,
#   Terraform CLI's `.terraformrc` (`credentials` blocks), Docker's `.docker/config.json`, Apple's `AuthKey_*.p8`,
#   the Firebase console's service-account key download, `<project>-firebase-adminsdk-<id>-<hash>.json`
#   (firebase.google.com/docs/admin/setup, "Generate new private key"; `firebase-adminsdk.json` once renamed, which
#   `firebase-adminsdk*.json` ignores), and `token.txt`, the plain-text file a
#   script or bot reads its API token from (issue #16's tester: projects ignore it by that name).
# - Rails: `config/credentials.yml.enc` (guides.rubyonrails.org/security.html, "Custom Credentials") is encrypted
#   with `config/master.key`, so Rails commits it by design; a project that ignores it has chosen not to publish
#   it (its master key may be shared or leaked), and un-ignoring it is a choice the user makes, not the model.
# - ASP.NET Core's `appsettings.Development.json` and `appsettings.Production.json`: where a project ignores them,
#   they hold its connection strings and keys (learn.microsoft.com, "Safe storage of app secrets in development");
#   `appsettings.json`, committed by every template, is not a sample.
# - GnuPG: `secring.gpg` (a private key ring) stands for `*.gpg` too, so removing `*.gpg` is listed, while
#   `!secrets/db.yml.gpg` is not: blackbox and pass commit files encrypted to `.gpg` on purpose.
SECRET_FILE_SAMPLES = (
    ".env", ".env.local", ".env.production", "prod.env", ".envrc",
    "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", "server.key", "server.pem", "key.ppk", "AuthKey_ABC123.p8",
    "cert.p12", "cert.pfx", "release.keystore", "keystore.jks", "secring.gpg", "secring.skr", "vault.kdbx",
    "private.asc",
    "credentials.json", "service-account.json", "serviceAccountKey.json", "my-project-service-account-1a2b.json",
    "client_secret_123.apps.googleusercontent.com.json", "token.json", "local.settings.json", "auth.json",
    "my-app-firebase-adminsdk-ab1cd-0123456789.json", "firebase-adminsdk.json", "token.txt", "config/credentials.yml.enc",
    "appsettings.Development.json", "appsettings.Production.json",
    "secrets.yaml", "secrets.json", "secrets/token", ".streamlit/secrets.toml", "config/master.key", "wp-config.php",
    ".npmrc", ".pypirc", ".netrc", "_netrc", ".git-credentials", ".pgpass", ".my.cnf", ".s3cfg", ".boto",
    ".aws/credentials", ".docker/config.json", ".dockercfg", "kubeconfig", ".kube/config", ".vault-token",
    ".terraformrc", "client.ovpn", ".htpasswd", "credentials.xml",
    "terraform.tfvars", "terraform.tfstate", "terraform.tfstate.backup",
)
# Attribute filters that are no encryption (large-file storage): removing them commits nothing in clear.
PLAIN_FILTERS = ("lfs",)


@dataclass(frozen=True)
class IgnoreEdit:
    """One changed ignore or attributes file of a patch: its path (relative to the root) and its added
    and removed lines (text without the line end)."""

    path: str
    added: tuple[str, ...]
    removed: tuple[str, ...]


def is_rules_file(folded_path: str) -> bool:
    """Whether `folded_path` (as a case-insensitive file system opens it) is a file `unignored` reads."""
    return posixpath.basename(folded_path) in (*IGNORE_FILE_NAMES, ATTRIBUTES_FILE_NAME)


def unignored(edits: Iterable[IgnoreEdit]) -> list[tuple[str, str]]:
    """(path, detail) for each edit that un-ignores a secret-looking file or stops encrypting one:
    `("pkg/.gitignore", "adds `!.env`: un-ignores .env, sub/.env")`. Runs git once, only when an edit
    adds a negation or removes a pattern."""
    found: list[tuple[str, str]] = []
    asked: list[tuple[IgnoreEdit, str, str]] = []  # (edit, pattern as git reads it, what the edit did)
    for edit in edits:
        if posixpath.basename(edit.path.lower()) == ATTRIBUTES_FILE_NAME:
            found += [(edit.path, detail) for detail in _unencrypted(edit)]
            continue
        kept = set(edit.added)
        asked += [(edit, line[1:], f"adds `{line}`") for line in edit.added if line.startswith("!") and line[1:]]
        asked += [(edit, line, f"removes `{line}`") for line in edit.removed
                  if line.strip() and not line.startswith(("#", "!")) and line not in kept]
    if not asked:
        return found
    still = [(edit, line) for edit in {e for e, _, _ in asked} for line in edit.added
             if line.strip() and not line.startswith(("#", "!"))]
    matched = _matches([pattern for _, pattern, _ in asked] + [line for _, line in still])
    for at, (edit, _, did) in enumerate(asked):
        kept_ignored = set().union(*(matched[len(asked) + n] for n, (e, _) in enumerate(still) if e is edit))
        samples = [sample for sample in matched[at] if sample not in kept_ignored]
        if samples:
            shown = ", ".join(samples[:4]) + (f" and {len(samples) - 4} more" if len(samples) > 4 else "")
            found.append((edit.path, f"{did}: un-ignores {shown}"))
    return found


def _unencrypted(edit: IgnoreEdit) -> list[str]:
    """What an attributes edit stops encrypting: a removed line setting a filter other than `PLAIN_FILTERS`
    (`secrets/** filter=git-crypt`), or an added line unsetting one (`-filter`, `!filter`)."""
    details = []
    for line in edit.removed:
        fields = line.split()
        filters = [f.split("=", 1)[1] for f in fields[1:] if f.startswith("filter=")]
        if fields and not line.startswith("#") and any(name not in PLAIN_FILTERS for name in filters):
            details.append(f"removes `{line}`: {fields[0]} is no longer encrypted on commit")
    for line in edit.added:
        fields = line.split()
        if fields and not line.startswith("#") and any(f in ("-filter", "!filter") for f in fields[1:]):
            details.append(f"adds `{line}`: {fields[0]} is no longer encrypted on commit")
    return details


def _matches(patterns: list[str]) -> list[list[str]]:
    """For each pattern, the `SECRET_FILE_SAMPLES` (at its file's folder, then one below as `sub/...`) that
    git ignores by it alone."""
    with tempfile.TemporaryDirectory(prefix="agent-ignore-") as scratch:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": scratch, "GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C"}
        subprocess.run(["git", "init", "-q", scratch], env=env, check=True, capture_output=True)
        asked = []
        for at, pattern in enumerate(patterns):
            os.mkdir(os.path.join(scratch, f"p{at}"))
            with open(os.path.join(scratch, f"p{at}", ".gitignore"), "w", encoding="utf-8",
                      errors="surrogateescape") as rules:
                rules.write(pattern + "\n")
            asked += [f"p{at}/{where}{sample}" for where in ("", "sub/") for sample in SECRET_FILE_SAMPLES]
        result = subprocess.run(["git", "check-ignore", "--no-index", "--stdin", "-z"], cwd=scratch, env=env,
                                input="\0".join(asked).encode(), capture_output=True, check=False)
    if result.returncode not in (0, 1):  # 1: nothing ignored; anything else, git could not tell: assume the worst
        return [["(what git could not check)"] for _ in patterns]
    matched: list[list[str]] = [[] for _ in patterns]
    for path in filter(None, result.stdout.decode(errors="replace").split("\0")):
        at, _, sample = path.partition("/")
        matched[int(at[1:])].append(sample)
    return matched
