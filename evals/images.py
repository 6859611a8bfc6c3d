"""SWE-bench task images built offline, in three layers: base, environment, instance.

- base: Debian minbase with the Python a recipe runs on (bullseye 3.9, bookworm 3.11,
  trixie 3.13), from `sandbox.images`;
- environment, one per (repo, version) recipe: a virtualenv at /opt/venv with the
  recipe's packages and the project's dependencies, installed at the recipe's
  environment_setup_commit. This is the layer that reaches PyPI (network on, host CA
  bundle mounted, nothing written into a build context);
- instance, one per task: the repository at `base_commit` in /testbed with only its own
  history (no newer commit, tag or branch, so the fix cannot be peeked at), installed
  with `--no-build-isolation --no-index --no-deps`; only a dependency the base commit
  declares and the environment lacks, or holds in a version the base commit does not
  accept, is fetched (see `instance_script`).

Every tag carries a hash of what went into its layer (the parent image, the script that
makes the layer, the files it reads), so an unchanged layer is reused.
Where a registry answers, the official prebuilt image can be pulled instead.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent.errors import AgentError, EnvironmentProblem, UsageError
from evals.blobs import NAMED_AT_MOST, BlobStore, MirrorOverlay, missing_blobs
from evals.datasets import TaskInstance
from evals.recipes import RECIPES_DIR, Interpreter, Recipe, load_recipes
from evals.repos import RepoSource, has_commit, newest_commit, show_file
from sandbox.base import SandboxError
from sandbox.certs import (
    CONTAINER_BUNDLE,
    SYSTEM_BUNDLES,
    ca_environment,
    combined_bundle,
)
from sandbox.images import (
    BUILD_MEMORY,
    BuildLog,
    ImageRecipe,
    build_image,
    image_exists,
    registry_reachable,
    run_and_commit,
)

BASE_NAME = "moe-swebench-base"
ENV_NAME = "moe-swebench-env"
INSTANCE_NAME = "moe-swebench-instance"
# iproute2 is beyond the usual list: the requests stand-in routes the TARPIT into loopback.
BASE_PACKAGES = [
    "python3", "python3-venv", "python3-dev", "git", "patch", "build-essential", "ca-certificates", "iproute2",
]
# One frozen pip/setuptools/wheel in every venv: the offline reinstall builds without
# isolation, so the build backend must already be there. Recipe pins are installed later
# and win.
BUILD_TOOLS = ["pip==24.3.1", "setuptools==69.5.1", "wheel==0.43.0"]
VENV = "/opt/venv"
TESTBED = "/testbed"
MIRROR_MOUNT = "/mirror"
SERVICES_DIR = Path(__file__).with_name("services")
REQUIREMENTS_FILE = "/tmp/moe-requirements.txt"
CONSTRAINTS_FILE = "/tmp/moe-constraints.txt"
CONDA_SPEC = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")
OFFICIAL_IMAGE = "swebench/sweb.eval.x86_64.{key}:latest"
CONDA_ACTIVATE = "source /opt/miniconda3/bin/activate && conda activate testbed"
# `docker commit` keeps the build container's command; put the image's own back. Task images
# run as root, as the official ones do (see `ImageBuilder._base_recipe`), whatever their base.
IMAGE_CHANGES = ['CMD ["sleep", "infinity"]', f"WORKDIR {TESTBED}", "ENV LANG=C.UTF-8", "USER root"]
# Requirements the installed project declares but the environment lacks, fetched by name.
MISSING_DEPENDENCIES = """\
missing=$({ python -m pip check || true; } | sed -n 's/.* requires \\(.*\\), which is not installed\\.$/\\1/p' | sort -u)
if [ -n "$missing" ]; then
    echo "moe-agent: the base commit needs" $missing "beyond the environment; fetching them"
    python -m pip install $missing
