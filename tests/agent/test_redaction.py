"""Every secret the process holds is masked wherever text leaves it, escaped forms included (issue 16, item 5)."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest
from rich.console import Console

from agent.ci.pull_request import code_span, failure_comment, markdown_text, pull_request_body, pull_title
from agent.fix import FixOutcome
from agent.github import GitHubClient, Issue, IssueRef
from agent.loop import RunResult
from agent.patch_policy import PatchRefused, enforce, review_patch
from agent.progress import LiveProgress, print_summary
from agent import redaction
from agent.redaction import MASK, environment_secrets, hold, reveals_secret, scrub
from agent.trajectory import TrajectoryWriter

GITHUB_TOKEN = "ghp_T0kenFromTheEnvironment0123456789"
GH_TOKEN = "github_pat_11AB.CD_ef-gh*ij[kl]mn`op"  # every Markdown-special character escaping would split
GH_CLI_TOKEN = "gho_FromTheGhCliOnly_998877"


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The user's environment as `agent fix`/`agent ci` inherit it, plus a token `gh auth token` gave."""
    monkeypatch.setenv("GITHUB_TOKEN", GITHUB_TOKEN)
    monkeypatch.setenv("GH_TOKEN", GH_TOKEN)
    hold([GH_CLI_TOKEN])
    return [GITHUB_TOKEN, GH_TOKEN, GH_CLI_TOKEN]


def leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets `text` shows, as written or once its escapes are read (as GitHub renders Markdown, as JSON)."""
    read = text.replace("\\", "").replace("\u2060", "").replace("\u200b", "")
    return [secret for secret in secrets if secret in text or secret.replace("\\", "") in read]


def test_the_environments_secrets_are_found_by_name() -> None:
    env = {"GITHUB_TOKEN": "ghp_0123456789", "GH_TOKEN": "gho_0123456789", "HF_TOKEN": "hf_0123456789",
           "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG", "DOCKER_PASSWORD": "hunter2hunter2",
           "PWD": "/home/me/project", "SSH_AUTH_SOCK": "/run/user/1000/ssh-agent", "DESKTOP_SESSION": "ubuntu-wayland",
           "TOKENIZERS_PARALLELISM": "false", "CI_TOKEN": "short"}
    assert sorted(environment_secrets(env)) == sorted(
        ["ghp_0123456789", "gho_0123456789", "hf_0123456789", "wJalrXUtnFEMI/K7MDENG", "hunter2hunter2"])


@pytest.mark.parametrize("form", [
    lambda s: s,
    lambda s: json.dumps(s)[1:-1],  # inside a JSON string
    lambda s: markdown_text(s),  # backslashes before punctuation
    lambda s: s.replace("_", "\\_").replace(".", "\\.").replace("[", "\\["),
])
def test_scrub_masks_every_held_secret_in_every_escaped_form(tokens: list[str], form) -> None:
    for secret in tokens:
        scrubbed = scrub(f"see {form(secret)} here")
        assert leaks(scrubbed, tokens) == [] and MASK in scrubbed.replace("\\", ""), scrubbed


def test_tokens_in_issue_titles_and_bodies_never_reach_the_pull_request_or_the_commit_subject(
        tokens: list[str], tmp_path: Path) -> None:
    """The issue's title is escaped for Markdown (`ghp\\_...`): the scrub comes before that, and after."""
    title = f"Leak {GITHUB_TOKEN} and **{GH_TOKEN}** and `{GH_CLI_TOKEN}`"
    issue = Issue(IssueRef("o", "r", 7), title, f"body {GH_TOKEN}", "open", "u")
    result = RunResult(status="submitted", message=f"done {GITHUB_TOKEN}", patch="p", steps=1, prompt_tokens=1,
                       completion_tokens=1, cost=None, elapsed=1.0, prefix_reuse=None, compactions=0,
                       last_tests={"command": f"pytest -k {GH_TOKEN}", "passed": 0, "exit_code": 1,
                                   "failed": [f"t::{GH_CLI_TOKEN}"], "errors": []})
    body = pull_request_body(issue, FixOutcome(result=result, run_id="r", trajectory=tmp_path / "t"), "")
    subject = pull_title(issue)
    for text in (body, subject, failure_comment(f"model said {GH_TOKEN}", None), code_span(GH_TOKEN)):
        assert leaks(text, tokens) == [], text
    assert MASK in subject and subject.startswith("Fix #7: Leak ")
    client = GitHubClient("ghs_TheBotsOwnToken42", "http://127.0.0.1:9")
    # The client scrubs again what is posted, escaped forms included (markdown escaping done without us).
    posted = client.redact(f"{title.replace('_', chr(92) + '_')} ghs\\_TheBotsOwnToken42")
    assert leaks(posted, [*tokens, "ghs_TheBotsOwnToken42"]) == []


