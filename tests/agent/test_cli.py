"""The CLI's conventions: --version, one line and exit 2 for a missing extra, no colour unless wanted."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent import __version__
from agent.errors import EXTRA_OF_MODULE

ROOT = Path(__file__).resolve().parents[2]
# An SGR sequence that sets a colour (foreground, background, bright or 256/true colour); bold is not one.
COLOUR = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-9]|4[0-9]|9[0-7]|10[0-7])(?:;\d+)*m")


def agent(args: list[str], tmp_path: Path, hide: str | None = None, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    """`agent ARGS` in a subprocess; `hide` makes importing that module fail as if it were not installed."""
    prelude = f"import sys; sys.modules[{hide!r}] = None; " if hide else "import sys; "
    code = prelude + f"sys.argv = ['agent', *{args!r}]; from agent.cli import main; main()"
    full_env = {**os.environ, "HOME": str(tmp_path), "GITHUB_TOKEN": "", "GH_TOKEN": "", **(env or {}),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # this checkout
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)


def in_terminal(args: list[str], env: dict[str, str]) -> str:
    """What `agent ARGS` writes to a terminal (stdout and stderr both on one pseudo-terminal)."""
    leader, follower = pty.openpty()
    inherited = {k: v for k, v in os.environ.items()
                 if k not in ("NO_COLOR", "FORCE_COLOR", "PY_COLORS", "GITHUB_ACTIONS", "TTY_COMPATIBLE")}
    full_env = {**inherited, "TERM": "xterm-256color", "COLUMNS": "100", **env}
    proc = subprocess.Popen([sys.executable, "-m", "agent", *args], stdin=follower, stdout=follower, stderr=follower,
                            env=full_env, cwd=ROOT)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    proc.wait(timeout=60)
    return b"".join(chunks).decode(errors="replace")


def test_version_prints_the_version(tmp_path: Path) -> None:
    done = agent(["--version"], tmp_path)
    assert done.returncode == 0 and done.stdout == f"moe-agent {__version__}\n"
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" in declared["dynamic"]  # one source: agent.__version__


@pytest.mark.parametrize(
    ("module", "extra", "args"),
    [
        ("githubkit", "ci", ["ci"]),
        ("githubkit", "ci", ["pr", "--issue", "octo/repo#1"]),
        ("githubkit", "ci", ["fix", "--issue", "octo/repo#1"]),
        ("swebench", "eval", ["eval", "run", "--dataset", "tasks.jsonl"]),
        ("swebench", "eval", ["eval", "grade", "--gold", "--dataset", "tasks.jsonl", "--run-id", "r"]),
        ("swebench", "eval", ["eval", "grade-log", "--dataset", "tasks.jsonl", "--instance-id", "a__b-1",
                              "--log", "log.txt"]),
        ("datasets", "eval", ["eval", "images", "--dataset", "princeton-nlp/SWE-bench_Lite"]),
    ],
)
def test_a_missing_extra_is_one_line_naming_it_and_exit_2(tmp_path: Path, module: str, extra: str,
                                                            args: list[str]) -> None:
    (tmp_path / "tasks.jsonl").write_text("")
    (tmp_path / "log.txt").write_text("")
    env = {"GITHUB_EVENT_NAME": "issues", "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
    (tmp_path / "event.json").write_text('{"action": "labeled", "label": {"name": "agent"}, '
                                         '"issue": {"number": 1, "labels": [{"name": "agent"}]}}')
    done = agent(args, tmp_path, hide=module, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"pip install 'moe-agent[{extra}]'" in done.stderr and module in done.stderr


def test_every_optional_distribution_has_its_extra_named() -> None:
    """Each import-name the CLI maps to an extra belongs to that extra in pyproject, and each extra is covered."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    declared = {re.split(r"[\[<>=!~; ]", req, maxsplit=1)[0].lower().replace("_", "-"): extra
                for extra in ("ci", "eval", "ray") for req in extras[extra]}
    for module, extra in EXTRA_OF_MODULE.items():
        assert declared.get(module.replace("_", "-")) == extra, module
    assert set(declared.values()) == set(EXTRA_OF_MODULE.values())


@pytest.mark.parametrize("args", [["--help"], ["fix"], ["eval", "--no-such-flag"]])
def test_no_colour_when_not_a_terminal(args: list[str], tmp_path: Path) -> None:
    done = agent(args, tmp_path, env={"TERM": "xterm-256color"})
    assert "\x1b[" not in done.stdout + done.stderr


@pytest.mark.parametrize("args", [["--help"], ["fix"], ["fix", "--help"]])
def test_no_colour_on_a_terminal_with_no_color_set(args: list[str]) -> None:
    coloured = in_terminal(args, {})
    assert COLOUR.search(coloured), coloured  # the check below can fail
    plain = in_terminal(args, {"NO_COLOR": "1"})
    assert not COLOUR.search(plain), plain
    assert re.sub(r"\x1b\[[\d;]*m", "", plain) == re.sub(r"\x1b\[[\d;]*m", "", coloured)


