"""Recipes: the transcribed spec tables, interpreter substitution and test directives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from swebench.harness.log_parsers import PARSER_REGISTRY
from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY

from agent.errors import UsageError
from evals.datasets import TaskInstance, load_instances
from evals.recipes import choose_interpreter, directives_for, load_recipes, recipe_for
from tests.shared_data import LOGS, SWEBENCH, official_index, verified

RECIPE_REPOS = ["psf/requests", "pallets/flask", "marshmallow-code/marshmallow", "pytest-dev/pytest", "sympy/sympy",
                "sphinx-doc/sphinx", "astropy/astropy", "pydata/xarray", "pylint-dev/pylint", "mwaskom/seaborn"]
OFFLINE_FLAGS = ["--no-build-isolation", "--no-index", "--no-deps"]



def shared_instances() -> list[TaskInstance]:
    return [i for path in sorted((SWEBENCH / "tasks").glob("*.jsonl")) for i in load_instances(path)]


@pytest.mark.swebench_data
def test_every_shared_instance_of_the_five_repos_has_a_recipe() -> None:
    wanted = {(i.repo, i.version) for i in shared_instances() if i.repo in RECIPE_REPOS}
    assert {repo for repo, _ in wanted} == set(RECIPE_REPOS)
    for repo, version in sorted(wanted):
        assert recipe_for(repo, version).version == version


@pytest.mark.parametrize("repo", RECIPE_REPOS)
def test_recipes_name_swebench_parser_and_offline_reinstall(repo: str) -> None:
    versions = [r for (name, _), r in load_recipes().items() if name == repo]
    assert versions
    for recipe in versions:
        assert PARSER_REGISTRY[recipe.log_parser] is MAP_REPO_TO_PARSER_PY[repo]
        assert recipe.offline_reinstall_flags == OFFLINE_FLAGS
        assert recipe.eval_install == f"{recipe.install} {' '.join(OFFLINE_FLAGS)}"
        assert recipe.test_cmd and recipe.install.startswith("python -m pip install")


def test_spec_table_entries_as_swebench_4_had_them() -> None:
    assert "pluggy==0.11.0" in recipe_for("pytest-dev/pytest", "4.5").pip_packages
    assert recipe_for("pytest-dev/pytest", "6.3").pre_install == ["sed -i 's/>=>=/>=/' setup.cfg"]
    assert recipe_for("pytest-dev/pytest", "7.0").pre_install == []
    flask = recipe_for("pallets/flask", "2.0")
    assert (flask.python, flask.packages) == ("3.9", "requirements.txt")
    assert {"Werkzeug==2.3.7", "click==8.0.1"} <= set(flask.pip_packages)
    assert flask.requirements_paths == ["requirements/dev.txt"]
    assert recipe_for("sympy/sympy", "1.12").packages == "mpmath flake8"
    assert recipe_for("sympy/sympy", "1.13").packages == "requirements.txt"
    assert recipe_for("sympy/sympy", "1.13").test_cmd.endswith("bin/test -C --verbose")
    requests = recipe_for("psf/requests", "2.27")
    assert (requests.install, requests.test_cmd, requests.services) == ("python -m pip install .", "pytest -rA", ["httpbin"])
    assert any("httpbin" in note for note in requests.notes)
    assert recipe_for("marshmallow-code/marshmallow", "3.0").install == "python -m pip install -e '.[dev]'"


def test_spec_entries_of_the_second_five_as_swebench_4_had_them() -> None:
    sphinx = recipe_for("sphinx-doc/sphinx", "4.1")
    assert sphinx.test_cmd == "tox --current-env -epy39 -v --"
    assert sphinx.pre_install[0] == "sed -i 's/pytest/pytest -rA/' tox.ini"
    assert "sed -i 's/Jinja2>=2.3/Jinja2<3.0/' setup.py" in sphinx.pre_install
    assert any("grep -q 'sphinxcontrib-htmlhelp>=2.0.0' setup.py" in step for step in sphinx.pre_install)
    # tox-current-env's .tox/py39/bin/python links to the venv's python: .tox/py39 must look like the venv
    tox_view = "mkdir -p .tox/py39 && cp \"$VIRTUAL_ENV/pyvenv.cfg\" .tox/py39/ && ln -sfn \"$VIRTUAL_ENV/lib\" .tox/py39/lib"
    assert recipe_for("sphinx-doc/sphinx", "5.0").pre_install == ["sed -i 's/pytest/pytest -rA/' tox.ini", tox_view]
    assert all(recipe_for("sphinx-doc/sphinx", v).pre_install[1] == tox_view for v in ("1.5", "3.4", "4.1", "4.3", "7.2", "8.1"))
    assert recipe_for("sphinx-doc/sphinx", "7.2").pre_install[-1] == "apt-get update && apt-get install -y graphviz"
    assert recipe_for("sphinx-doc/sphinx", "8.0").unfaithful  # tox's py39 on another Python: said, not hidden
    # uncapped docutils: the last before 0.18 (footnote HTML) and 0.22 (no docutils.utils.roman), Sphinx 4.0's own cap
    assert "docutils==0.17.1" in recipe_for("sphinx-doc/sphinx", "3.4").pip_packages
    # uncapped sphinxcontrib-jsmath: PyPI's 2.0.0 refuses Sphinx < 5; upstream's 2024 images got 1.0.1
    assert all("sphinxcontrib-jsmath==1.0.1" in recipe_for("sphinx-doc/sphinx", v).pip_packages
               for v in ("1.5", "3.4", "4.1", "4.4", "5.0", "7.2", "8.1"))
    assert not any(p.startswith("docutils") for p in recipe_for("sphinx-doc/sphinx", "4.1").pip_packages)
    assert recipe_for("pylint-dev/pylint", "2.8").pip_packages == ["pyenchant==3.2"]
    assert recipe_for("pylint-dev/pylint", "3.0").pip_packages == ["astroid==3.0.0a6", "setuptools"]
    assert recipe_for("pylint-dev/pylint", "2.15").requirements_paths == ["requirements_test.txt"]
    assert recipe_for("mwaskom/seaborn", "0.12").install == "python -m pip install -e .[dev]"
    assert "pandas==1.3.5" in recipe_for("mwaskom/seaborn", "0.11").pip_packages
    astropy = recipe_for("astropy/astropy", "5.1")
    assert "numpy==1.25.2" in astropy.pip_packages and astropy.install == "python -m pip install -e .[test] --verbose"
    assert "setuptools==68.0.0" in astropy.pre_install[0] and recipe_for("astropy/astropy", "3.1").pre_install == []
    old = recipe_for("astropy/astropy", "1.3")
    assert old.test_cmd == "pytest -rA -vv -o console_output_style=classic --tb=no" and "Python 3.6" in old.unfaithful
    xarray = recipe_for("pydata/xarray", "2022.06")
    assert (xarray.packages, xarray.environment_paths[0]) == ("environment.yml", "ci/requirements/environment.yml")
    assert (xarray.interpreter.requested, xarray.interpreter.version) == ("3.10", "3.9")  # where numpy 1.23.0 has wheels
    # on 3.9 PyPI's newest numbagg for it (0.9.2) fails to import (typing.TypeAlias): the rolling_exp tests were skipped
    assert "numbagg==0.8.2" in recipe_for("pydata/xarray", "0.12").pip_packages


def test_sphinx_tox_link_starts_the_venv(tmp_path: Path) -> None:
    """tox-current-env runs `.tox/py39/bin/python`, a link to the venv's python: bare, it starts without the venv."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "only_in_the_venv.py").write_text("")
    testbed = tmp_path / "testbed"
    (testbed / ".tox" / "py39" / "bin").mkdir(parents=True)
    link = testbed / ".tox" / "py39" / "bin" / "python"
    link.symlink_to(venv / "bin" / "python")  # what tox-current-env makes (os.symlink(sys.executable, ...))

    def imports() -> bool:
        return subprocess.run([link, "-c", "import only_in_the_venv"], capture_output=True).returncode == 0

    assert not imports()  # the failure every sphinx test run had: "No module named pytest"
    step = recipe_for("sphinx-doc/sphinx", "3.4").pre_install[1]
    subprocess.run(["bash", "-euc", step], cwd=testbed, env={**os.environ, "VIRTUAL_ENV": str(venv)}, check=True)
    assert imports()
    subprocess.run(["bash", "-euc", step], cwd=testbed, env={**os.environ, "VIRTUAL_ENV": str(venv)}, check=True)
    assert imports()  # the step runs in the environment layer and again in the instance layer