def test_trajectory_lines_json_and_terminal_lines_are_scrubbed(tokens: list[str], tmp_path: Path) -> None:
    """The model echoing a token: in its reply, a tool call, the observation, the summary."""
    writer = TrajectoryWriter(tmp_path / "t.jsonl")
    writer.event("response", content=f"the token is {GITHUB_TOKEN}", tool_calls=[{"arguments": json.dumps(
        {"command": f"echo {GH_TOKEN}"})}])
    writer.close()
    assert leaks((tmp_path / "t.jsonl").read_text(), tokens) == []
    out = io.StringIO()
    console = Console(file=out, width=200)
    LiveProgress(console)("tool", {"name": "bash", "arguments": {"command": f"echo {GH_TOKEN}"},
                                   "observation": GITHUB_TOKEN, "is_error": False})
    result = RunResult(status="submitted", message=GH_CLI_TOKEN, patch="", steps=1, prompt_tokens=1,
                       completion_tokens=1, cost=None, elapsed=1.0, prefix_reuse=None, compactions=0)
    print_summary(console, result, {"note": GITHUB_TOKEN})
    assert leaks(out.getvalue(), tokens) == [] and MASK in out.getvalue()


def test_a_patch_that_adds_a_held_secret_is_never_delivered_by_ci(tokens: list[str], tmp_path: Path) -> None:
    patch = (f"diff --git a/notes.txt b/notes.txt\nnew file mode 100644\nindex 0000000..1111111\n--- /dev/null\n"
             f"+++ b/notes.txt\n@@ -0,0 +1 @@\n+token={GH_TOKEN}\n")
    review = review_patch(patch)
    assert [(f.kind, f.path) for f in review.findings] == [("secret", "notes.txt")]
    with pytest.raises(PatchRefused, match="notes.txt: adds one of your secrets") as refused:
        enforce(review, allow=["ci_config", "agent_config", "submodules", "symlink_outside", "executable"])
    assert leaks(str(refused.value), tokens) == []
    removed = (f"diff --git a/notes.txt b/notes.txt\ndeleted file mode 100644\nindex 1111111..0000000\n"
               f"--- a/notes.txt\n+++ /dev/null\n@@ -1 +0,0 @@\n-token={GH_TOKEN}\n")
    assert review_patch(removed).findings == []  # taking one out of the repository is no leak


