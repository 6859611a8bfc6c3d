"""The official-image path (`--pull`): an image laid out as swebench's, picked, started and graded.

No registry here, so the image is made locally with the official layout: the repository
in /testbed, a conda-style `testbed` environment under /opt/miniconda3 that the official
eval scripts activate with `source /opt/miniconda3/bin/activate && conda activate testbed`,
and no /opt/venv (the layout our own images use), so nothing can fall back on it. The row
names the image, as newer rows do; the builder, in pull mode, finds it present and uses it.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError
from swebench.harness.constants import END_TEST_OUTPUT, START_TEST_OUTPUT

from evals.datasets import TaskInstance
from evals.grade import GradeSettings, Outcome, validate
from evals.images import CONDA_ACTIVATE, IMAGE_CHANGES, ImageBuilder, ImageSource, RecipeBook
from evals.repos import RepoSource
from evals.sample_tasks import TEST_FILE, SampleProject, make_sample_project, sample_image_builder
from sandbox.images import BuildLog, run_and_commit

# A stand-in for conda's activate script: `conda activate NAME` puts envs/NAME/bin first on PATH.
OFFICIAL_LAYOUT = """\
set -eux
mkdir -p /opt/miniconda3/bin /opt/miniconda3/envs
mv /opt/venv /opt/miniconda3/envs/testbed
cat > /opt/miniconda3/bin/activate <<'EOF'
conda() {
    [ "$1" = activate ] || { echo "conda: only 'activate' here" >&2; return 1; }
    [ -d "/opt/miniconda3/envs/$2" ] || { echo "conda: no environment $2" >&2; return 1; }
    export CONDA_DEFAULT_ENV="$2" PATH="/opt/miniconda3/envs/$2/bin:$PATH"
}
EOF
"""


def official_eval_script(instance: TaskInstance) -> str:
    """A row's own eval_script, shaped as swebench's make_eval_script_list writes them."""
    base, test_patch = instance.base_commit, instance.test_patch or ""
    return "\n".join([
        "#!/bin/bash", "set -uxo pipefail",
        "source /opt/miniconda3/bin/activate", "conda activate testbed",
        "cd /testbed", "git config --global --add safe.directory /testbed",
        f"git checkout {base} {TEST_FILE}",
        f"git apply -v - <<'EOF_114329324912'\n{test_patch}\nEOF_114329324912",
        f": '{START_TEST_OUTPUT}'",
        # the tests only run in the activated environment: a wrong activation fails them
        f'test "$CONDA_DEFAULT_ENV" = testbed && python -m unittest -v {TEST_FILE}',
        f": '{END_TEST_OUTPUT}'",
        f"git checkout {base} {TEST_FILE}",
    ]) + "\n"


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleProject:
    return make_sample_project(tmp_path_factory.mktemp("official"), bugs=1, salt=uuid.uuid4().hex)


@pytest.fixture(scope="module")
def official_tag(docker_client: Any, sandbox_image: str, sample: SampleProject) -> Iterator[str]:
    """The sample's instance image, re-laid out as an official one, under a tag unique to this run."""
    built = sample_image_builder(docker_client, sample).ensure(sample.instance("1"))
    tag = f"moe-agent-test-official:{uuid.uuid4().hex[:12]}"
    run_and_commit(docker_client, built.tag, OFFICIAL_LAYOUT, tag, log=BuildLog(tag), step="official layout",
                   changes=list(IMAGE_CHANGES))
    yield tag
    for image in [tag, *(layer.tag for layer in reversed(built.layers[1:]))]:
        with contextlib.suppress(APIError):
            docker_client.images.remove(image, force=True)


def grade_official(client: Any, sample: SampleProject, row: TaskInstance, recipes: RecipeBook,
                   out: Path) -> tuple[Any, Any, Any]:
    builder = ImageBuilder(client, RepoSource(str(sample.mirrors)), recipes=recipes, source=ImageSource.PULL)
    settings = GradeSettings(run_id="official", log_root=out / "logs", report_dir=out, timeout=300)
    gold, empty, verdicts = validate([row], builder, settings)
    return gold.results[0], empty.results[0], verdicts[0]


@pytest.mark.docker
def test_row_with_its_own_eval_script_is_graded_in_the_official_image(
        docker_client: Any, sample: SampleProject, official_tag: str, tmp_path: Path) -> None:
    instance = sample.instance("1")
    # a newer row: it names its image, its eval script and its parser; no recipe knows its repository
    row = instance.model_copy(update={"image": official_tag, "eval_script": official_eval_script(instance),
                                      "log_parser": "parse_log_django"})
    gold, empty, verdict = grade_official(docker_client, sample, row, RecipeBook(), tmp_path)
    assert (gold.outcome, empty.outcome) == (Outcome.RESOLVED, Outcome.UNRESOLVED) and verdict.valid
    assert gold.report["tests_status"]["FAIL_TO_PASS"]["success"] == instance.FAIL_TO_PASS  # ids with spaces, ()
    folder = tmp_path / "logs" / "official" / "gold" / instance.instance_id
    assert (folder / "eval.sh").read_text() == row.eval_script  # used as is
    assert f"Image {official_tag}: {official_tag} reused" in (folder / "run_instance.log").read_text()
    output = (folder / "test_output.txt").read_text()
    assert "+ conda activate testbed" in output and "Ran 2 tests" in output
    run_report = json.loads((tmp_path / "gold.official.json").read_text())
    assert run_report["resolved_ids"] == [instance.instance_id] and run_report["infra_failure_ids"] == []


@pytest.mark.docker
def test_classic_row_in_an_official_image_uses_the_recipe_with_conda_activation(
        docker_client: Any, sample: SampleProject, official_tag: str, tmp_path: Path) -> None:
    instance = sample.instance("1")
    row = instance.model_copy(update={"image": official_tag})  # no eval_script: the recipe's, activated as upstream
    gold, empty, verdict = grade_official(docker_client, sample, row, RecipeBook([sample.recipes]), tmp_path)
    assert (gold.outcome, empty.outcome) == (Outcome.RESOLVED, Outcome.UNRESOLVED) and verdict.valid
    script = (tmp_path / "logs" / "official" / "gold" / instance.instance_id / "eval.sh").read_text()
    assert script.splitlines()[2] == CONDA_ACTIVATE and "/opt/venv" not in script
    assert "python -m pip install --no-build-isolation --no-index -e . --no-deps" in script  # the offline reinstall