def test_interpreter_substitution_is_recorded() -> None:
    same = recipe_for("pallets/flask", "2.0").model_dump()["interpreter"]
    assert same == {"requested": "3.9", "version": "3.9", "debian_release": "bullseye", "substituted": False}
    swapped = recipe_for("pallets/flask", "2.1").model_dump()["interpreter"]
    assert swapped == {"requested": "3.10", "version": "3.11", "debian_release": "bookworm", "substituted": True}


@pytest.mark.parametrize(
    ("requested", "version", "release"),
    [("3.6", "3.9", "bullseye"), ("3.7", "3.9", "bullseye"), ("3.8", "3.9", "bullseye"),
     ("3.11", "3.11", "bookworm"), ("3.12", "3.13", "trixie"), ("3.13", "3.13", "trixie")],
)
def test_nearest_debian_python(requested: str, version: str, release: str) -> None:
    chosen = choose_interpreter(requested)
    assert (chosen.version, chosen.debian_release, chosen.substituted) == (version, release, version != requested)


def test_unknown_repo_or_version_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"no recipe for repository 'django/django'; recipes exist for .*psf/requests"):
        recipe_for("django/django", "3.0")
    with pytest.raises(UsageError, match=r"no recipe for psf/requests version '9.9'; known versions: 0.7, "):
        recipe_for("psf/requests", "9.9")