def binary_diff(tmp_path: Path, old: bytes | None, new: bytes) -> str:
    """`git diff --binary` (as `submit` writes it) of `blob.bin` going from `old` (None: absent) to `new`."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout

    tmp_path.mkdir(parents=True, exist_ok=True)
    git("init", "-q")
    (tmp_path / "README").write_text("x\n")
    if old is not None:
        (tmp_path / "blob.bin").write_bytes(old)
    git("add", "-A")
    git("commit", "-qm", "base")
    (tmp_path / "blob.bin").write_bytes(new)
    git("add", "-A")
    return git("diff", "--cached", "--binary", "--no-renames", "HEAD")


@pytest.mark.parametrize(("old", "new"), [
    (None, b"\x00\x01" + GITHUB_TOKEN.encode() + b"\x00\x02"),  # the tester's blob: a literal
    (None, b"\xff\xfe" + f"key={GH_TOKEN}".encode("utf-16-le")),  # UTF-16, which git counts as binary
    (None, b"\x00" + f"k={GH_TOKEN}".encode("utf-16-be")),  # the other byte order, at an odd offset
    (None, b"\x00" + GH_TOKEN.replace("*", "\\*").encode()),  # escaped as Markdown escapes it
    (bytes(range(256)) * 64, bytes(range(256)) * 32 + b"\x00" + GH_CLI_TOKEN.encode() + bytes(range(256)) * 32),
], ids=["literal", "utf-16-le", "utf-16-be-odd", "markdown-escaped", "delta"])
def test_a_binary_file_that_adds_a_held_secret_is_never_delivered(tokens: list[str], tmp_path: Path,
                                                                   old: bytes | None, new: bytes) -> None:
    patch = binary_diff(tmp_path, old, new)
    assert "GIT binary patch" in patch and all(token not in patch for token in tokens)
    review = review_patch(patch)
    assert [(f.kind, f.path) for f in review.findings] == [("secret", "blob.bin")]
    with pytest.raises(PatchRefused, match="blob.bin: adds one of your secrets"):
        enforce(review, allow=["ci_config", "agent_config", "submodules", "symlink_outside", "executable"])


def test_a_binary_file_without_a_secret_or_that_removes_one_passes(tokens: list[str], tmp_path: Path) -> None:
    with_token = b"\x00\x01" + GITHUB_TOKEN.encode() + b"\x00\x02"
    assert review_patch(binary_diff(tmp_path / "a", None, b"\x00\x01plain bytes\x00")).findings == []
    assert review_patch(binary_diff(tmp_path / "b", with_token, b"\x00\x01gone\x00")).findings == []


def test_agent_fix_json_and_errors_are_scrubbed_in_a_real_process(tmp_path: Path) -> None:
    """`agent fix --json` failing before its run: the one JSON object and the error line hold no token."""
    import os
    import sys

    env = {**os.environ, "GITHUB_TOKEN": GITHUB_TOKEN, "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "agent", "fix", "--json", "-C", str(tmp_path / "missing"),
                           f"fix {GITHUB_TOKEN}"], env=env, capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 2
    assert GITHUB_TOKEN not in done.stdout + done.stderr


UNICODE_PASSWORD = "pässwörd-ünïcode-42"
PUNCTUATED_SECRET = 'p"a\\ss/w<o>rd&1234'
ASTRAL_SECRET = "key-😀-0123456789"


def strings_in(value) -> list[str]:
    """Every string in a JSON value, and those in strings that are JSON themselves (tool-call arguments)."""
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in (key, *strings_in(item))]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    if isinstance(value, str):
        try:
            inner = json.loads(value)
        except ValueError:
            return [value]
        return [value, *strings_in(inner)] if isinstance(inner, (dict, list, str)) else [value]
    return []


@pytest.mark.parametrize("secret", [UNICODE_PASSWORD, PUNCTUATED_SECRET, ASTRAL_SECRET])
def test_a_secret_in_tool_call_arguments_is_masked_however_it_was_escaped(
        secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`DB_PASSWORD='pässwörd-ünïcode-42'` and a call `echo '...'`: the response event held `p\\\\u00e4ssw...`."""
    monkeypatch.setenv("DB_PASSWORD", secret)
    command = {"command": f"echo '{secret}'"}
    arguments = [json.dumps(command), json.dumps(command, ensure_ascii=False),  # as the model or the client wrote it
                 json.dumps({"nested": json.dumps(command)}),  # JSON inside JSON inside the event
                 json.dumps([json.dumps(json.dumps(command))])]
    writer = TrajectoryWriter(tmp_path / "t.jsonl")
    writer.event("request", new_messages=[{"role": "user", "content": f"use {secret}"}])
    writer.event("response", content=json.dumps(secret), tool_calls=[
        {"id": "c1", "function": {"name": "bash", "arguments": text}} for text in arguments])
    writer.event("tool", arguments=command, observation=f"{secret}\n{json.dumps(secret)}", **{secret: "as a key"})
    writer.close()
    text = (tmp_path / "t.jsonl").read_text(encoding="utf-8")
    for line in text.split("\n")[:-1]:
        assert not [found for found in strings_in(json.loads(line)) if secret in found], line
    escaped = [json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]
    escaped += [json.dumps(form)[1:-1] for form in escaped]  # escaped twice: JSON in JSON, as written before
    assert not [form for form in escaped if form in text], text
    response = json.loads(text.split("\n")[1])
    assert [json.loads(call["function"]["arguments"]) for call in response["tool_calls"]][:2] == [
        {"command": f"echo '{MASK}'"}] * 2  # the arguments stay JSON, masked inside
    assert MASK in response["content"]


