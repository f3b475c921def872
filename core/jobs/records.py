"""The one validated reader of a job's JSON files, and the fields every background job reports.

Each file is a typed record (a dataclass with defaults). `parse(Record, raw, what)` keeps every field
whose value has the declared type and puts the default in place of any other, naming each problem in
words ("status.json: pid is 'abc', not a whole number"). A file that is not a JSON object at all reads
as the record's defaults with one such problem. Readers show the problems as "damaged: …" and carry
on, so one damaged file never takes a page, the CLI or a job list down. Training's own records
(RunStatus, metrics lines, the lock) are core.train.records, built on this parser.
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import TypeVar, get_args, get_origin, get_type_hints

Record = TypeVar("Record")
TYPE_WORDS = {int: "a whole number", float: "a number", str: "text", bool: "true or false", dict: "a record"}


@dataclass
class JobRecord:
    """The fields of a background job's status.json (prediction, features, heatmap, folds) that its
    readers rely on; the job's other fields (what it scores) are kept as they are."""

    state: str = "failed"
    phase: str | None = None
    error: str | None = None
    pid: int | None = None
    heartbeat: float = 0.0
    done: int | None = None
    total: int | None = None
    created: float | None = None
    started: float | None = None
    finished: float | None = None


# ---------------------------------------------------------------- the parser


def parse(record: type[Record], raw: object, what: str) -> tuple[Record, list[str]]:
    """`record` filled from `raw`: each field of the declared type kept, any other replaced by its
    default; returns it with the problems found, each in words prefixed by `what`."""
    if not isinstance(raw, dict):
        return record(), [f"{what} holds {describe(raw)}, not a record"]
    values, problems = _checked(record, raw, what)
    return record(**values), problems


def type_problems(record: type, raw: dict, what: str) -> list[str]:
    """The fields of `raw` whose values do not have `record`'s declared types, in words."""
    return _checked(record, raw, what)[1]


def _checked(record: type, raw: dict, what: str) -> tuple[dict, list[str]]:
    hints = get_type_hints(record)
    values, problems = {}, []
    for spec in fields(record):
        if spec.name not in raw or spec.name == "damaged":
            continue
        value, ok = _coerce(hints[spec.name], raw[spec.name])
        if ok:
            values[spec.name] = value
        else:
            problems.append(
                f"{what}: {spec.name} is {describe(raw[spec.name])}, not {_words(hints[spec.name])}"
            )
    return values, problems


def _coerce(hint, value) -> tuple[object, bool]:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None, True
        for arg in (a for a in args if a is not type(None)):
            coerced, ok = _coerce(arg, value)
            if ok:
                return coerced, True
        return None, False
    if origin is list:
        ok = isinstance(value, list) and all(_coerce(args[0], item)[1] for item in value)
        return (list(value), True) if ok else (None, False)
    if is_dataclass(hint):
        nested, problems = parse(hint, value, "")
        return nested, not problems
    if hint is float:
        return (float(value), True) if _is_number(value) else (None, False)
    if hint is int:
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return (int(value), True) if whole and not isinstance(value, bool) else (None, False)
    if hint is bool:
        return value, isinstance(value, bool)
    return value, isinstance(value, hint)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _words(hint) -> str:
    args = [a for a in get_args(hint) if a is not type(None)]
    if args and get_origin(hint) is not list:
        return _words(args[0])
    if get_origin(hint) is list:
        return "a list of text"
    return TYPE_WORDS.get(hint, "a record")


def describe(value) -> str:
    """A value as a user should read it in a problem: short, with its kind."""
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    text = json.dumps(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


# ---------------------------------------------------------------- the files


def read_raw(path: Path) -> tuple[object, str | None]:
    """The JSON in `path` (None when missing) and a problem when it is not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None, None
    except OSError as error:
        return None, f"{path.name} cannot be read ({error.strerror})"
    try:
        return json.loads(text), None
    except ValueError:
        return None, f"{path.name} is not valid JSON"


def read_record(record: type[Record], path: Path) -> tuple[Record | None, list[str]]:
    """`record` read from the JSON file at `path`; None (no problem) when the file is missing."""
    raw, problem = read_raw(path)
    if problem:
        return record(), [problem]
    if raw is None and not path.exists():
        return None, []
    return parse(record, raw, path.name)


def job_status_dict(raw: object, what: str = "status.json") -> dict:
    """A job's status.json with JobRecord's fields validated (the rest kept); a damaged file reads as a
    failed job whose error names the damage, so a page shows it in words and may start it again."""
    job, problems = parse(JobRecord, raw, what)
    kept = dict(raw) if isinstance(raw, dict) else {}
    status = {**kept, **asdict(job)}
    if problems:
        damage = "; ".join(problems)
        status.update(state="failed", damaged=damage, error=f"damaged: {damage}")
    return status