fi"""
# Requirements of the installed project (the distribution installed from the current
# directory, as a PEP 660 editable or an egg-link) that the environment holds in another
# version. `pip check` says "<project> <version> has requirement <req>, but you have <name>
# <version>."; <req> may carry a marker, so the requirements go through a file. Conflicts
# among the environment's own packages are left as the environment layer made them.
WRONG_VERSIONS = """\
project=$(python -c 'import importlib.metadata as metadata, json, pathlib, re
here = pathlib.Path.cwd()
for dist in metadata.distributions():
    url = json.loads(dist.read_text("direct_url.json") or "{}").get("url", "")
    place = pathlib.Path(dist.locate_file("")).resolve()
    if url == here.as_uri() or place == here or here in place.parents:
        print(re.sub(r"[-_.]+", "-", dist.metadata["Name"] or "").lower())
        break')
wrong=$({ python -m pip check || true; } | sed -n "s/^$project [^ ]* has requirement \\(.*\\), but you have [^ ]* [^ ]*\\.$/\\1/p" | sort -u)
if [ -n "$project" ] && [ -n "$wrong" ]; then
    echo "moe-agent: the base commit needs" $wrong "where the environment has other versions; fetching them"
    printf '%s\\n' "$wrong" > /tmp/moe-wrong-versions.txt
    python -m pip install -r /tmp/moe-wrong-versions.txt
    rm -f /tmp/moe-wrong-versions.txt
fi"""
# `compiler_cache` recipes: ccache from Debian, put first on the venv's PATH under the names
# distutils calls (Debian's CC is x86_64-linux-gnu-gcc), its cache kept in the image.
CCACHE_DIR = "/opt/ccache"
COMPILERS = ["cc", "gcc", "c++", "g++", "x86_64-linux-gnu-gcc", "x86_64-linux-gnu-g++"]
COMPILER_CACHE = f"""\
apt-get update -qq
apt-get install -y -qq --no-install-recommends ccache
rm -rf /var/lib/apt/lists/*
printf 'cache_dir = {CCACHE_DIR}\\nmax_size = 4G\\n' > /etc/ccache.conf
for compiler in {' '.join(COMPILERS)}; do ln -sf /usr/bin/ccache {VENV}/bin/$compiler; done"""
# A step running apt-get as root: apt drops to its `_apt` user to download (SETUID, SETGID)
# and dpkg sets package files' owners and modes (CHOWN, FOWNER, DAC_OVERRIDE). Every other
# build step runs with no capability at all.
APT_CAPABILITIES = ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"]
APT_COMMAND = re.compile(r"(^|[\s;&|(])(apt-get|apt)\s")
# requirements lines upstream drops (swebench 4.x get_requirements_by_commit), and lines
# naming the project itself (`.[extras]`), which only resolve inside the checkout: `install`
# installs the project.
REQUIREMENTS_DROPPED = ("-e .", "#", ".[test", ".[")

Echo = Callable[[str], None]


class ImageSource(StrEnum):
    """Pull official images, build them here, or pull when a registry answers."""

    AUTO = "auto"
    PULL = "pull"
    BUILD = "build"


@dataclass(frozen=True)
class Layer:
    """What happened to one layer: built, reused or pulled, and how long it took."""

    tag: str
    action: str
    seconds: float
    replaced: str = ""  # the id of the image a forced rebuild took the tag from


@dataclass(frozen=True)
class InstanceImage:
    """An image ready to evaluate one task, and how to use it."""

    instance_id: str
    tag: str
    recipe: Recipe | None
    pulled: bool = False
    layers: tuple[Layer, ...] = ()
    notes: tuple[str, ...] = ()  # Python substitutions
    caveats: tuple[str, ...] = ()  # where the environment differs from upstream's, and why

    @property
    def activate(self) -> str:
        """The shell line that puts the test environment first on PATH."""
        return CONDA_ACTIVATE if self.pulled else f"source {VENV}/bin/activate"

    @property
    def services(self) -> list[str]:
        return [] if self.pulled or self.recipe is None else list(self.recipe.services)

    @property
    def capabilities(self) -> list[str]:
        """The requests stand-in routes the TARPIT into loopback, which needs NET_ADMIN."""
        return ["NET_ADMIN"] if "httpbin" in self.services else []


@dataclass(frozen=True)
class ImageOutcome:
    """One instance's image, or the one-line reason it could not be had."""

    instance: TaskInstance
    image: InstanceImage | None = None
    error: str = ""
    seconds: float = 0.0


class RecipeBook:
    """Recipes by (repo, version): extra directories first, then the transcribed ones."""

    def __init__(self, extra_dirs: Sequence[Path] = ()) -> None:
        self.recipes: dict[tuple[str, str], Recipe] = {}
        for directory in [RECIPES_DIR, *reversed(extra_dirs)]:
            if not directory.is_dir():
                raise UsageError(f"--recipes {directory}: no such directory")
            try:
                self.recipes.update(load_recipes(directory))
            except ValueError as exc:
                raise UsageError(str(exc)) from None

    def for_instance(self, instance: TaskInstance) -> Recipe:
        recipe = self.recipes.get((instance.repo, instance.version))
        if recipe is None:
            known = sorted(v for r, v in self.recipes if r == instance.repo)
            detail = f"known versions: {', '.join(known)}" if known else "no recipe for that repository"
            raise UsageError(f"{instance.instance_id}: no recipe for {instance.repo} {instance.version} ({detail})")
        return recipe


@dataclass
class ImageBuilder:
    """Makes (or finds) the image for each task; safe to call from several threads."""

    client: Any
    repos: RepoSource
    recipes: RecipeBook = field(default_factory=RecipeBook)
    source: ImageSource = ImageSource.AUTO
    base_name: str = BASE_NAME
    base_packages: Sequence[str] = tuple(BASE_PACKAGES)
    build_tools: Sequence[str] = tuple(BUILD_TOOLS)
    ca_bundle: Path | None = None
    force: bool = False
    echo: Echo | None = None
    timeout: float = 1800.0
    build_cpus: float | None = None  # CPU quota of each build container; None: unlimited
    build_memory: str = BUILD_MEMORY  # memory limit of each build container (a Docker size)
    base_user: str | None = None  # the base image's own user (the sample tasks share the sandbox image's)
    # Every dataset row, not only the selected ones: a row without environment_setup_commit
    # takes its version's from them (see `_setup_commit`).
    dataset: Sequence[TaskInstance] = ()
    # Files holding blobs a partial mirror lacks (`--blobs`), taken by their git blob id.
    blobs: BlobStore | None = None
    _locks: dict[str, threading.Lock] = field(default_factory=dict, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _failures: dict[str, str] = field(default_factory=dict, init=False, repr=False)
    _forced: set[str] = field(default_factory=set, init=False, repr=False)
    _present: set[str] = field(default_factory=set, init=False, repr=False)
    _plans: dict[tuple[str, str, str, str], EnvironmentPlan] = field(default_factory=dict, init=False, repr=False)
    _pull: bool | None = field(default=None, init=False, repr=False)
    _setup_commits: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict, init=False, repr=False)

    def ensure(self, instance: TaskInstance) -> InstanceImage:
        """The instance's image: pulled, reused or built. Raises SandboxError/AgentError."""
        if self._pulling():
            pulled = self._pull_official(instance)
            if pulled is not None:
                return pulled
            if self.source == ImageSource.PULL:
                raise SandboxError(f"{instance.instance_id}: no official image {official_image(instance)} to pull")
        # Plan every layer first: a missing mirror or commit fails before minutes of building.
        recipe = self.recipes.for_instance(instance)
        base_tag = self._base_recipe(recipe.interpreter).tag
        mirror = self.repos.mirror_with(instance.repo, instance.base_commit)
        setup_commit, setup_note = self._setup_commit(instance, mirror)
        self.repos.mirror_with(instance.repo, setup_commit)  # both commits must be there
        env_plan = self._environment_plan(recipe, mirror, setup_commit, base_tag)
        inst_tag = instance_tag(instance, recipe, env_plan.tag)
        base = self._layer(base_tag, lambda tag: self._build_base(recipe, tag), forceable=False)
        env = self._layer(env_plan.tag, lambda tag: self._build_environment(env_plan, mirror, base_tag, tag))
        inst = self._layer(inst_tag, lambda tag: self._build_instance(instance, recipe, mirror, env_plan.tag, tag))
        self._drop_replaced([inst, env])
        notes = (substitution_note(recipe.interpreter),) if recipe.interpreter.substituted else ()
        caveats = tuple(note for note in (setup_note, unfaithful_note(recipe)) if note)
        return InstanceImage(instance.instance_id, inst.tag, recipe, layers=(base, env, inst), notes=notes,
                             caveats=caveats)

    def _setup_commit(self, instance: TaskInstance, mirror: Path) -> tuple[str, str]:
        """The commit the environment is installed at, and a note when the row did not name it.

        SWE-bench gives every row of a (repo, version) the same environment_setup_commit.
        A row without one takes the one its version's other rows name; when none does,
        the newest base commit of the version's rows in the dataset (the setup commit is
        upstream's latest commit of the version). Either way the version keeps one
        environment image instead of one per instance.
        """
        if instance.environment_setup_commit:
            return instance.environment_setup_commit, ""
        key = (instance.repo, instance.version)
        with self._guard:
            if key not in self._setup_commits:
                self._setup_commits[key] = self._version_setup_commit(instance, mirror)
            return self._setup_commits[key]

    def _version_setup_commit(self, instance: TaskInstance, mirror: Path) -> tuple[str, str]:
        peers = [row for row in self.dataset if (row.repo, row.version) == (instance.repo, instance.version)]
        named = Counter(row.environment_setup_commit for row in peers if row.environment_setup_commit)
        what = f"{instance.repo} {instance.version}"
        if named:
            commit = named.most_common(1)[0][0]
            return commit, (f"no environment_setup_commit in the row: the environment of {what} is the one "
                            f"its other rows name ({commit[:12]})")
        candidates = {row.base_commit for row in peers if has_commit(mirror, row.base_commit)}
        commit = newest_commit(mirror, candidates | {instance.base_commit})
        return commit, (f"no row of {what} names an environment_setup_commit: the version's environment is "
                        f"installed at its newest base commit in the dataset ({commit[:12]})")

    def _environment_plan(self, recipe: Recipe, mirror: Path, setup_commit: str, base_tag: str) -> EnvironmentPlan:
        """Made once per (repo, version, setup commit): it reads files from the mirror with git."""
        key = (recipe.repo, recipe.version, setup_commit, base_tag)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = EnvironmentPlan.make(recipe, mirror, setup_commit, base_tag, self.build_tools)
        return plan

    # -- layers ---------------------------------------------------------------
    def _layer(self, tag: str, build: Callable[[str], None], forceable: bool = True) -> Layer:
        """Build `tag` once, however many threads want it; a failure is remembered for the run.

        `force` rebuilds environment and instance layers once per run; never the base,
        which only changes with its package list.
        """
        with self._guard:
            lock = self._locks.setdefault(tag, threading.Lock())
        with lock:
            if tag in self._failures:
                raise SandboxError(self._failures[tag])
            started = time.monotonic()
            exists = tag in self._present or image_exists(self.client, tag)
            if exists and not (forceable and self.force and tag not in self._forced):
                self._present.add(tag)  # shared layers are asked for by every instance: ask Docker once
                return Layer(tag, "reused", 0.0)
            replaced = self.client.images.get(tag).id if exists else ""
            try:
                build(tag)
            except (SandboxError, AgentError) as exc:
                self._failures[tag] = str(exc)
                raise
            self._forced.add(tag)
            return Layer(tag, "built", time.monotonic() - started, replaced)

    def _base_recipe(self, interpreter: Interpreter) -> ImageRecipe:
        # root, like the official images: the eval script reinstalls into /opt/venv, names
        # httpbin.org in /etc/hosts and routes the tarpit (see `InstanceImage.capabilities`).
        return ImageRecipe(name=self.base_name, release=interpreter.debian_release, packages=list(self.base_packages),
                           user=self.base_user)

    def _build_base(self, recipe: Recipe, tag: str) -> None:
        interpreter = recipe.interpreter
        note = f"; {substitution_note(interpreter)}" if interpreter.substituted else ""
        self._say(f"building base image {tag} (Python {interpreter.version}{note})")
        build_image(self._base_recipe(recipe.interpreter), self.client, echo=self.echo, timeout=self.timeout)

    def _build_environment(self, plan: EnvironmentPlan, mirror: Path, base: str, tag: str) -> None:
        files = {REQUIREMENTS_FILE: plan.requirements.encode()} if plan.requirements else {}
        if plan.recipe.packages == "environment.yml":
            files[CONSTRAINTS_FILE] = "".join(f"{pin}\n" for pin in plan.recipe.pip_packages).encode()
        for service in plan.recipe.services:
            files[f"/tmp/{service}-setup.sh"] = service_script(service, "setup").encode()
            files.update(service_data(service))
        changes = [*IMAGE_CHANGES, *label_changes(plan.labels)]
        with self._mounts(plan.recipe.repo, mirror, plan.setup_commit) as (volumes, ca):
            self._say(f"building environment image {tag}")  # after the mirror's check, which may stop it
            script = plan.script(ca)
            run_and_commit(self.client, base, script, tag, log=BuildLog(tag, self.echo),
                           step="environment", files=files, changes=changes, network=True, volumes=volumes,
                           timeout=self.timeout, cpus=self.build_cpus, memory=self.build_memory,
                           capabilities=step_capabilities(script), user="root")

    def _build_instance(self, instance: TaskInstance, recipe: Recipe, mirror: Path, env: str, tag: str) -> None:
        labels = {
            "moe-agent.instance": instance.instance_id,
            "moe-agent.base-commit": instance.base_commit,
            "moe-agent.environment": env,
            **python_labels(recipe.interpreter),
        }
        with self._mounts(instance.repo, mirror, instance.base_commit) as (volumes, ca):
            self._say(f"building instance image {tag}")
            script = instance_script(instance, recipe, ca)
            run_and_commit(self.client, env, script, tag,
                           log=BuildLog(tag, self.echo), step="instance",
                           changes=[*IMAGE_CHANGES, *label_changes(labels)], network=True, volumes=volumes,
                           timeout=self.timeout, cpus=self.build_cpus, memory=self.build_memory,
                           capabilities=step_capabilities(script), user="root")

    @contextmanager
    def _mounts(self, repo: str, mirror: Path, commit: str) -> Iterator[tuple[dict[str, dict[str, str]], bool]]:
        """The mirror, and the CA bundle when there is one; read-only, never committed.

        A mirror lacking blobs that `commit`'s history needs is completed from `--blobs`
        through an overlay (`evals.blobs`), or the build stops here with one line naming them.
        """
        supplied = self._complete_history(repo, mirror, commit)
        bundle = self._ca_bundle()
        extra = {str(bundle): {"bind": CONTAINER_BUNDLE, "mode": "ro"}} if bundle is not None else {}
        if not supplied:
            yield {str(mirror): {"bind": MIRROR_MOUNT, "mode": "ro"}, **extra}, bundle is not None
            return
        assert self.blobs is not None
        self._say(f"{repo}: {len(supplied)} blob(s) the mirror lacks taken from --blobs")
        with MirrorOverlay(mirror, self.blobs) as overlay:
            yield {**overlay.volumes(MIRROR_MOUNT), **extra}, bundle is not None

    def _complete_history(self, repo: str, mirror: Path, commit: str) -> list[str]:
        """The blobs of `commit`'s history the mirror lacks and `--blobs` supplied.

        Raises EnvironmentProblem naming the blobs (path, id, commit) that no one supplied.
        """
        missing = missing_blobs(mirror, commit)
        if not missing:
            return []
        if self.blobs is not None:
            self.blobs.supply(blob.blob for blob in missing)
            unsupplied = [blob for blob in missing if not self.blobs.has(blob.blob)]
            if not unsupplied:
                return [blob.blob for blob in missing]
            missing = unsupplied
        named = ", ".join(str(blob) for blob in missing[:NAMED_AT_MOST])
        more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
        where = "none of the --blobs files has its git blob id" if self.blobs is not None else (
            "give a file with exactly those bytes with --blobs (taken only if its git blob id matches)")
        raise EnvironmentProblem(f"{repo}: the mirror {mirror} is partial: it lacks {named}{more}; {where}, "
                                 "or use a complete mirror")

    def _drop_replaced(self, layers: Sequence[Layer]) -> None:
        """Delete the images a forced rebuild untagged, children first; one still in use stays."""
        from docker.errors import APIError

        for layer in layers:
            if layer.replaced:
                try:
                    self.client.images.remove(layer.replaced)
                except APIError:
                    pass

    # -- official images ------------------------------------------------------
    def _pulling(self) -> bool:
        if self.source == ImageSource.BUILD:
            return False
        if self.source == ImageSource.PULL:
            return True
        with self._guard:
            if self._pull is None:
                self._pull = registry_reachable()
            return self._pull

    def _pull_official(self, instance: TaskInstance) -> InstanceImage | None:
        from docker.errors import APIError, ImageNotFound
        from docker.utils import parse_repository_tag

        name = official_image(instance)
        started = time.monotonic()
        action = "reused"
        if not image_exists(self.client, name):
            self._say(f"pulling {name}")
            repository, tag = parse_repository_tag(name)
            try:
                self.client.images.pull(repository, tag=tag or "latest")
            except (ImageNotFound, APIError):
                return None
            action = "pulled"
        try:
            recipe = self.recipes.for_instance(instance)
        except UsageError:
            recipe = None  # a row that brings its own eval_script needs no recipe
        layer = Layer(name, action, time.monotonic() - started)
        return InstanceImage(instance.instance_id, name, recipe, pulled=True, layers=(layer,))

    def _ca_bundle(self) -> Path | None:
        """The bundle pip trusts in the environment layer: the host's, plus an extra one if given."""
        if self.ca_bundle is not None:
            return combined_bundle(self.ca_bundle)
        return next((path for path in SYSTEM_BUNDLES if path.is_file()), None)

    def _say(self, text: str) -> None:
        if self.echo:
            self.echo(text)


@dataclass(frozen=True)
class EnvironmentPlan:
    """Everything that goes into one environment layer; its hash is the layer's tag."""

    recipe: Recipe
    setup_commit: str
    base: str
    build_tools: tuple[str, ...]
    requirements: str
    build_requires: tuple[str, ...]

    @classmethod
    def make(cls, recipe: Recipe, mirror: Path, setup_commit: str, base: str, build_tools: Sequence[str]) -> EnvironmentPlan:
        requirements = ""
        if recipe.packages == "environment.yml":
            requirements = requirements_from_environment(mirror, setup_commit, recipe)
        elif recipe.packages == "requirements.txt":
            requirements = requirements_from_mirror(mirror, setup_commit, recipe.requirements_paths, recipe.repo,
                                                    recipe.requirement_replacements)
        build_requires = tuple(build_requirements(mirror, setup_commit)) if recipe.install.strip() else ()
        return cls(recipe, setup_commit, base, tuple(build_tools), requirements, build_requires)

    @property
    def tag(self) -> str:
        parts: dict[str, Any] = {
            "base": self.base,
            "script": self.script(),
            "requirements": self.requirements,
            "services": {name: service_script(name, "setup") for name in self.recipe.services},
        }
        data = {name: {path: hashlib.sha256(blob).hexdigest() for path, blob in service_data(name).items()}
                for name in self.recipe.services if service_data(name)}
        if data:  # only then: services without data files keep their environments' tags
            parts["service_data"] = data
        slug = self.recipe.repo.replace("/", "__")
        return f"{ENV_NAME}:{slug}-{self.recipe.version}-{content_hash(parts)}"

    @property
    def labels(self) -> dict[str, str]:
        return {
            "moe-agent.recipe": f"{self.recipe.repo} {self.recipe.version}",
            "moe-agent.setup-commit": self.setup_commit,
            **python_labels(self.recipe.interpreter),
        }

    def script(self, ca: bool = True) -> str:
        """The environment layer: venv, packages, the project's dependencies, services."""
        recipe = self.recipe
        lines = [*script_preamble(), *pip_environment(ca)]
        lines += ["step=virtualenv", f"python3 -m venv {VENV}", f"source {VENV}/bin/activate"]
        pip = "python -m pip install"
        if self.build_tools:
            lines += ["step=build-tools", f"{pip} {quoted(self.build_tools)}"]
        if self.build_requires:
            lines += ["step=build-requirements", f"{pip} {quoted(self.build_requires)}"]
        if recipe.packages and recipe.packages not in ("requirements.txt", "environment.yml"):
            lines += ["step=packages", f"{pip} {quoted(recipe.packages.split())}"]
        if self.requirements and recipe.packages == "environment.yml":
            # conda resolved the file's unpinned list against the pins that follow; pip does so with constraints
            lines += ["step=environment-yml", f"{pip} -r {REQUIREMENTS_FILE} -c {CONSTRAINTS_FILE}",
                      f"rm -f {REQUIREMENTS_FILE} {CONSTRAINTS_FILE}"]
        elif self.requirements:
            lines += ["step=requirements", f"{pip} -r {REQUIREMENTS_FILE}", f"rm -f {REQUIREMENTS_FILE}"]
        if recipe.pip_packages:
            lines += ["step=pip-packages", f"{pip} {quoted(recipe.pip_packages)}"]
        if recipe.compiler_cache:
            lines += ["step=compiler-cache", COMPILER_CACHE]
        if recipe.install.strip():
            # The project's own dependencies, resolved online at the setup commit; the
            # instance layer reinstalls the project itself offline at its base commit.
            # With a compiler cache, the build runs in the venv as the instance layer's
            # does (the build requirements are there), so the cache it warms is hit.
            install = f"{recipe.install} --no-build-isolation" if recipe.compiler_cache else recipe.install
            lines += [f"step='checkout {self.setup_commit[:12]}'", checkout_script(self.setup_commit)]
            lines += ["step=pre-install", *recipe.pre_install, "step=install", install]
        for service in recipe.services:  # the eval script starts it; see evals/services/
            lines += [f"step='service {service}'", f"bash /tmp/{service}-setup.sh {VENV}",
                      f"rm /tmp/{service}-setup.sh"]
        return "\n".join(lines) + "\n"


def instance_script(instance: TaskInstance, recipe: Recipe, ca: bool = True) -> str:
    """The instance layer: the repository at base_commit, installed without the index.

    The environment holds the dependencies of environment_setup_commit. A base commit can
    need one that commit dropped (pytest 4.6.1.dev needs importlib-metadata on every
    Python, 4.6.11 only below 3.8), or another version of one it has (pylint-7080's base
    commit requires astroid<=2.12.0-dev0,>=2.11.6; the 2.15 environment has 2.12.13).
    `pip check` finds both: missing packages are fetched by name, and the project's own
    requirements that the environment holds in a wrong version are installed as the
    project states them, so pip picks the newest version they allow, as upstream's
    `pip install -e .` at the base commit does. Only those few packages are fetched, where
    upstream re-resolves everything online; with nothing to fetch the layer needs no network.
    """
    lines = [*script_preamble(), *pip_environment(ca), f"step='checkout {instance.base_commit[:12]}'",
             checkout_script(instance.base_commit), f"source {VENV}/bin/activate", "step=pre-install",
             *recipe.pre_install]
    if recipe.install.strip():
        lines += ["step=install", recipe.eval_install, "step=missing-dependencies", MISSING_DEPENDENCIES,
                  "step=wrong-versions", WRONG_VERSIONS]
    return "\n".join(lines) + "\n"


def step_capabilities(script: str) -> list[str]:
    """The capabilities a build step gets back: apt's when its script runs apt, else none.

    Both build steps need the network (PyPI, the Debian mirror); they are otherwise
    confined like the model's sandbox by `run_and_commit`.
    """
    return list(APT_CAPABILITIES) if any(APT_COMMAND.search(line) for line in script.splitlines()) else []


def checkout_script(commit: str) -> str:
    """/testbed at `commit` with only its own history: tags that are its ancestors, one branch."""
    return "\n".join([
        f"rm -rf {TESTBED} && mkdir -p {TESTBED} && cd {TESTBED}",
        "git init --quiet",
        f"git --git-dir={MIRROR_MOUNT} tag --merged {commit} | sed 's|.*|+refs/tags/&:refs/tags/&|' > /tmp/moe-tags",
        f"git fetch --quiet --no-tags {MIRROR_MOUNT} {commit} $(cat /tmp/moe-tags)",
        f"git checkout --quiet -B main {commit}",
        "rm -f .git/FETCH_HEAD /tmp/moe-tags",
        "git reflog expire --expire=now --all",
    ])


def pip_environment(ca: bool) -> list[str]:
    """No cache (it would keep wheels of the setup commit), and the mounted CA bundle."""
    lines = ["export PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1"]
    if ca:
        lines.append("export " + " ".join(f"{k}={v}" for k, v in ca_environment(CONTAINER_BUNDLE).items()))
    return lines


def script_preamble() -> list[str]:
    """Stop at the first error and say which step it was in, as the last line of the log."""
    return ["set -eExuo pipefail", "step=start", """trap 'echo "moe-agent: step failed: $step"' ERR"""]


def instance_tag(instance: TaskInstance, recipe: Recipe, env: str) -> str:
    parts = {"environment": env, "script": instance_script(instance, recipe)}
    return f"{INSTANCE_NAME}:{instance.instance_id[:100]}-{content_hash(parts)}"


def official_image(instance: TaskInstance) -> str:
    """The row's own image, else the official `swebench/sweb.eval.x86_64.<id>` name."""
    return instance.image or OFFICIAL_IMAGE.format(key=instance.instance_id.replace("__", "_1776_").lower())


def requirements_from_mirror(mirror: Path, commit: str, paths: Sequence[str], repo: str = "",
                             replacements: Mapping[str, str] | None = None) -> str:
    """The first of `paths` present at `commit`, read with `git show`, `-r` includes inlined.

    Upstream downloads these files from raw.githubusercontent.com; the mirror has them.
    `replacements` maps a requirement yanked from PyPI to the one installed instead, its
    version specifier dropped (swebench 4.x clean_requirements).
    """
    for path in paths:
        text = show_file(mirror, commit, path)
        if text is not None:
            lines = _requirement_lines(mirror, commit, path, text, seen={path})
            return "\n".join(_replaced(line, replacements or {}) for line in lines) + "\n"
    raise UsageError(f"{repo or mirror}: none of {', '.join(paths) or '(no paths)'} exists at {commit[:12]}")


def requirements_from_environment(mirror: Path, commit: str, recipe: Recipe) -> str:
    """A conda environment.yml from the mirror, as pip requirements.

    Upstream builds a conda environment from the file (downloaded from
    raw.githubusercontent.com). Here each conda dependency is installed with pip under the
    name the recipe's `conda_to_pip` gives it, or its own; those mapped to "" (C libraries,
    conda-only packages) and `python` itself are left out; the file's own `pip:` list is
    kept as is. Conda's `name=1.2` becomes `name==1.2`.
    """
    import yaml

    for path in recipe.environment_paths:
        text = show_file(mirror, commit, path)
        if text is not None:
            break
    else:
        paths = ", ".join(recipe.environment_paths) or "(no environment_paths)"
        raise UsageError(f"{recipe.repo}: none of {paths} exists at {commit[:12]}")
    try:
        dependencies = (yaml.safe_load(text) or {}).get("dependencies") or []
    except (yaml.YAMLError, AttributeError) as exc:
        raise UsageError(f"{recipe.repo}: {path} at {commit[:12]} is not a conda environment file ({exc})") from None
    lines: list[str] = []
    for entry in dependencies:
        if isinstance(entry, dict):
            lines += [str(item) for item in entry.get("pip", [])]
            continue
        match = CONDA_SPEC.match(str(entry))
        if match is None:
            continue
        name, spec = match.groups()
        pip_name = recipe.conda_to_pip.get(name, name)
        if name == "python" or not pip_name:
            continue
        if spec.startswith("=") and not spec.startswith("=="):
            spec = "=" + spec
        lines.append(pip_name + spec.replace(" ", ""))
    return "\n".join(lines) + "\n"


def _requirement_lines(mirror: Path, commit: str, path: str, text: str, seen: set[str]) -> list[str]:
    lines: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("-r"):
            include = posixpath.normpath(posixpath.join(posixpath.dirname(path), stripped[2:].strip()))
            included = show_file(mirror, commit, include)
            if included is not None and include not in seen:
                lines += _requirement_lines(mirror, commit, include, included, seen | {include})
        elif stripped and stripped != "." and not stripped.startswith(REQUIREMENTS_DROPPED):
            lines.append(stripped)
    return lines


def _replaced(line: str, replacements: Mapping[str, str]) -> str:
    for old, new in replacements.items():
        if re.fullmatch(rf"{re.escape(old)}\s*([<>=!~;].*)?", line):
            return new
    return line


def build_requirements(mirror: Path, commit: str) -> list[str]:
    """pyproject's [build-system] requires: the offline reinstall builds without isolation."""
    text = show_file(mirror, commit, "pyproject.toml")
    if not text:
        return []
    try:
        requires = tomllib.loads(text).get("build-system", {}).get("requires", [])
    except tomllib.TOMLDecodeError:
        return []
    return [str(r) for r in requires] if isinstance(requires, list) else []


def service_data(name: str) -> dict[str, bytes]:
    """The files of `evals/services/<name>/` (a stand-in's server, its pages), by container path.

    The environment layer gets them as `/tmp/<name>-<file>`, beside `<name>-setup.sh`,
    which moves them where the service runs from. A service without that folder has none.
    """
    folder = SERVICES_DIR / name
    if not folder.is_dir():
        return {}
    return {f"/tmp/{name}-{path.name}": path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def service_script(name: str, part: str) -> str:
    path = SERVICES_DIR / f"{name}-{part}.sh"
    if not path.is_file():
        raise UsageError(f"recipe names service {name!r}, but {path} does not exist")
    return path.read_text(encoding="utf-8")


def python_labels(interpreter: Interpreter) -> dict[str, str]:
    return {
        "moe-agent.python.requested": interpreter.requested,
        "moe-agent.python": interpreter.version,
        "moe-agent.debian": interpreter.debian_release,
        "moe-agent.python.substituted": str(interpreter.substituted).lower(),
    }


def substitution_note(interpreter: Interpreter) -> str:
    return (f"Python {interpreter.requested} is in no Debian release; "
            f"ran on {interpreter.version} ({interpreter.debian_release})")


def unfaithful_note(recipe: Recipe) -> str:
    """The recipe's own word on why this version cannot match upstream ("" when it can)."""
    return f"{recipe.repo} {recipe.version} is not faithful: {recipe.unfaithful}" if recipe.unfaithful else ""


def label_changes(labels: dict[str, str]) -> list[str]:
    return [f"LABEL {key}={json.dumps(value)}" for key, value in labels.items()]


def content_hash(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def quoted(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def failure_text(exc: BaseException) -> str:
    """Our errors are one line for a human already; anything else gets its type named."""
    if isinstance(exc, SandboxError | AgentError):
        return str(exc)
    explanation = getattr(exc, "explanation", None) or str(exc) or "no detail"
    return f"{type(exc).__name__}: {str(explanation).splitlines()[0]}"


def build_images(builder: ImageBuilder, instances: Sequence[TaskInstance], workers: int = 1,
                 on_done: Callable[[ImageOutcome], None] | None = None) -> list[ImageOutcome]:
    """Ensure every instance's image; a failure is recorded for its instance, not raised."""

    def one(instance: TaskInstance) -> ImageOutcome:
        started = time.monotonic()
        try:
            outcome = ImageOutcome(instance, builder.ensure(instance), seconds=time.monotonic() - started)
        except Exception as exc:  # one instance's failure must not end the batch
            outcome = ImageOutcome(instance, error=failure_text(exc), seconds=time.monotonic() - started)
        if on_done:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, instances))