@pytest.mark.parametrize("secret", [UNICODE_PASSWORD, PUNCTUATED_SECRET, ASTRAL_SECRET])
def test_scrub_finds_a_secret_in_json_escapes_nested_any_depth(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--json` output is `json.dumps` with ASCII escapes: the scrub of the serialised line catches those too."""
    monkeypatch.setenv("APP_SECRET", secret)
    once = json.dumps({"message": f"said {secret}"})
    for text in (once, json.dumps(once), json.dumps(json.dumps(once)), json.dumps(secret, ensure_ascii=False)):
        scrubbed = scrub(text)
        assert MASK in scrubbed and secret[-4:] not in scrubbed and secret[:2] not in scrubbed, scrubbed


def git_diff_of(tmp_path: Path, change) -> str:
    """`git diff --cached --binary --no-renames HEAD` (as `submit` writes it) after `change(repo)`."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (tmp_path / "README").write_text("x\n")
    git("add", "-A")
    git("commit", "-qm", "base")
    change(tmp_path)
    git("add", "-A")
    return git("diff", "--cached", "--binary", "--no-renames", "HEAD")


def write(path: Path, text: str = "hi\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(("change", "path"), [
    (lambda repo: write(repo / f"leak-{GITHUB_TOKEN}.txt"), f"leak-{GITHUB_TOKEN}.txt"),  # the tester's file
    (lambda repo: write(repo / f"{GH_CLI_TOKEN}.md", ""), f"{GH_CLI_TOKEN}.md"),  # empty: no hunk at all
    (lambda repo: write(repo / GITHUB_TOKEN[:10] / f"{GITHUB_TOKEN[10:]}.txt"),  # split over a directory
     f"{GITHUB_TOKEN[:10]}/{GITHUB_TOKEN[10:]}.txt"),
    (lambda repo: (repo / "docs").mkdir() or (repo / "docs" / "link").symlink_to(f"../{GITHUB_TOKEN}"),
     "docs/link"),  # a link's target
], ids=["file-name", "empty-file", "split-name", "link-target"])
def test_a_file_whose_name_holds_a_secret_is_never_delivered(tokens: list[str], tmp_path: Path, change,
                                                              path: str) -> None:
    """Issue 16, fourth tester: `echo hi > leak-$TOKEN.txt` was pushed, the name masked only where shown."""
    review = review_patch(git_diff_of(tmp_path, change))
    assert [(f.kind, f.path) for f in review.findings if f.kind == "secret"] == [("secret", path)]
    with pytest.raises(PatchRefused, match="adds one of your secrets") as refused:
        enforce(review, allow=["ci_config", "agent_config", "submodules", "symlink_outside", "executable"])
    assert leaks(str(refused.value), tokens) == []


def test_a_rename_to_a_secret_name_is_found_and_one_away_from_it_is_not(tokens: list[str]) -> None:
    def rename(old: str, new: str) -> str:
        return f"diff --git a/{old} b/{new}\nsimilarity index 100%\nrename from {old}\nrename to {new}\n"

    assert [(f.kind, f.path) for f in review_patch(rename("notes.txt", f"n-{GH_CLI_TOKEN}")).findings] == [
        ("secret", f"n-{GH_CLI_TOKEN}")]
    assert review_patch(rename(f"n-{GH_CLI_TOKEN}", "notes.txt")).findings == []
    removed = (f"diff --git a/n-{GH_CLI_TOKEN} b/n-{GH_CLI_TOKEN}\ndeleted file mode 100644\n"
               f"index 1111111..0000000\n--- a/n-{GH_CLI_TOKEN}\n+++ /dev/null\n@@ -1 +0,0 @@\n-x\n")
    assert review_patch(removed).findings == []


def test_a_secret_in_a_name_git_quotes_is_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """git C-quotes a name with non-ASCII bytes, quotes or backslashes (`"b/p\\303\\244..."`): read unquoted."""
    password = 'pässwörd"\\quoted'
    monkeypatch.setenv("DEPLOY_PASSWORD", password)
    patch = git_diff_of(tmp_path, lambda repo: write(repo / f"p-{password}.txt"))
    assert '"b/p-p\\303\\244ssw' in patch
    assert [(f.kind, f.path) for f in review_patch(patch).findings] == [("secret", f"p-{password}.txt")]


@pytest.mark.parametrize("command", [
    "curl https://storage.example/x?api-key=K3yValue\\&sig=S1gValue\\&auth=AuthValue -o x",  # the shell's escapes
    'curl "https://storage.example/x?api-key=K3yValue&sig=S1gValue&auth=AuthValue"',  # the plain form
    "curl https://storage.example/x?api-key=K3yValue\\;sig=S1gValue\\\\&auth=AuthValue",  # `;` and a doubled escape
])
def test_secret_query_values_behind_shell_escaped_separators_are_masked(tmp_path: Path, command: str) -> None:
    """#16: `...?api-key=K\\&sig=S\\&auth=A` kept `sig` and `auth` in the trajectory (the URL ended at `\\`)."""
    writer = TrajectoryWriter(tmp_path / "t.jsonl")
    writer.event("response", content=command, tool_calls=[{"arguments": json.dumps({"command": command})}])
    writer.close()
    written = (tmp_path / "t.jsonl").read_text()
    assert [value for value in ("K3yValue", "S1gValue", "AuthValue") if value in written] == []
    assert written.count("sig=***") == 2 and written.count("auth=***") == 2


def test_the_scrub_sees_every_change_to_the_environment_and_the_held_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scrubber is cached between calls: a secret set, changed or removed after a scrub counts at once."""
    line = "a=s3cret-Value-1 b=s3cret-Value-2 c=gho_HeldLater_42 d=held-by-a-new-set"
    assert scrub(line) == line
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cret-Value-1")
    assert scrub(line) == f"a={MASK} b=s3cret-Value-2 c=gho_HeldLater_42 d=held-by-a-new-set"
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cret-Value-2")  # same names, another value
    assert scrub(line) == f"a=s3cret-Value-1 b={MASK} c=gho_HeldLater_42 d=held-by-a-new-set"
    hold(["gho_HeldLater_42"])
    assert scrub(line) == f"a=s3cret-Value-1 b={MASK} c={MASK} d=held-by-a-new-set"
    monkeypatch.delenv("DEPLOY_TOKEN")
    assert scrub(line) == f"a=s3cret-Value-1 b=s3cret-Value-2 c={MASK} d=held-by-a-new-set"
    monkeypatch.setattr(redaction, "_HELD", {"held-by-a-new-set"})  # what the autouse fixture does per test
    assert scrub(line) == f"a=s3cret-Value-1 b=s3cret-Value-2 c=gho_HeldLater_42 d={MASK}"
    assert not reveals_secret(scrub(line)) and reveals_secret(line)


def test_the_environment_is_read_for_secrets_only_when_it_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading it is two regexes per variable, and the trajectory scrubs every string of every event."""
    reads: list[int] = []
    read = redaction.environment_secrets
    monkeypatch.setattr(redaction, "environment_secrets", lambda env=None: reads.append(1) or read(env))
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cret-Value-1")
    texts = [scrub(f"line {n}: s3cret-Value-1") for n in range(50)]
    assert texts == [f"line {n}: {MASK}" for n in range(50)] and len(reads) == 1
    monkeypatch.setenv("UNRELATED_SETTING", "1")
    assert scrub("s3cret-Value-1") == MASK and len(reads) == 2


URL_SECRETS = {  # URL as the model prints it: its secret values
    "https://h.example/cb#access_token=FRAGSECRET1234": ["FRAGSECRET1234"],
    "https://h.example/api?code=AZFUNCSECRET31": ["AZFUNCSECRET31"],
    "https://h.example/cb#id_token=eyJIDTOKEN99&refresh_token=REFRESH77x&token_type=bearer": ["eyJIDTOKEN99",
                                                                                              "REFRESH77x"],
    "https://acct.blob.core.windows.net/c/b.txt?sv=2022-11-02&se=2030-01-01&sp=r&sig=SASSIGvalue%3D": ["SASSIGvalue"],
    "https://h.example/oauth?client_id=app&Client-Secret=CLIENTSEC55#x": ["CLIENTSEC55"],
    "https://login.example/saml?SAMLResponse=PHNhbWxSAML": ["PHNhbWxSAML"],
}


@pytest.mark.parametrize(("url", "secrets"), URL_SECRETS.items())
def test_url_secrets_in_the_fragment_and_oauth_azure_sas_names_are_masked_in_every_written_form(
        url: str, secrets: list[str], tmp_path: Path) -> None:
    """#16, eighth tester: `#access_token=...` (a fragment) and `?code=...` (Azure Functions, OAuth) stayed raw
    in the trajectory. Fragment pairs count as parameters, and names are secret by a pattern: the trajectory,
    the terminal, a URL recorded as an endpoint and the credentials taken from one all agree."""
    writer = TrajectoryWriter(tmp_path / "t.jsonl")
    writer.event("response", content=f"open {url} now", tool_calls=[{"arguments": json.dumps({"command": f"curl '{url}'"})}])
    writer.close()
    written = (tmp_path / "t.jsonl").read_text()
    out = io.StringIO()
    print_summary(Console(file=out, width=400), RunResult(
        status="submitted", message=url, patch="", steps=1, prompt_tokens=1, completion_tokens=1, cost=None,
        elapsed=1.0, prefix_reuse=None, compactions=0), {"note": url})

    for text in (written, scrub(url), redaction.public_url(url), out.getvalue()):
        assert [secret for secret in secrets if secret in text] == [], text
        assert MASK in text
    assert all(any(secret in found for found in redaction.url_secrets(url)) for secret in secrets)


@pytest.mark.parametrize("url", ["https://h.example/docs?page=2&q=cache#section-3", "https://h.example/a#x=1&size=4",
                                 "https://h.example/search?sort=asc&step=2&start=10"])
def test_ordinary_url_parameters_are_kept(url: str) -> None:
    """The pattern masks credentials, not navigation: pages, anchors, sizes and sort orders stay readable."""
    assert scrub(url) == url and redaction.public_url(url) == url


@pytest.mark.parametrize("written", [
    '{"k": "sk-test-\\u0053ECRET12345"}',  # JSON escaping a letter
    '{"k": "\\u0073\\u006B-test-SECRET12345"}',  # lowercase and uppercase hex
    'key = "sk-test-\\x53ECRET\\x312345"',  # Python/JavaScript/C string literals
    "const k = 'sk-test-\\u{53}ECRET12345';",  # JavaScript's code point escape
])
def test_a_patch_adding_an_escaped_held_secret_is_flagged_and_scrubbed(
        written: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """#16, eighth tester: `{"k": "sk-test-\\u0053ECRET12345"}` with that key held was not `secret`, though the
    plain, UTF-16 and file-name forms were: any character may be escaped, letters and digits too."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET12345")
    patch = ("diff --git a/conf.json b/conf.json\nnew file mode 100644\nindex 0000000..1111111\n"
             f"--- /dev/null\n+++ b/conf.json\n@@ -0,0 +1 @@\n+{written}\n")

    assert ("secret", "conf.json") in [(f.kind, f.path) for f in review_patch(patch).findings]
    assert "ECRET" not in scrub(written) and MASK in scrub(written)


