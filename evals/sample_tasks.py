"""A tiny SWE-bench-shaped task set, made on the spot, for the image and grading pipeline.

Nothing here is fetched: a small Python package with planted bugs is committed to a
fresh git repository (the local mirror), and each task row carries its base_commit,
test_patch, gold patch and test lists, as real rows do. The recipe runs `unittest`
with no packages from PyPI, so the whole pipeline runs without the network on the
default sandbox image. Tests and benchmarks use it; so can a smoke check.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git

from evals.datasets import TaskInstance
from evals.images import ImageBuilder, ImageSource, RecipeBook
from evals.repos import RepoSource
from sandbox.images import DEFAULT_PACKAGES, SANDBOX_USER

SAMPLE_REPO = "moe-sample/calc"
VALID_VERSION = "1.0"
BROKEN_VERSION = "broken"  # its environment layer fails on purpose
SLOW_VERSION = "slow"  # its tests outlast any sensible time limit
RECIPE = f"""\
repo = "{SAMPLE_REPO}"
log_parser = "parse_log_django"  # reads `python -m unittest -v` output
offline_reinstall_flags = ["--no-deps"]

[[specs]]
versions = ["{VALID_VERSION}"]
python = "3.11"
install = "python -m pip install --no-build-isolation --no-index -e ."
test_cmd = "python -m unittest -v"

[[specs]]
versions = ["{BROKEN_VERSION}"]
python = "3.11"
pre_install = ["echo 'this recipe fails on purpose' && false"]
install = "python -m pip install --no-build-isolation --no-index -e ."
test_cmd = "python -m unittest -v"

