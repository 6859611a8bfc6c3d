"""SWE-bench task rows: read from a local file or the Hugging Face hub, then pick some.

Rows come in two shapes. Classic rows (SWE-bench, Lite, Verified) carry the twelve
standard fields, with FAIL_TO_PASS / PASS_TO_PASS as JSON-encoded strings; newer rows
also name their `image`, `eval_script`, `log_parser` and `eval_type`. Both become one
`TaskInstance`, so nothing downstream has to care which shape a row had.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from agent.errors import EnvironmentProblem, MissingExtra, UsageError

LOCAL_SUFFIXES = (".json", ".jsonl", ".parquet")


class TaskInstance(BaseModel):
    """One SWE-bench task; fields this model does not name are kept as extras."""

    model_config = ConfigDict(extra="allow")

    repo: str
    instance_id: str
    base_commit: str
    version: str
    problem_statement: str
    FAIL_TO_PASS: list[str]
    PASS_TO_PASS: list[str]
    patch: str | None = None
    test_patch: str | None = None
    hints_text: str | None = None
    created_at: str | None = None
    environment_setup_commit: str | None = None
    # Newer rows say how to run and grade themselves.
    image: str | None = None
    eval_script: str | None = None
    log_parser: str | None = None
    eval_type: str | None = None

    @field_validator("FAIL_TO_PASS", "PASS_TO_PASS", mode="before")
    @classmethod
    def _decode_test_list(cls, value: Any) -> Any:
        """Hugging Face rows store the test lists as JSON text."""
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON list ({exc.msg})") from None

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        """Some copies store versions such as 3.0 as numbers."""
        return str(value) if isinstance(value, int | float) else value

    @property
    def runnable(self) -> bool:
        """Whether the row has what an evaluation needs: a test patch to apply."""
        return bool(self.test_patch)


def load_instances(source: str | Path, split: str = "test") -> list[TaskInstance]:
    """Read every row of a local .json/.jsonl/.parquet file, or of a hub dataset `split`."""
    path = Path(source)
    if path.suffix in LOCAL_SUFFIXES or path.exists():
        return read_file(path)
    return _read_hub(str(source), split)


def read_file(path: Path) -> list[TaskInstance]:
    """Read a local file; a bad row stops the read with its file and line."""
    if not path.exists():
        raise UsageError(f"{path}: no such dataset file")
    readers = {".jsonl": _jsonl_rows, ".json": _json_rows, ".parquet": _parquet_rows}
    if path.suffix not in readers or not path.is_file():
        raise UsageError(f"{path}: unknown dataset format; use a .json, .jsonl or .parquet file")
    try:
        return [_instance(row, f"{path}:{where}") for where, row in readers[path.suffix](path)]
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None


def _jsonl_rows(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield str(number), json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg})") from None


def _json_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):  # {instance_id: row}, as some tools write it
        data = list(data.values())
    if not isinstance(data, list):
        raise UsageError(f"{path}: expected a JSON list of task rows")
    for index, row in enumerate(data):
        yield f"row {index}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, Any]]:
    try:
        import pyarrow.parquet
    except ModuleNotFoundError as exc:
        raise MissingExtra("eval", exc.name or "pyarrow") from None
    try:
        table = pyarrow.parquet.read_table(path)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: not a readable parquet file ({_first_line(exc)})") from None
    for index, row in enumerate(table.to_pylist()):
        yield f"row {index}", row


def _read_hub(name: str, split: str) -> list[TaskInstance]:
    try:
        import datasets
        import huggingface_hub
    except ModuleNotFoundError as exc:
        raise MissingExtra("eval", exc.name or "datasets") from None
    # Offline, the hub client logs every retry; the one line below says all that matters.
    datasets.logging.set_verbosity_error()
    huggingface_hub.utils.logging.set_verbosity_error()
    try:
        rows = datasets.load_dataset(name, split=split)
    except Exception as exc:  # offline, unknown name, bad split: all end the same way
        raise EnvironmentProblem(
            f"cannot load dataset {name!r} split {split!r} from Hugging Face ({_first_line(exc)}); "
            "offline, pass a local .json/.jsonl/.parquet file instead"
        ) from None
    return [_instance(row, f"{name}[{split}] row {index}") for index, row in enumerate(rows)]


def _instance(row: Any, where: str) -> TaskInstance:
    if not isinstance(row, dict):
        raise UsageError(f"{where}: a task row must be a JSON object")
    try:
        return TaskInstance.model_validate(row)
    except ValidationError as exc:
        missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            problem = f"missing {', '.join(missing)}"
        else:
            first = exc.errors()[0]
            reason = first.get("ctx", {}).get("error", first["msg"])
            problem = f"{'.'.join(map(str, first['loc']))}: {reason}"
        raise UsageError(f"{where}: {row.get('instance_id', 'task row')}: {problem}") from None


def select(
    instances: Iterable[TaskInstance],
    instance_ids: Iterable[str] | None = None,
    filter_regex: str | None = None,
    slice_spec: str | None = "0:50",
    shuffle: bool = False,
    seed: int = 0,
) -> list[TaskInstance]:
    """Pick instances: by id, then by regex on the id, then shuffle, then slice ("start:stop")."""
    chosen = list(instances)
    if instance_ids is not None:
        wanted = list(instance_ids)
        unknown = sorted(set(wanted) - {i.instance_id for i in chosen})
        if unknown:
            raise UsageError(f"not in the dataset: {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        chosen = [i for i in chosen if i.instance_id in set(wanted)]
    if filter_regex:
        try:
            pattern = re.compile(filter_regex)
        except re.error as exc:
            raise UsageError(f"--filter {filter_regex!r}: bad regular expression ({exc})") from None
        chosen = [i for i in chosen if pattern.search(i.instance_id)]
    if shuffle:
        chosen.sort(key=lambda i: i.instance_id)  # the same seed picks the same sample whatever the file order
        random.Random(seed).shuffle(chosen)
    return chosen[_parse_slice(slice_spec)] if slice_spec else chosen


def _parse_slice(spec: str) -> slice:
    parts = spec.split(":")
    try:
        bounds = [int(part) if part.strip() else None for part in parts]
    except ValueError:
        bounds = []
    if not 1 <= len(bounds) <= 3 or (len(parts) == 1 and bounds[0] is None):
        raise UsageError(f"--slice {spec!r}: expected start:stop, e.g. 0:50")
    if len(parts) == 1:  # "5" means the first five, as mini-swe-agent reads it
        return slice(bounds[0])
    return slice(*bounds)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