def test_escapes_of_other_text_are_not_taken_for_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the held secret's own characters match: a different escaped letter is another string."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-SECRET12345")
    assert not reveals_secret('{"k": "sk-test-\\u0054ECRET12345"}')
    assert not reveals_secret("sk-test-\\x54ECRET12345")


# Issue 16, ninth tester: `?pass=` was not masked, and `country_code=`, `barcode=`, `keyboard=`... were.
# Parameter names are read word by word (`_`, `-`, `.`, camelCase); the names below are made up or real.
SECRET_NAMES = ["pass", "Pass", "db_pass", "userPass", "passwd", "pwd", "x-user-pwd", "client_secret", "clientSecret",
                "access_token", "accessToken", "refresh-token", "api_key", "apiKey", "APIKEY", "x-api-key",
                "X-Amz-Signature", "X-Amz-Credential", "X-Goog-Signature", "sig", "code", "auth", "Authorization",
                "oauth_token", "session_id", "JSESSIONID", "PHPSESSID", "code_verifier", "device_code",
                "SAMLResponse", "jwt", "otp", "dbPassword", "storage-account-key", "Ocp-Apim-Subscription-Key"]
ORDINARY_NAMES = ["country_code", "countryCode", "barcode", "zip_code", "zip-code", "status_code", "promoCode",
                  "keyboard", "keyword", "monkey", "author", "authorName", "passenger", "compass", "bypass",
                  "designer", "sign_in", "signup", "tokenizer", "max_tokens", "sessions_count", "secretary",
                  "passage", "codec", "page", "sort"]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_parameter_names_are_masked_on_word_boundaries(name: str) -> None:
    url = f"https://h.example/p?{name}=VALUE-8a7f6e&page=2#{name}=FRAG-1b2c3d"
    for text in (scrub(f"see {url}"), redaction.public_url(url)):
        assert "VALUE-8a7f6e" not in text and "FRAG-1b2c3d" not in text and "page=2" in text, text
    assert {"VALUE-8a7f6e", "FRAG-1b2c3d"} <= set(redaction.url_secrets(url))