def test_the_command_exits_without_tearing_down_its_modules_yet_runs_exit_handlers(tmp_path: Path) -> None:
    """`agent` (python -m agent) skips the interpreter's teardown, but exit handlers and output still happen."""
    marker = tmp_path / "finalized"
    code = ("import atexit, weakref, sys\n"
            f"atexit.register(lambda: open({str(marker)!r}, 'w').write('ran'))\n"
            "class Probe:\n"
            f"    def __del__(self): open({str(marker)!r} + '.teardown', 'w').write('ran')\n"
            "probe = Probe()\n"
            f"weakref.finalize(probe, lambda: open({str(marker)!r} + '.finalize', 'w').write('ran'))\n"
            "sys.argv = ['agent', '--version']\n"
            "from agent.cli import run\n"
            "run()\n"
            "print('not reached')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout == f"moe-agent {__version__}\n"
    assert marker.read_text() == "ran" and Path(f"{marker}.finalize").read_text() == "ran"
    assert not Path(f"{marker}.teardown").exists()  # a module global's __del__: only the teardown would call it
    usage = subprocess.run([sys.executable, "-m", "agent", "fix"], capture_output=True, text=True, timeout=120,
                           cwd=ROOT)
    assert usage.returncode == 2 and usage.stderr.startswith("error: give the issue exactly one way")


BROKEN_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("kind", ["missing", "directory", "not PEM", "broken PEM"])
@pytest.mark.parametrize("as_json", [True, False])
def test_an_unusable_ssl_cert_file_is_one_config_line_and_exit_2(tmp_path: Path, kind: str, as_json: bool) -> None:
    """The model client would die on it with a traceback; `--json` still prints its object."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    bundle = {"missing": tmp_path / "nowhere.pem", "directory": tmp_path, "not PEM": tmp_path / "ca.txt",
              "broken PEM": tmp_path / "broken.pem"}[kind]
    (tmp_path / "ca.txt").write_text("just text\n")
    (tmp_path / "broken.pem").write_text(BROKEN_PEM)
    done = agent(["fix", "-C", str(repo), *(["--json"] if as_json else []), "fix it"], tmp_path,
                 env={"SSL_CERT_FILE": str(bundle), "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"error: SSL_CERT_FILE={bundle}: ") and done.stderr.count("\n") == 1, done.stderr
    if as_json:
        printed = json.loads(done.stdout)
        assert (printed["status"], printed["exit_code"], printed["patch"]) == ("usage_error", 2, "")
        assert printed["message"] == done.stderr.removeprefix("error: ").strip()
    else:
        assert done.stdout == ""


GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nnotbase64!!\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("named_by", ["AGENT_CA_BUNDLE", "[sandbox] ca_bundle"])
def test_a_sandbox_ca_bundle_that_openssl_cannot_load_is_refused_like_ssl_cert_file(tmp_path: Path,
                                                                                    named_by: str) -> None:
    """A certificate block of garbage is caught before any image is built with it."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    bundle = tmp_path / "garbage.pem"
    bundle.write_text(GARBAGE_PEM)
    (tmp_path / "user.toml").write_text(f'[sandbox]\nca_bundle = "{bundle}"\n')
    env = ({"AGENT_CA_BUNDLE": str(bundle)} if named_by == "AGENT_CA_BUNDLE"
           else {"AGENT_CONFIG": str(tmp_path / "user.toml")})
    done = agent(["fix", "-C", str(repo), "--json", "fix it"], tmp_path,
                 env={**env, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert done.returncode == 2, done.stderr
    assert f"{bundle}: not a usable CA bundle (" in done.stderr and done.stderr.count("\n") == 1, done.stderr
    printed = json.loads(done.stdout)
    assert (printed["status"], printed["exit_code"], printed["patch"]) == ("usage_error", 2, "")
    assert printed["message"] == done.stderr.removeprefix("error: ").strip()


def test_a_non_ascii_api_key_is_one_line_exit_2_and_the_json_object(tmp_path: Path) -> None:
    """It was a UnicodeEncodeError traceback, exit 1, no `--json` object; `eval run` the same."""
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "a.py").write_text("x = 1\n")
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "i"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True)
    env = {"OPENAI_API_KEY": "sk-ключ-0123456789", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    done = agent(["fix", "-C", str(repo), "--json", "fix it"], tmp_path, env=env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: $OPENAI_API_KEY: model.api_key: holds a non-ASCII character")
    assert done.stderr.count("\n") == 1 and "ключ" not in done.stderr + done.stdout
    printed = json.loads(done.stdout)
    assert (printed["status"], printed["exit_code"]) == ("usage_error", 2)
    dataset = tmp_path / "tasks.jsonl"
    dataset.write_text(json.dumps({"instance_id": "o__r-1", "repo": "o/r", "base_commit": "0" * 40,
                                   "problem_statement": "p", "version": "1"}) + "\n")
    done = agent(["eval", "run", "-d", str(dataset), "-o", str(tmp_path / "out")], tmp_path, env=env)
    assert done.returncode == 2 and done.stderr.startswith("error: $OPENAI_API_KEY: model.api_key:"), done.stderr
    assert "ключ" not in done.stderr and not (tmp_path / "out" / "predictions.jsonl").exists()
