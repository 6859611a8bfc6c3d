"""Task images: layer plans and tags, requirements from the mirror, and real offline builds."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError, ImageNotFound

from agent.cli import main
from agent.errors import UsageError
from evals import images
from evals.datasets import TaskInstance
from evals.images import (
    APT_CAPABILITIES,
    CONDA_ACTIVATE,
    EnvironmentPlan,
    ImageBuilder,
    ImageSource,
    RecipeBook,
    build_requirements,
    instance_script,
    official_image,
    python_labels,
    requirements_from_mirror,
    step_capabilities,
)
from evals.recipes import recipe_for
from evals.repos import RepoSource
from evals.sample_tasks import SampleProject, make_sample_project, sample_image_builder
from sandbox.base import SandboxError
from sandbox.images import BUILD_MEMORY
from tests.evals.test_repos import git, make_repo


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, str]:
    commit = make_repo(tmp_path / "work", {
        "requirements/dev.txt": "-r tests.txt\n-e .\n# a comment\n.[test]\nflake8==7.0\n\n",
        "requirements/tests.txt": "pytest==8.0\n-r ../base.txt\n",
        "base.txt": "click\n",
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61", "setuptools_scm[toml]"]\n',
    })
    return tmp_path / "work" / ".git", commit


def test_requirements_come_from_the_mirror_with_includes_inlined(mirror: tuple[Path, str]) -> None:
    git_dir, commit = mirror
    text = requirements_from_mirror(git_dir, commit, ["requirements/missing.txt", "requirements/dev.txt"])
    assert text.splitlines() == ["pytest==8.0", "click", "flake8==7.0"]
    with pytest.raises(UsageError, match="none of nope.txt exists at"):
        requirements_from_mirror(git_dir, commit, ["nope.txt"], "acme/tool")


def test_requirements_drop_the_project_itself_and_replace_yanked_packages(tmp_path: Path) -> None:
    """pylint's requirements_test.txt: `.[testutils,spelling]` and the yanked types-pkg_resources."""
    commit = make_repo(tmp_path / "work", {"requirements_test.txt": (
        "-r requirements_test_min.txt\ntypes-pkg_resources==0.1.3\n.[testutils,spelling]\n.\n"
        "-e .[testutils,spelling]\npytest~=7.2\n"), "requirements_test_min.txt": "astroid==2.12.13  # pinned\n"})
    text = requirements_from_mirror(tmp_path / "work" / ".git", commit, ["requirements_test.txt"], "pylint-dev/pylint",
                                    recipe_for("pylint-dev/pylint", "2.15").requirement_replacements)
    assert text.splitlines() == ["astroid==2.12.13  # pinned", "types-setuptools", "pytest~=7.2"]


def test_build_requirements_are_read_from_pyproject(mirror: tuple[Path, str], tmp_path: Path) -> None:
    git_dir, commit = mirror
    assert build_requirements(git_dir, commit) == ["setuptools>=61", "setuptools_scm[toml]"]
    broken = make_repo(tmp_path / "broken", {"pyproject.toml": "[build-system\n"})
    assert build_requirements(tmp_path / "broken" / ".git", broken) == []


def test_environment_plan_tag_follows_its_inputs(mirror: tuple[Path, str]) -> None:
    git_dir, commit = mirror
    recipe = recipe_for("pallets/flask", "2.0")  # packages = "requirements.txt"
    recipe = recipe.model_copy(update={"requirements_paths": ["requirements/dev.txt"]})
    plan = EnvironmentPlan.make(recipe, git_dir, commit, "base:1", images.BUILD_TOOLS)
    assert plan.requirements.splitlines() == ["pytest==8.0", "click", "flake8==7.0"]
    assert plan.build_requires == ("setuptools>=61", "setuptools_scm[toml]")
    assert plan.tag.startswith("moe-swebench-env:pallets__flask-2.0-")
    assert plan.tag == EnvironmentPlan.make(recipe, git_dir, commit, "base:1", images.BUILD_TOOLS).tag
    assert plan.tag != EnvironmentPlan.make(recipe, git_dir, commit, "base:2", images.BUILD_TOOLS).tag
    assert plan.tag != EnvironmentPlan.make(recipe, git_dir, commit, "base:1", ()).tag
    pinned = recipe.model_copy(update={"pip_packages": ["Werkzeug==3.0"]})
    assert plan.tag != EnvironmentPlan.make(pinned, git_dir, commit, "base:1", images.BUILD_TOOLS).tag