@pytest.mark.parametrize("name", ORDINARY_NAMES)
def test_ordinary_parameter_names_containing_a_secret_word_are_kept(name: str) -> None:
    url = f"https://h.example/p?{name}=US-plain-42&x=1"
    assert scrub(f"see {url}") == f"see {url}" and redaction.public_url(url) == url
    assert redaction.url_secrets(url) == []


# Every Unicode default-ignorable code point the tenth tester tried (#16), and one of each other range.
INVISIBLE = ["\u00ad", "\u200d", "\ufeff", "\u200e", "\u2063", "\u180e", "\U000e0041", "\u061c", "\u202e", "\u2066",
             "\u034f", "\ufe0f", "\u200b", "\u2060", "\u115f", "\u17b4", "\u3164", "\uffa0", "\ufff3", "\U0001bca1",
             "\U0001d175", "\U000e0001", "\U000e01ef", "\U000e0fff", "\u200b\u2060\u00ad"]


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_a_secret_split_by_invisible_characters_is_masked(monkeypatch: pytest.MonkeyPatch, invisible: str) -> None:
    """#16: `OPENAI_API_KEY=Kb16SecretVal99xyz`, a reply `Kb16\\u00adSecretVal99xyz`: unmasked (only U+200B and
    U+2060 were covered). Raw, as JSON writes it (`\\u00ad`, a surrogate pair), and found by the patch policy."""
    monkeypatch.setenv("OPENAI_API_KEY", "Kb16SecretVal99xyz")
    text = f"key: Kb16{invisible}Secret{invisible}Val99xyz{invisible}!"
    assert scrub(text) == f"key: ***{invisible}!"
    assert scrub(json.dumps(text)) == json.dumps(f"key: ***{invisible}!")
    assert reveals_secret(text) and reveals_secret(json.dumps(text))


