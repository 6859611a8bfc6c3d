"""A clean install works: every import is declared, and the wheel runs with no extras.

The static check reads every module of the four packages; the `install` tier builds the
wheel from this checkout, installs it into an empty virtualenv from the package index, and
runs the commands a new user runs first, then the features whose extra is missing.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
import venv
from collections.abc import Iterator
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from agent import __version__
from tools.languages import GRAMMARS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "tools", "sandbox", "evals")
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
# Copied to build the wheel from; not what git ignores or what a test run leaves behind.
NOT_SOURCE = shutil.ignore_patterns(".git", ".agent", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".venv", ".cache")


def distribution_name(requirement: str) -> str:
    """`ray[default]>=2.9` -> `ray`, normalised as PEP 503 does."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]).lower()


def imported_modules() -> Iterator[tuple[str, Path]]:
    """(top-level module, file) for every absolute import in the shipped packages."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "demo/project" in path.as_posix():  # the demo's sample project, not our code
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    yield from ((alias.name.partition(".")[0], path) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield node.module.partition(".")[0], path


def test_every_import_is_declared() -> None:
    shipped = {distribution_name(r) for r in PROJECT["dependencies"]}
    for extra in ("ci", "eval", "ray"):
        shipped |= {distribution_name(r) for r in PROJECT["optional-dependencies"][extra]}
    owners = packages_distributions()
    undeclared = set()
    for module, path in imported_modules():
        if module in sys.stdlib_module_names or module in PACKAGES or module == "__future__":
            continue
        names = {distribution_name(d) for d in owners.get(module, [module])}
        if not names & shipped:
            undeclared.add(f"{module} ({path.relative_to(ROOT)})")
    assert not undeclared, f"imported but not declared in pyproject.toml: {sorted(undeclared)}"


def test_the_declared_libraries_are_used() -> None:
    """A core dependency nobody imports is dead weight (gitpython and unidiff once were)."""
    owners = packages_distributions()
    modules = {module for module, _ in imported_modules()} | {g.module for g in GRAMMARS.values()}  # loaded by name
    imported = {distribution_name(d) for module in modules for d in owners.get(module, [module])}
    unused = {distribution_name(r) for r in PROJECT["dependencies"]} - imported
    # unidiff: declared for the patch-policy module (files a patch touches, renames, modes).
    assert unused <= {"unidiff"}, f"declared but never imported: {sorted(unused)}"


@pytest.fixture(scope="module")
def bare_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv holding the wheel of this checkout and no extras."""
    root = tmp_path_factory.mktemp("install")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(root / "dist"), str(source)])
    wheel = next((root / "dist").glob("moe_agent-*.whl"))
    venv.create(root / "venv", with_pip=True)
    run([str(root / "venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)])
    return root / "venv" / "bin"


def run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{' '.join(command)}: {done.stderr[-2000:]}"
    return done


@pytest.mark.install
def test_wheel_without_extras_runs_the_first_commands(bare_install: Path, tmp_path: Path) -> None:
    agent = str(bare_install / "agent")
    assert run([agent, "--version"], cwd=tmp_path).stdout == f"moe-agent {__version__}\n"
    for args in (["--help"], ["fix", "--help"], ["doctor", "--help"]):
        assert "Usage" in run([agent, *args], cwd=tmp_path).stdout
    run([str(bare_install / "python"), "-m", "pip", "check"])
    listed = run([str(bare_install / "python"), "-m", "pip", "list", "--format=freeze"]).stdout.lower()
    assert "githubkit" not in listed and "swebench" not in listed  # truly without the extras


@pytest.mark.install
@pytest.mark.parametrize(
    ("extra", "args"),
    [
        ("ci", ["ci"]),
        ("ci", ["pr", "--issue", "octo/repo#1"]),
        ("ci", ["fix", "--issue", "octo/repo#1"]),
        ("eval", ["eval", "run", "--dataset", "tasks.jsonl"]),
        ("eval", ["eval", "grade-log", "--dataset", "tasks.jsonl", "--instance-id", "a__b-1", "--log", "log.txt"]),
        ("eval", ["eval", "report", "run.json"]),
    ],
)
def test_wheel_without_extras_names_the_missing_one(bare_install: Path, tmp_path: Path, extra: str,
                                                     args: list[str]) -> None:
    for name in ("tasks.jsonl", "log.txt", "run.json"):
        (tmp_path / name).write_text("")
    (tmp_path / "event.json").write_text('{"action": "labeled", "label": {"name": "agent"}, '
                                         '"issue": {"number": 1, "labels": [{"name": "agent"}]}}')
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GITHUB_EVENT_NAME": "issues",
           "GITHUB_EVENT_PATH": str(tmp_path / "event.json")}
    done = subprocess.run([str(bare_install / "agent"), *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env=env, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert f"pip install 'moe-agent[{extra}]'" in done.stderr
