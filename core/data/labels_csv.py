"""The Kaggle label CSV: which of its columns hold the id and the label, and its rows parsed into
ids, 0/1 labels and the problems of the rows skipped; and how a patch's file name gives its id.
Finding the CSV in a folder is core.data.layouts'."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from core.constants import IMAGE_EXTENSIONS
from core.data.base import Problem
from core.errors import DatasetError

NO_HEADER = (  # the one wording of a label CSV without its header; its content is never quoted
    "{name} has no 'id' and 'label' header: its first line names other columns or none; "
    "a Kaggle label CSV starts with the line 'id,label'."
)


def is_image_name(name: str) -> bool:
    """Whether a file name is a patch image's (by its extension)."""
    return name.lower().endswith(IMAGE_EXTENSIONS)


def image_stem(name: str) -> str:
    """A patch's id from its file name (an image extension dropped)."""
    return name.rsplit(".", 1)[0] if is_image_name(name) else name


def _first_line(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.readline().strip()[:80]
    except OSError:
        return ""


def csv_columns(path: Path) -> tuple[int, int] | None:
    """Positions of the id and label columns in the CSV header, or None."""
    return _header_columns(_first_line(path))


def _header_columns(line: str) -> tuple[int, int] | None:
    header = [h.strip().lower() for h in next(csv.reader([line]), [])]
    if "id" in header and "label" in header:
        return header.index("id"), header.index("label")
    return None


def parse_labels_csv(text: str, *, name: str = "labels.csv") -> tuple[list[str], np.ndarray, list[Problem]]:
    """Parse a Kaggle label CSV: (unique ids in file order, int8 0/1 labels, problems).

    Header names are matched case- and whitespace-insensitively; extra columns are ignored;
    ids may carry an image extension. Rows with a label other than 0/1 are skipped; a repeated id
    keeps its first label when the repeats agree and is dropped when they disagree.
    Raises DatasetError when the header has no id and label columns.
    """
    text = text.removeprefix("\ufeff")
    try:
        return _parse_labels_rows(csv.reader(io.StringIO(text, newline="")), name)
    except csv.Error as error:
        raise DatasetError(f"{name} could not be parsed as CSV ({error}).") from None


def _parse_labels_rows(rows: Iterator[list[str]], name: str) -> tuple[list[str], np.ndarray, list[Problem]]:
    header = next(rows, None)
    columns = _header_columns(",".join(header)) if header else None
    if header is None or columns is None:
        raise DatasetError(NO_HEADER.format(name=name))
    id_col, label_col = columns
    labels: dict[str, int] = {}
    conflicting: set[str] = set()
    problems: list[Problem] = []
    for line_no, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) <= max(id_col, label_col):
            problems.append(Problem(f"{name} line {line_no}", "row has no id or no label"))
            continue
        item = image_stem(row[id_col].strip())
        if not item:
            problems.append(Problem(f"{name} line {line_no}", "empty id"))
            continue
        label = _parse_label(row[label_col])
        if label is None:
            problems.append(Problem(item, "label is not 0 or 1", listed_in=name))
            continue
        if item in labels:
            if labels[item] != label:
                conflicting.add(item)
                problems.append(Problem(item, "id repeated with a different label; dropped", listed_in=name))
            else:
                problems.append(Problem(item, "id repeated; kept the first", listed_in=name))
            continue
        labels[item] = label
    ids = [item for item in labels if item not in conflicting]
    return ids, np.array([labels[i] for i in ids], dtype=np.int8), problems


def _parse_label(text: str) -> int | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return int(value) if value in (0.0, 1.0) else None