def test_the_ignorable_table_is_unicodes() -> None:
    """`DEFAULT_IGNORABLE` against what Python's own Unicode database can tell: every code point in it is a
    format character, a nonspacing mark, a Hangul filler or unassigned, and every format character of the
    ranges the table lists as whole blocks (tags, U+2060..U+206F) is in it; outside, `a` and spaces are not."""
    import unicodedata

    inside = {code for low, high in redaction.DEFAULT_IGNORABLE for code in range(low, high + 1)}
    assert all(unicodedata.category(chr(code)) in ("Cf", "Mn", "Lo", "Cn") for code in inside)
    assert {code for code in range(0xE0000, 0xE1000) if unicodedata.category(chr(code)) == "Cf"} <= inside
    assert {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)} <= inside  # Bidi_Control
    assert not {ord("a"), ord(" "), 0x00A0, 0x2000, 0x3000, 0x0600} & inside
    assert scrub("x\u00ady") == "x\u00ady"  # nothing held: invisible characters alone are left as they are


def test_an_ordinary_escape_between_a_secrets_characters_is_not_taken_for_an_invisible_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "Kb16SecretVal99xyz")
    assert scrub("Kb16\\u0041SecretVal99xyz") == "Kb16\\u0041SecretVal99xyz"
    assert scrub("Kb16 SecretVal99xyz") == "Kb16 SecretVal99xyz"


