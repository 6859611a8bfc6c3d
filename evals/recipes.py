"""How to build and test one repository version: the SWE-bench spec tables, as data.

swebench 5.x dropped MAP_REPO_VERSION_TO_SPECS, so the entries for the repositories we
run offline are transcribed from swebench 4.1.0 into `evals/recipes/<owner>__<name>.toml`
(one file per upstream repository). Upstream builds conda environments; we build a
Debian python + venv, so a recipe also says which Debian interpreter stands in for the
Python version it asks for, and the installs and fetches that must work offline.
"""

from __future__ import annotations

import re
import tomllib
from functools import cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, computed_field, field_validator
from swebench.harness.constants import NON_TEST_EXTS
from swebench.harness.log_parsers import PARSER_REGISTRY

from agent.errors import UsageError
from evals.datasets import TaskInstance
from sandbox.images import RELEASE_PYTHON

RECIPES_DIR = Path(__file__).with_name("recipes")
DIFF_TARGET = re.compile(r"diff --git a/.* b/(.*)")


class Interpreter(BaseModel):
    """The Debian python that runs a recipe, and whether it differs from the one asked for."""

    model_config = ConfigDict(frozen=True)

    requested: str
    version: str
    debian_release: str

    @computed_field
    @property
    def substituted(self) -> bool:
        return self.version != self.requested


class RepoSettings(BaseModel):
    """What holds for every version of one repository."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    repo: str
    log_parser: str
    offline_reinstall_flags: list[str]
    requirements_paths: list[str] = []
    # swebench 4.x REPLACE_REQ_PACKAGES: a requirement yanked from PyPI -> its replacement
    requirement_replacements: dict[str, str] = {}
    # packages = "environment.yml": the first of these at the setup commit (MAP_REPO_TO_ENV_YML_PATHS),
    # its conda dependencies installed with pip under the name `conda_to_pip` gives ("" = none on PyPI)
    environment_paths: list[str] = []
    conda_to_pip: dict[str, str] = {}
    services: list[str] = []
    # Compile C extensions through ccache (cache in the environment image): the environment
    # layer compiles at the setup commit and warms it, so the instance layer and the eval
    # script's reinstall recompile only the sources that differ (see `evals.images`).
    compiler_cache: bool = False
    label_defects: list[str] = []
    notes: list[str] = []

    @field_validator("log_parser")
    @classmethod
    def _known_parser(cls, name: str) -> str:
        if name not in PARSER_REGISTRY:
            raise ValueError(f"swebench has no log parser named {name!r}")
        return name


class VersionSpec(BaseModel):
    """One MAP_REPO_VERSION_TO_SPECS entry: environment, install and test command."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: str
    packages: str = ""  # upstream's conda list, or "requirements.txt" / "environment.yml"
    pip_packages: list[str] = []
    pre_install: list[str] = []
    install: str
    test_cmd: str
    # Why this version's environment cannot match upstream's; empty when it can.
    unfaithful: str = ""
    # The Debian Python to run on when `python` is in no release, instead of the nearest
    # (e.g. 3.9 where the pins have wheels for 3.9 but not for 3.11).
    python_substitute: str = ""

    @field_validator("python_substitute")
    @classmethod
    def _shipped(cls, version: str) -> str:
        if version and version not in RELEASE_PYTHON.values():
            raise ValueError(f"python_substitute {version} is in no Debian release ({', '.join(RELEASE_PYTHON.values())})")
        return version


class Recipe(RepoSettings, VersionSpec):
    """Everything needed to build and test `repo` at `version`."""

    version: str

    @computed_field
    @property
    def interpreter(self) -> Interpreter:
        return choose_interpreter(self.python, self.python_substitute)

    @property
    def eval_install(self) -> str:
        """The reinstall the eval script runs after the patch, with the network off."""
        return " ".join([self.install, *self.offline_reinstall_flags])

    def test_command(self, instance: TaskInstance) -> str:
        """The test command with the files the instance's test patch touches."""
        return " ".join([self.test_cmd, *directives_for(instance)])


class _VersionGroup(VersionSpec):
    versions: list[str]


class _RecipeFile(RepoSettings):
    specs: list[_VersionGroup]


def recipe_for(repo: str, version: str) -> Recipe:
    """The recipe for one repository version; unknown ones are a usage error."""
    recipes = load_recipes()
    versions = {v: r for (name, v), r in recipes.items() if name == repo}
    if not versions:
        known = sorted({name for name, _ in recipes})
        raise UsageError(f"no recipe for repository {repo!r}; recipes exist for {', '.join(known)}")
    if version not in versions:
        known = ", ".join(sorted(versions, key=_minor))
        raise UsageError(f"no recipe for {repo} version {version!r}; known versions: {known}")
    return versions[version]


@cache
def load_recipes(directory: Path = RECIPES_DIR) -> dict[tuple[str, str], Recipe]:
    """Every (repo, version) recipe in `directory`, checked once and cached."""
    recipes: dict[tuple[str, str], Recipe] = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            parsed = _RecipeFile.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, ValidationError) as exc:
            raise ValueError(f"{path}: bad recipe file: {exc}") from None
        settings = parsed.model_dump(exclude={"specs"})
        for group in parsed.specs:
            for version in group.versions:
                if (parsed.repo, version) in recipes:
                    raise ValueError(f"{path}: {parsed.repo} version {version} is defined twice")
                spec = group.model_dump(exclude={"versions"})
                recipes[parsed.repo, version] = Recipe(**settings, **spec, version=version)
    return recipes


def choose_interpreter(requested: str, substitute: str = "") -> Interpreter:
    """The Python a Debian release ships: the one asked for, else `substitute`, else the
    nearest (on a tie the newer, which runs more old code)."""
    wanted = _minor(requested)
    exact = [(r, v) for r, v in RELEASE_PYTHON.items() if _minor(v) == wanted]
    if not exact and substitute:
        exact = [(r, v) for r, v in RELEASE_PYTHON.items() if _minor(v) == _minor(substitute)]
    release, version = exact[0] if exact else min(
        RELEASE_PYTHON.items(),
        key=lambda item: (abs(_minor(item[1]) - wanted), -_minor(item[1])),
    )
    return Interpreter(requested=requested, version=version, debian_release=release)


def _minor(version: str) -> int:
    major, minor = version.split(".")[:2]
    return int(major) * 100 + int(minor)


def directives_for(instance: TaskInstance) -> list[str]:
    """Which tests to run: the files the test patch touches (swebench 4.x get_test_directives).

    swebench 5.0.2 no longer exposes it, so this is the 4.x logic; django names test
    modules, not files.
    """
    paths = DIFF_TARGET.findall(instance.test_patch or "")
    paths = [p for p in paths if not any(p.endswith(ext) for ext in NON_TEST_EXTS)]
    if instance.repo != "django/django":
        return paths
    modules = []
    for path in paths:
        path = path.removesuffix(".py")
        path = path.removeprefix("tests/")
        modules.append(path.replace("/", "."))
    return modules