def test_environment_script_installs_in_upstream_order(mirror: tuple[Path, str]) -> None:
    git_dir, commit = mirror
    recipe = recipe_for("psf/requests", "2.4").model_copy(update={"pip_packages": ["six==1.16"]})
    script = EnvironmentPlan.make(recipe, git_dir, commit, "base:1", images.BUILD_TOOLS).script(ca=True)
    steps = [line for line in script.splitlines() if line.startswith("step=")]
    assert steps == ["step=start", "step=virtualenv", "step=build-tools", "step=build-requirements", "step=packages",
                     "step=pip-packages", f"step='checkout {commit[:12]}'", "step=pre-install", "step=install",
                     "step='service httpbin'"]
    assert "python -m pip install pytest" in script  # the conda list, installed with pip
    assert "export SSL_CERT_FILE=/etc/moe-agent/ca-bundle.crt" in script
    assert f"git fetch --quiet --no-tags /mirror {commit}" in script
    assert "--no-index" not in script  # the environment layer is the one that reaches PyPI
    offline = EnvironmentPlan.make(recipe, git_dir, commit, "base:1", ()).script(ca=False)
    assert "build-tools" not in offline and "SSL_CERT_FILE" not in offline


def test_a_services_data_files_are_part_of_the_environment(mirror: tuple[Path, str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    git_dir, commit = mirror
    sphinx = recipe_for("sphinx-doc/sphinx", "3.4")
    plan = EnvironmentPlan.make(sphinx, git_dir, commit, "base:1", images.BUILD_TOOLS)
    assert plan.script().splitlines()[-3:] == ["step='service sphinx-links'",
                                               "bash /tmp/sphinx-links-setup.sh /opt/venv",
                                               "rm /tmp/sphinx-links-setup.sh"]
    assert images.service_data("httpbin") == {}  # a service without data files: requests' tags stay as they were
    served, tag = images.service_data("sphinx-links"), plan.tag
    monkeypatch.setattr(images, "service_data", lambda name: {**served, "/tmp/sphinx-links-sites.json": b"{}"})
    assert plan.tag != tag  # another page served: another environment


def test_compiler_cache_is_warmed_by_the_environment_as_the_instance_compiles(mirror: tuple[Path, str]) -> None:
    """astropy: ccache first on the venv's PATH, and the setup commit built the way the instance layer builds."""
    git_dir, commit = mirror
    recipe = recipe_for("astropy/astropy", "5.0")
    assert recipe.compiler_cache
    script = EnvironmentPlan.make(recipe, git_dir, commit, "base:1", images.BUILD_TOOLS).script(ca=False)
    assert script.index("step=pip-packages") < script.index("step=compiler-cache") < script.index("step='checkout")
    assert "ln -sf /usr/bin/ccache /opt/venv/bin/$compiler" in script
    assert "x86_64-linux-gnu-gcc" in script  # the name Debian's distutils calls
    assert "python -m pip install -e .[test] --verbose --no-build-isolation" in script
    assert step_capabilities(script) == APT_CAPABILITIES
    plain = recipe_for("pytest-dev/pytest", "6.3")
    plain_script = EnvironmentPlan.make(plain, git_dir, commit, "base:1", images.BUILD_TOOLS).script(ca=False)
    assert "ccache" not in plain_script and "--no-build-isolation" not in plain_script
    instance = instance_script(sample_row(repo="astropy/astropy", version="5.0"), recipe)
    assert "ccache" not in instance  # the environment's venv carries it into the instance layer and eval.sh
    assert "--no-build-isolation --no-index --no-deps" in instance


def test_conda_environment_files_become_pip_requirements_under_the_pins(tmp_path: Path) -> None:
    """xarray's ci/requirements/environment.yml, read from the mirror, installed with pip."""
    commit = make_repo(tmp_path / "work", {"ci/requirements/environment.yml": (
        "name: xarray-tests\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.10\n  - hdf5\n"
        "  - matplotlib-base\n  - numpy<1.24  # a comment\n  - fsspec!=2021.7.0\n  - pint=0.19\n  - pip\n"
        "  - pip:\n      - numbagg\n")})
    git_dir = tmp_path / "work" / ".git"
    recipe = recipe_for("pydata/xarray", "2022.09")
    plan = EnvironmentPlan.make(recipe, git_dir, commit, "base:1", ())
    assert plan.requirements.splitlines() == ["matplotlib", "numpy<1.24", "fsspec!=2021.7.0", "pint==0.19", "numbagg"]
    script = plan.script(ca=False)
    assert "python -m pip install -r /tmp/moe-requirements.txt -c /tmp/moe-constraints.txt" in script
    assert script.index("step=environment-yml") < script.index("step=pip-packages")  # then the pins, as upstream
    missing = recipe.model_copy(update={"environment_paths": ["nope.yml"]})
    with pytest.raises(UsageError, match="none of nope.yml exists at"):
        EnvironmentPlan.make(missing, git_dir, commit, "base:1", ())


def test_instance_script_installs_offline_at_base_commit() -> None:
    row = sample_row(repo="pytest-dev/pytest", version="6.3")
    script = instance_script(row, recipe_for("pytest-dev/pytest", "6.3"))
    assert f"git checkout --quiet -B main {row.base_commit}" in script
    assert "sed -i 's/>=>=/>=/' setup.cfg" in script
    offline = "python -m pip install -e . --no-build-isolation --no-index --no-deps"
    assert script.index(offline) < script.index("step=missing-dependencies") < script.index("pip check")
    assert "requires \\(.*\\), which is not installed" in script  # only absent packages are fetched
    assert script.index("step=missing-dependencies") < script.index("step=wrong-versions")  # then wrong versions


def wheel(folder: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    """A pure-Python wheel made by hand, so that pip installs it with no index and no build."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\n" f"Name: {name}\nVersion: {version}\n"
                            + "".join(f"Requires-Dist: {req}\n" for req in requires),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: moe-agent-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\n" for path in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)


@pytest.mark.parametrize("layout", ["pep660", "egg-link"])
def test_instance_layer_fetches_what_the_base_commit_requires_in_another_version(tmp_path: Path, layout: str) -> None:
    """pylint-7080: the base commit requires astroid<=2.12.0-dev0,>=2.11.6, the 2.15 environment has 2.12.13.

    The steps run as the instance layer runs them, in a real venv, against a local index of
    hand-made wheels: the project's wrong version is replaced by the newest one its
    requirement allows (what `pip install -e .` at the base commit picks), a missing one is
    fetched, and a conflict between two of the environment's own packages is left alone.
    """
    index, testbed, venv = tmp_path / "index", tmp_path / "testbed", tmp_path / "venv"
    index.mkdir()
    for version in ("2.11.6", "2.11.7", "2.12.13"):
        wheel(index, "astroid", version)
    wheel(index, "dill", "0.3.6")
    wheel(index, "packaging", "23.1")
    wheel(index, "vcs_versioning", "2.6.0", ("packaging>=26.2",))  # xarray 0.12's: not the project's business
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(index), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([python, "-m", "pip", "install", "-q", "astroid==2.12.13", "vcs_versioning", "packaging==23.1",
                    "--no-deps"], env=offline, check=True)
    # the project as `pip install -e . --no-deps` leaves it: metadata beside the checkout or in site-packages
    requires = ["astroid<=2.12.0-dev0,>=2.11.6", 'dill>=0.2; python_version >= "3"']
    metadata = "Metadata-Version: 2.1\nName: Pylint\nVersion: 2.15.0.dev0\n" + "".join(
        f"Requires-Dist: {req}\n" for req in requires)
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip())
    if layout == "egg-link":
        (testbed / "pylint.egg-info").mkdir(parents=True)
        (testbed / "pylint.egg-info" / "PKG-INFO").write_text(metadata)
        (testbed / "pylint.egg-info" / "requires.txt").write_text(  # setuptools' form of the same requirements
            'astroid<=2.12.0-dev0,>=2.11.6\n\n[:python_version >= "3"]\ndill>=0.2\n')
        (site / "easy-install.pth").write_text(f"{testbed}\n")
    else:
        testbed.mkdir()
        info = site / "pylint-2.15.0.dev0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(metadata)
        (info / "direct_url.json").write_text(json.dumps({"url": testbed.as_uri(), "dir_info": {"editable": True}}))
    script = "\n".join(["set -euo pipefail", f"source {venv}/bin/activate", images.MISSING_DEPENDENCIES,
                        images.WRONG_VERSIONS])
    built = subprocess.run(["bash", "-c", script], cwd=testbed, env=offline, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "the base commit needs astroid<=2.12.0-dev0,>=2.11.6 where the environment has other versions" in built.stdout
    installed = subprocess.run([python, "-m", "pip", "list", "--format", "json"], capture_output=True, text=True,
                               check=True).stdout
    versions = {row["name"].lower(): row["version"] for row in json.loads(installed)}
    assert (versions["astroid"], versions["dill"], versions["packaging"]) == ("2.11.7", "0.3.6", "23.1")
    check = subprocess.run([python, "-m", "pip", "check"], capture_output=True, text=True).stdout
    assert check.strip() == "vcs-versioning 2.6.0 has requirement packaging>=26.2, but you have packaging 23.1."


def test_python_substitution_is_recorded() -> None:
    recipe = recipe_for("pallets/flask", "2.1")  # asks for 3.10, which Debian lacks
    assert python_labels(recipe.interpreter) == {
        "moe-agent.python.requested": "3.10", "moe-agent.python": "3.11",
        "moe-agent.debian": "bookworm", "moe-agent.python.substituted": "true",
    }
    assert images.substitution_note(recipe.interpreter) == "Python 3.10 is in no Debian release; ran on 3.11 (bookworm)"


def test_official_image_names() -> None:
    assert official_image(sample_row()) == "swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"
    assert official_image(sample_row(image="registry.example/x:1")) == "registry.example/x:1"


def test_extra_recipes_come_first_and_unknown_versions_are_named(tmp_path: Path) -> None:
    (tmp_path / "psf__requests.toml").write_text(
        'repo = "psf/requests"\nlog_parser = "parse_log_pytest"\noffline_reinstall_flags = []\n'
        '[[specs]]\nversions = ["2.4"]\npython = "3.11"\ninstall = ""\ntest_cmd = "pytest"\n'
    )
    book = RecipeBook([tmp_path])
    assert book.for_instance(sample_row()).python == "3.11"
    assert RecipeBook().for_instance(sample_row()).python == "3.9"
    with pytest.raises(UsageError, match=r"no recipe for psf/requests 9\.9 \(known versions: .*2\.4"):
        book.for_instance(sample_row(version="9.9"))
    with pytest.raises(UsageError, match="no recipe for that repository"):
        book.for_instance(sample_row(repo="acme/tool"))
    with pytest.raises(UsageError, match="no such directory"):
        RecipeBook([tmp_path / "missing"])


def test_pull_mode_uses_official_images_and_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    present = FakeClient(present={"swebench/sweb.eval.x86_64.psf_1776_requests-2317:latest"})
    pulled = ImageBuilder(present, RepoSource(str(tmp_path)), source=ImageSource.PULL).ensure(sample_row())
    assert pulled.pulled and pulled.activate == CONDA_ACTIVATE and pulled.services == []
    assert pulled.recipe is not None and pulled.recipe.repo == "psf/requests"

    with pytest.raises(SandboxError, match="no official image swebench/sweb.eval"):
        ImageBuilder(FakeClient(), RepoSource(str(tmp_path)), source=ImageSource.PULL).ensure(sample_row())

    monkeypatch.setattr(images, "registry_reachable", lambda: False)
    auto = ImageBuilder(present, RepoSource(str(tmp_path)))
    with pytest.raises(UsageError, match="no mirror of psf/requests"):  # offline: it builds, from a mirror
        auto.ensure(sample_row())


# -- real builds on the sample project (Docker) --------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return make_sample_project(tmp_path_factory.mktemp("sample"), bugs=1, salt=uuid.uuid4().hex)


@pytest.fixture(scope="module")
def made_tags(docker_client: Any) -> Iterator[list[str]]:
    """Images the tests build; removed afterwards, newest first (the base stays)."""
    tags: list[str] = []
    yield tags
    for tag in reversed(tags):
        with contextlib.suppress(APIError):
            docker_client.images.remove(tag, force=True)


@pytest.mark.docker
def test_layers_build_once_then_are_reused(docker_client: Any, sandbox_image: str, sample: SampleProject,
                                           made_tags: list[str]) -> None:
    first = sample_image_builder(docker_client, sample).ensure(sample.instance("1"))
    made_tags += [layer.tag for layer in first.layers[1:]]
    assert [layer.action for layer in first.layers] == ["reused", "built", "built"]
    assert first.layers[0].tag == sandbox_image

    again = sample_image_builder(docker_client, sample).ensure(sample.instance("1"))  # a fresh builder: no memory
    assert [layer.action for layer in again.layers] == ["reused", "reused", "reused"]
    assert docker_client.images.get(again.tag).id == docker_client.images.get(first.tag).id

    rebuilt = sample_image_builder(docker_client, sample, force=True).ensure(sample.instance("1"))
    assert [layer.action for layer in rebuilt.layers] == ["reused", "built", "built"]


@pytest.mark.docker
def test_instance_image_hides_the_future(docker_client: Any, sample: SampleProject, made_tags: list[str]) -> None:
    instance = sample.instance("1")
    image = sample_image_builder(docker_client, sample).ensure(instance)
    made_tags.append(image.tag)
    probe = (f"git rev-parse HEAD; git tag; git branch --format='%(refname:short)'; "
             f"git cat-file -e {sample.fix_commit} 2>/dev/null && echo FUTURE-VISIBLE || echo future-hidden; "
             "git status --porcelain; cd / && python -c 'import calc; print(calc.__file__)'")
    out = docker_client.containers.run(image.tag, ["bash", "-c", f"source /opt/venv/bin/activate && {probe}"],
                                       network_mode="none", remove=True).decode().split()
    assert out == [instance.base_commit, "v0.1", "main", "future-hidden", "/testbed/calc/__init__.py"]
    config = docker_client.images.get(image.tag).attrs["Config"]
    assert config["Labels"]["moe-agent.instance"] == instance.instance_id
    assert config["Labels"]["moe-agent.python"] == "3.11"
    assert not config.get("Volumes")  # the build's bind mounts are not baked in
    assert config["Cmd"] == ["sleep", "infinity"]


@pytest.mark.docker
def test_images_command_json(docker_client: Any, sample: SampleProject, made_tags: list[str],
                             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    builder = sample_image_builder(docker_client, sample)
    monkeypatch.setattr("agent.cli.eval._image_builder", lambda *args, **kwargs: builder)
    wanted = sample.instance("1").instance_id
    monkeypatch.setattr(sys, "argv", ["agent", "eval", "images", "--dataset", str(sample.dataset), "--instance-ids",
                                      wanted, "--json"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 0
    report = json.loads(capsys.readouterr().out)  # no progress lines around the document
    made_tags += [layer["tag"] for layer in report["images"][0]["layers"][1:]]
    assert (report["ready"], report["total"]) == (1, 1)
    image = report["images"][0]
    assert image["instance_id"] == wanted and image["image"] == image["layers"][2]["tag"]
    assert [layer["action"] in ("built", "reused") for layer in image["layers"]] == [True] * 3
    assert docker_client.images.get(image["image"]).labels["moe-agent.instance"] == wanted


@pytest.mark.docker
def test_failed_build_names_the_step_and_is_not_retried(docker_client: Any, sample: SampleProject,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    builder = sample_image_builder(docker_client, sample)
    with pytest.raises(SandboxError) as failed:
        builder.ensure(sample.instance("broken"))
    message = str(failed.value)
    assert "image build failed at step 'environment'" in message
    assert "this recipe fails on purpose" in message and "step failed: pre-install" in message

    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a failed layer must not be built again in the same run")

    monkeypatch.setattr(images, "run_and_commit", explode)
    with pytest.raises(SandboxError, match="step failed: pre-install"):
        builder.ensure(sample.instance("broken"))


def test_rows_without_setup_commit_share_their_versions_environment(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """10 of 57 Verified rows lack environment_setup_commit: one environment per version, not per row."""
    work = tmp_path / "work"
    old = make_repo(work, {"setup.py": "x = 1\n"})
    (work / "setup.py").write_text("x = 2\n")
    later = {"GIT_COMMITTER_DATE": "2030-01-01T00:00:00", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
             "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    subprocess.run(["git", "commit", "--quiet", "-am", "two"], cwd=work, env={**os.environ, **later}, check=True)
    new = git(work, "rev-parse", "HEAD")
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(work), str(tmp_path / "m" / "psf__requests.git")],
                   check=True)
    bare = [sample_row(instance_id=f"psf__requests-{n}", base_commit=commit) for n, commit in ((1, new), (2, old))]
    client = FakeClient()
    built: list[str] = []

    def fake_commit(client_: Any, base: str, script: str, tag: str, **kwargs: Any) -> None:
        built.append(tag)
        client.present.add(tag)

    monkeypatch.setattr(images, "run_and_commit", fake_commit)
    monkeypatch.setattr(images, "build_image", lambda recipe, client_, **kw: client.present.add(recipe.tag))
    builder = ImageBuilder(client, RepoSource(str(tmp_path / "m")), source=ImageSource.BUILD, dataset=bare)
    made = [builder.ensure(row) for row in bare]
    environments = {image.layers[1].tag for image in made}
    assert len(environments) == 1 and len([t for t in built if t.startswith("moe-swebench-env:")]) == 1
    assert made[1].layers[1].action == "reused"
    note = f"no row of psf/requests 2.4 names an environment_setup_commit: the version's environment is " \
           f"installed at its newest base commit in the dataset ({new[:12]})"
    assert all(image.caveats == (note,) for image in made)

    named = [*bare, sample_row(instance_id="psf__requests-3", base_commit=old, environment_setup_commit=old)]
    builder = ImageBuilder(client, RepoSource(str(tmp_path / "m")), source=ImageSource.BUILD, dataset=named)
    image = builder.ensure(named[0])
    assert image.caveats == (f"no environment_setup_commit in the row: the environment of psf/requests 2.4 is the "
                             f"one its other rows name ({old[:12]})",)
    assert builder.ensure(named[2]).layers[1].tag == image.layers[1].tag and builder.ensure(named[2]).caveats == ()


def sample_row(**overrides: Any) -> TaskInstance:
    row = {
        "repo": "psf/requests", "instance_id": "psf__requests-2317", "version": "2.4",
        "base_commit": "091991be0da19de9108dbe5e3752917fea3d7fdc", "problem_statement": "",
        "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]", "test_patch": "diff --git a/t.py b/t.py\n",
    }
    return TaskInstance.model_validate(row | overrides)


class FakeClient:
    """Just enough of docker's client for the pull path: some images exist, pulls fail."""

    def __init__(self, present: set[str] | None = None) -> None:
        self.present = present or set()
        self.images = self

    def get(self, name: str) -> object:
        if name not in self.present:
            raise ImageNotFound(name)
        return object()

    def pull(self, repository: str, tag: str = "latest") -> None:
        raise ImageNotFound(f"{repository}:{tag}")



@pytest.mark.parametrize(("args", "message"), [
    (["--recipes", "no-such-dir"], "--recipes no-such-dir: no such directory"),
    (["--repos", "no-such-dir"], "not a folder of mirrors, nor a URL template"),
    (["--instance-ids", "nope__nope-1"], "not in the dataset: nope__nope-1"),
])
def test_images_command_usage_errors(args: list[str], message: str, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    project = make_sample_project(tmp_path / "sample", bugs=1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["agent", "eval", "images", "--dataset", str(project.dataset), *args])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    assert message in capsys.readouterr().err.replace("\n", "")


def test_build_steps_get_back_only_the_capabilities_apt_needs() -> None:
    assert step_capabilities("set -e\npython -m pip install .\necho 'apt'\ncat aptitude.log\n") == []
    assert step_capabilities("step=pre-install\napt-get update && apt-get install -y graphviz\n") == APT_CAPABILITIES
    assert step_capabilities("true; apt install -y hunspell\n") == APT_CAPABILITIES


def test_environment_and_instance_builds_are_confined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    make_repo(work, {"setup.py": "x = 1\n"})
    subprocess.run(["git", "clone", "--quiet", "--mirror", str(work), str(tmp_path / "m" / "psf__requests.git")],
                   check=True)
    row = sample_row(base_commit=git(work, "rev-parse", "HEAD"), environment_setup_commit="")
    client = FakeClient()
    calls: dict[str, dict[str, Any]] = {}

    def fake_commit(client_: Any, base: str, script: str, tag: str, **kwargs: Any) -> None:
        calls[kwargs["step"]] = kwargs
        client.present.add(tag)

    monkeypatch.setattr(images, "run_and_commit", fake_commit)
    monkeypatch.setattr(images, "build_image", lambda recipe, client_, **kw: client.present.add(recipe.tag))
    ImageBuilder(client, RepoSource(str(tmp_path / "m")), source=ImageSource.BUILD, dataset=[row]).ensure(row)
    assert set(calls) == {"environment", "instance"}
    for kwargs in calls.values():
        assert kwargs["capabilities"] == [] and kwargs["memory"] == BUILD_MEMORY and kwargs["user"] == "root"
        assert "USER root" in kwargs["changes"]  # task images run as root, as the official ones
        assert not any("docker.sock" in host for host in kwargs["volumes"])
        assert "environment" not in kwargs  # nothing of the host's environment
