"""Reading SWE-bench rows (the real data, tier swebench_data, and hand-made files) and picking instances."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.errors import UsageError
from evals.datasets import TaskInstance, load_instances, select
from tests.shared_data import SWEBENCH

TASKS = SWEBENCH / "tasks"


def classic_row(instance_id: str = "psf__requests-1", **overrides: object) -> dict:
    row = {
        "repo": "psf/requests",
        "instance_id": instance_id,
        "base_commit": "abc123",
        "patch": "diff --git a/x b/x\n",
        "test_patch": "diff --git a/tests/test_x.py b/tests/test_x.py\n",
        "problem_statement": "it breaks",
        "version": "2.0",
        "FAIL_TO_PASS": json.dumps(["tests/test_x.py::test_new"]),
        "PASS_TO_PASS": json.dumps([]),
        "environment_setup_commit": "def456",
    }
    row.update(overrides)
    return row


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.swebench_data
@pytest.mark.parametrize(
    ("name", "rows"),
    [
        ("swe-bench_verified.jsonl", 500),
        ("swe-bench_lite_test.jsonl", 300),
        ("swe-bench_lite_dev.jsonl", 23),
        ("swe-bench_test_extra-devin-subset.jsonl", 247),
    ],
)
def test_reads_every_shared_row_with_parsed_test_lists(name: str, rows: int) -> None:
    instances = load_instances(TASKS / name)
    assert len(instances) == rows
    raw = [json.loads(line) for line in (TASKS / name).read_text(encoding="utf-8").splitlines()]
    for instance, row in zip(instances, raw):
        assert instance.instance_id == row["instance_id"]
        assert instance.FAIL_TO_PASS == json.loads(row["FAIL_TO_PASS"])
        assert instance.PASS_TO_PASS == json.loads(row["PASS_TO_PASS"])


@pytest.mark.swebench_data
def test_verified_rows_keep_extra_fields_and_null_test_patches() -> None:
    instances = load_instances(TASKS / "swe-bench_verified.jsonl")
    assert all("_sources" in i.model_extra and "difficulty" in i.model_extra for i in instances)
    without_test_patch = [i for i in instances if not i.runnable]
    assert without_test_patch and all(i.test_patch is None for i in without_test_patch)


def test_newer_row_shape_keeps_image_and_eval_fields(tmp_path: Path) -> None:
    row = classic_row(
        FAIL_TO_PASS=["a::b"],  # newer rows store lists as lists
        PASS_TO_PASS=["a::c"],
        image="swebench/sweb.eval.x86_64.psf_1776_requests-1:latest",
        eval_script="#!/bin/bash\npytest -rA\n",
        log_parser="parse_log_pytest",
        eval_type="pass_and_fail",
        split="test",
    )
    (instance,) = load_instances(write_jsonl(tmp_path / "new.jsonl", [row]))
    assert instance.FAIL_TO_PASS == ["a::b"] and instance.PASS_TO_PASS == ["a::c"]
    assert instance.image == row["image"] and instance.log_parser == "parse_log_pytest"
    assert instance.eval_script == row["eval_script"] and instance.eval_type == "pass_and_fail"
    assert instance.model_extra == {"split": "test"}


def test_reads_json_list_json_mapping_and_parquet(tmp_path: Path) -> None:
    rows = [classic_row("psf__requests-1"), classic_row("psf__requests-2", version="2.1")]
    as_list = tmp_path / "rows.json"  # a copy that stored the version as a number
    as_list.write_text(json.dumps([rows[0], {**rows[1], "version": 2.1}]), encoding="utf-8")
    as_mapping = tmp_path / "by_id.json"
    as_mapping.write_text(json.dumps({r["instance_id"]: r for r in rows}), encoding="utf-8")
    import pyarrow
    import pyarrow.parquet

    as_parquet = tmp_path / "rows.parquet"
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), as_parquet)

    for path in (as_list, as_mapping, as_parquet):
        instances = load_instances(path)
        assert [i.instance_id for i in instances] == ["psf__requests-1", "psf__requests-2"]
        assert instances[1].version == "2.1"
        assert instances[0].FAIL_TO_PASS == ["tests/test_x.py::test_new"]


def test_bad_json_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(classic_row()) + "\n\n{not json\n", encoding="utf-8")
    with pytest.raises(UsageError, match=rf"^{path}:3: not valid JSON"):
        load_instances(path)


def test_missing_fields_are_named_with_their_line(tmp_path: Path) -> None:
    row = classic_row("psf__requests-9")
    del row["base_commit"], row["PASS_TO_PASS"]
    path = write_jsonl(tmp_path / "rows.jsonl", [classic_row(), row])
    with pytest.raises(UsageError) as caught:
        load_instances(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:2: psf__requests-9: missing ")
    assert "base_commit" in message and "PASS_TO_PASS" in message and "\n" not in message


def test_test_list_that_is_not_json_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [classic_row(FAIL_TO_PASS="[broken")])
    with pytest.raises(UsageError, match=r":1: psf__requests-1: FAIL_TO_PASS: not a JSON list"):
        load_instances(path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("rows.csv", "a,b\n", "unknown dataset format"),
        ("rows.json", '{"a": 1', r"rows.json:1: not valid JSON"),
        ("rows.json", '"just text"', "expected a JSON list"),
        ("rows.jsonl", "[1, 2]\n", r"rows.jsonl:1: a task row must be a JSON object"),
        ("rows.parquet", "not parquet", "not a readable parquet file"),
        ("rows.jsonl", "\udcff\n", "not UTF-8 text"),
    ],
)
def test_unreadable_files_fail_in_one_line(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8", errors="surrogateescape")
    with pytest.raises(UsageError, match=message) as caught:
        load_instances(path)
    assert "\n" not in str(caught.value)


def test_missing_local_file_is_not_mistaken_for_a_hub_name(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such dataset file"):
        load_instances(tmp_path / "absent.jsonl")


def test_hub_dataset_offline_is_one_line_and_exit_3(tmp_path: Path) -> None:
    log = tmp_path / "test_output.txt"
    log.write_text("nothing\n", encoding="utf-8")
    argv = ["eval", "grade-log", "--dataset", "SWE-bench/SWE-bench_Lite", "--instance-id", "x", "--log", str(log)]
    done = subprocess.run(
        [sys.executable, "-c", "from agent.cli import main; main()", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 3
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "cannot load dataset 'SWE-bench/SWE-bench_Lite' split 'test'" in lines[0]


def instances(count: int = 10) -> list[TaskInstance]:
    repos = ["psf/requests", "pallets/flask"]
    return [
        TaskInstance.model_validate(classic_row(f"{repos[n % 2].replace('/', '__')}-{n}", repo=repos[n % 2]))
        for n in range(count)
    ]


def test_select_by_ids_regex_and_slice() -> None:
    pool = instances()
    picked = select(pool, instance_ids=["pallets__flask-3", "psf__requests-4", "pallets__flask-5"], slice_spec=None)
    assert [i.instance_id for i in picked] == ["pallets__flask-3", "psf__requests-4", "pallets__flask-5"]
    flask = select(pool, filter_regex=r"^pallets__", slice_spec="1:3")
    assert [i.instance_id for i in flask] == ["pallets__flask-3", "pallets__flask-5"]
    assert len(select(pool)) == 10  # default 0:50 keeps everything here
    assert [i.instance_id for i in select(pool, slice_spec="2")] == ["psf__requests-0", "pallets__flask-1"]
    assert [i.instance_id for i in select(pool, slice_spec="-2:")] == ["psf__requests-8", "pallets__flask-9"]


def test_shuffle_is_seeded_and_independent_of_file_order() -> None:
    pool = instances(20)
    first = [i.instance_id for i in select(pool, shuffle=True, seed=7)]
    again = [i.instance_id for i in select(list(reversed(pool)), shuffle=True, seed=7)]
    other = [i.instance_id for i in select(pool, shuffle=True, seed=8)]
    assert first == again
    assert sorted(first) == sorted(i.instance_id for i in pool)
    assert first != sorted(first) and first != other


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"instance_ids": ["psf__requests-0", "nope-1"]}, "not in the dataset: nope-1"),
        ({"filter_regex": "(unclosed"}, "bad regular expression"),
        ({"slice_spec": "a:b"}, "expected start:stop"),
        ({"slice_spec": "1:2:3:4"}, "expected start:stop"),
    ],
)
def test_select_rejects_bad_requests(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        select(instances(), **kwargs)


def test_unicode_line_separators_in_a_row_keep_it_one_row(tmp_path: Path) -> None:
    """A problem statement holding U+2028, U+0085...: raw inside its JSON string, the row is still one line."""
    statement = "it breaks\u2028\u2029\x85 here"
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(classic_row(f"o__r-{n}", problem_statement=statement), ensure_ascii=False)
                            + "\n" for n in (1, 2)), encoding="utf-8")
    assert [(i.instance_id, i.problem_statement) for i in load_instances(path)] == [
        ("o__r-1", statement), ("o__r-2", statement)]