[[specs]]
versions = ["{SLOW_VERSION}"]
python = "3.11"
install = "python -m pip install --no-build-isolation --no-index -e ."
test_cmd = "sleep 3600; python -m unittest -v"
"""
TEST_FILE = "tests/test_calc.py"
PASSING_TEST = "test_add (tests.test_calc.CalcTest.test_add)"
COMMIT_ENV = {
    "GIT_AUTHOR_NAME": "moe-sample", "GIT_AUTHOR_EMAIL": "sample@moe-agent.invalid",
    "GIT_COMMITTER_NAME": "moe-sample", "GIT_COMMITTER_EMAIL": "sample@moe-agent.invalid",
    "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class SampleProject:
    """Where the sample lives: a folder of mirrors, a recipe folder and a dataset file."""

    root: Path
    mirrors: Path
    recipes: Path
    dataset: Path
    instances: list[TaskInstance]
    fix_commit: str  # a commit newer than every base_commit: it must never reach an image

    def instance(self, name: str) -> TaskInstance:
        """The instance `moe-sample__calc-<name>`."""
        return next(i for i in self.instances if i.instance_id == f"{instance_prefix()}-{name}")


def make_sample_project(root: Path, bugs: int = 4, salt: str = "") -> SampleProject:
    """Tasks `-1`..`-<bugs>` (one planted bug each), `-defect` (its FAIL_TO_PASS already
    passes), `-broken` (its image cannot be built) and `-slow` (its tests never finish).

    The same `salt` gives the same commits, hence the same image tags; change it to force
    fresh images.
    """
    work = root / "work"
    (work / "calc").mkdir(parents=True)
    (work / "tests").mkdir()
    repo = git.Repo.init(work, initial_branch="main")
    repo.git.update_environment(**COMMIT_ENV)
    (work / "setup.py").write_text('from setuptools import setup\n\nsetup(name="calc", version="1.0", packages=["calc"])\n')
    (work / "calc" / "__init__.py").write_text(_module(bugs, fixed=set(), salt=salt))
    (work / "tests" / "__init__.py").write_text("")
    (work / ".gitignore").write_text("*.egg-info/\n__pycache__/\n")
    (work / TEST_FILE).write_text(_tests([]))
    repo.git.add("-A")
    repo.git.commit("--quiet", "-m", "calc with planted bugs")
    repo.git.tag("v0.1")
    base = repo.head.commit.hexsha

    rows = [_row(base, f"{k}", _gold_patch(repo, work, bugs, k, salt), _test_patch(repo, work, [f"scale_{k}"]),
                 [_test_name(f"scale_{k}")]) for k in range(1, bugs + 1)]
    # A label defect: the "new" test checks add(), which was never broken.
    rows.append(_row(base, "defect", _gold_patch(repo, work, bugs, 1, salt), _test_patch(repo, work, ["add_again"]),
                     [_test_name("add_again")]))
    for version in (BROKEN_VERSION, SLOW_VERSION):  # task 1 again, under a recipe that cannot pass
        rows.append({**rows[0], "instance_id": f"{instance_prefix()}-{version}", "version": version})

    # The upstream fix lands later, with a newer tag and a branch: none may reach an image.
    (work / "calc" / "__init__.py").write_text(_module(bugs, fixed=set(range(1, bugs + 1)), salt=salt))
    repo.git.commit("--quiet", "-am", "fix every scale function")
    repo.git.tag("v0.2")
    repo.git.branch("release-0.2")
    fix = repo.head.commit.hexsha

    mirrors = root / "mirrors"
    mirrors.mkdir()
    owner, name = SAMPLE_REPO.split("/")
    repo.clone(mirrors / f"{owner}__{name}.git", mirror=True, quiet=True).close()
    repo.close()
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / f"{owner}__{name}.toml").write_text(RECIPE)
    dataset = root / "tasks.jsonl"
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    instances = [TaskInstance.model_validate(row) for row in rows]
    return SampleProject(root, mirrors, recipes, dataset, instances, fix)


def sample_image_builder(client: Any, project: SampleProject, **options: Any) -> ImageBuilder:
    """A builder on the default sandbox image, with no PyPI downloads at all."""
    settings: dict[str, Any] = {
        "recipes": RecipeBook([project.recipes]),
        "source": ImageSource.BUILD,
        "base_name": "moe-agent-sandbox",
        "base_user": SANDBOX_USER,  # the default sandbox image itself; task layers run as root
        "base_packages": tuple(DEFAULT_PACKAGES),
        "build_tools": (),
    }
    return ImageBuilder(client, RepoSource(str(project.mirrors)), **(settings | options))


def instance_prefix() -> str:
    return SAMPLE_REPO.replace("/", "__")


def _row(base: str, name: str, patch: str, test_patch: str, fail_to_pass: list[str],
         version: str = VALID_VERSION) -> dict[str, Any]:
    return {
        "repo": SAMPLE_REPO,
        "instance_id": f"{instance_prefix()}-{name}",
        "base_commit": base,
        "environment_setup_commit": base,
        "version": version,
        "problem_statement": f"calc: task {name}",
        "patch": patch,
        "test_patch": test_patch,
        "FAIL_TO_PASS": json.dumps(fail_to_pass),
        "PASS_TO_PASS": json.dumps([PASSING_TEST]),
    }


def _module(bugs: int, fixed: set[int], salt: str) -> str:
    lines = [f'"""A calculator with planted bugs{f" ({salt})" if salt else ""}."""\n', "",
             "def add(a, b):", "    return a + b", ""]
    for k in range(1, bugs + 1):
        body = f"x * {k}" if k in fixed else f"x * {k} + 1"  # the bug: an off-by-one
        lines += ["", f"def scale_{k}(x):", f"    return {body}", ""]
    return "\n".join(lines)


def _tests(extra: list[str]) -> str:
    cases = {"add_again": "self.assertEqual(calc.add(2, 3), 5)"}
    body = textwrap.dedent("""\
        import unittest

        import calc


        class CalcTest(unittest.TestCase):
            def test_add(self):
                self.assertEqual(calc.add(1, 2), 3)
        """)
    for name in extra:
        check = cases.get(name) or f"self.assertEqual(calc.{name}(3), 3 * {name.split('_')[1]})"
        body += f"\n    def test_{name}(self):\n        {check}\n"
    return body


def _test_name(name: str) -> str:
    return f"test_{name} (tests.test_calc.CalcTest.test_{name})"


def _gold_patch(repo: git.Repo, work: Path, bugs: int, k: int, salt: str) -> str:
    return _diff(repo, work / "calc" / "__init__.py", _module(bugs, fixed={k}, salt=salt))


def _test_patch(repo: git.Repo, work: Path, names: list[str]) -> str:
    return _diff(repo, work / TEST_FILE, _tests(names))


def _diff(repo: git.Repo, path: Path, new_text: str) -> str:
    """The diff that turns the committed `path` into `new_text`; the tree is left as it was."""
    old_text = path.read_text()
    path.write_text(new_text)
    try:
        return repo.git.diff("--", str(path), strip_newline_in_stdout=False)
    finally:
        path.write_text(old_text)