RECIPE_FILE = """
repo = "x/y"
log_parser = "{parser}"
offline_reinstall_flags = []
[[specs]]
versions = ["1.0"{extra_version}]
python = "3.9"
install = "pip install ."
test_cmd = "pytest -rA"
{extra}
"""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"parser": "parse_log_nothing"}, "no log parser named 'parse_log_nothing'"),
        ({"extra_version": ', "1.0"'}, "version 1.0 is defined twice"),
        ({"extra": "colour = 'blue'"}, "colour"),
        ({"extra": "python_substitute = '3.10'"}, "python_substitute 3.10 is in no Debian release"),
    ],
)
def test_bad_recipe_files_are_rejected(tmp_path: Path, fields: dict, message: str) -> None:
    values = {"parser": "parse_log_pytest", "extra_version": "", "extra": ""} | fields
    (tmp_path / "x__y.toml").write_text(RECIPE_FILE.format(**values), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        load_recipes(tmp_path)


def official_evaluations() -> list[tuple[TaskInstance, list[str]]]:
    """Each official log's task row and the lines of the eval.sh the harness ran; [] without the data."""
    return [(verified()[e["instance_id"]], (LOGS / e["dir"] / "eval.sh").read_text(encoding="utf-8").splitlines())
            for e in official_index()]


def official_test_line(script: list[str]) -> str:
    """The line after the test patch's heredoc is the test command."""
    return script[script.index("EOF_114329324912") + 1]


@pytest.mark.swebench_data
@pytest.mark.parametrize(("instance", "script"), official_evaluations(), ids=lambda v: getattr(v, "instance_id", ""))
def test_test_directives_match_the_official_eval_scripts(instance: TaskInstance, script: list[str]) -> None:
    directives = directives_for(instance)
    assert directives
    assert official_test_line(script).endswith(" " + " ".join(directives))
    if instance.repo in RECIPE_REPOS:
        assert recipe_for(instance.repo, instance.version).test_command(instance) == official_test_line(script)


def test_directives_drop_data_files_and_name_django_modules() -> None:
    patch = (
        "diff --git a/tests/admin/tests.py b/tests/admin/tests.py\n"
        "diff --git a/tests/admin/fixtures/data.json b/tests/admin/fixtures/data.json\n"
        "diff --git a/tests/forms/widgets/test_select.py b/tests/forms/widgets/test_select.py\n"
    )
    row = {"instance_id": "x", "base_commit": "c", "version": "3.0", "problem_statement": "",
           "FAIL_TO_PASS": [], "PASS_TO_PASS": [], "test_patch": patch}
    django = TaskInstance.model_validate({**row, "repo": "django/django"})
    assert directives_for(django) == ["admin.tests", "forms.widgets.test_select"]
    other = TaskInstance.model_validate({**row, "repo": "psf/requests"})
    assert directives_for(other) == ["tests/admin/tests.py", "tests/forms/widgets/test_select.py"]