@pytest.mark.parametrize("encoded", ["Kb16%2FSec%2Bret%3DVal99", "Kb16%2fSec%2bret%3dVal99", "Kb16%2FSec%2bret%3DVal99",
                                     "%4Bb16%2FSec%2Bret%3DVal99", "Kb16%252FSec%252Bret%253DVal99"])
def test_a_percent_encoded_secret_is_masked(monkeypatch: pytest.MonkeyPatch, encoded: str) -> None:
    """#16: key `Kb16/Sec+ret=Val99` written `Kb16%2FSec%2Bret%3DVal99` (either hex case, twice encoded)."""
    monkeypatch.setenv("OPENAI_API_KEY", "Kb16/Sec+ret=Val99")
    assert scrub(f"curl -d 'key={encoded}&x=1'") == "curl -d 'key=***&x=1'"


def test_a_form_encoded_space_and_non_ascii_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "päss wörd 42!")
    assert scrub("password=p%C3%A4ss+w%c3%b6rd%2042%21&next") == "password=***&next"


@pytest.mark.parametrize("prefix", ["", "u:", "user:", "someone:"])
def test_a_base64_encoded_secret_is_masked_at_every_alignment(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    """Basic auth (`base64(user:pass)`), a Kubernetes Secret's `data`: what a tool prints of a credential."""
    import base64

    monkeypatch.setenv("OPENAI_API_KEY", "Kb16/Sec+ret=Val99")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(f"{prefix}Kb16/Sec+ret=Val99".encode()).decode()
        masked = scrub(f"Authorization: Basic {encoded}")
        assert MASK in masked and len(masked) < len(f"Authorization: Basic {encoded}") - 12
        assert reveals_secret(encoded)
    assert scrub("Authorization: Basic dXNlcjpwYXNzd29yZA==") == "Authorization: Basic dXNlcjpwYXNzd29yZA=="


@pytest.mark.parametrize("value", ["postgres", "Postgres", "POSTGRES", "changeme", "dev_password", "my-dev-password",
                                   "20240101", "localhost", "  postgres  "])
def test_an_ordinary_value_of_a_secret_named_variable_is_not_held(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """#16: `POSTGRES_PASSWORD=postgres` masked the word `postgres` everywhere (task, commit message, branch)."""
    monkeypatch.setenv("POSTGRES_PASSWORD", value)
    assert value.strip() not in environment_secrets()
    assert scrub(f"make add work with {value.strip()}") == f"make add work with {value.strip()}"


@pytest.mark.parametrize("value", ["postgres123", "pg-Xk2v9Qz7w", "hunter2hunter2", "PostgresPassword",
                                   "correct-horse-battery-staple", "s3cr3t_p4ss", "1234567890123456"])
def test_a_secret_looking_value_of_a_secret_named_variable_is_held(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", value)
    assert scrub(f"make add work with {value}") == "make add work with ***"


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "GITHUB_TOKEN", "GH_TOKEN"])
def test_the_runs_own_credentials_are_held_whatever_they_look_like(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "postgres")
    assert scrub("make add work with postgres") == "make add work with ***"
