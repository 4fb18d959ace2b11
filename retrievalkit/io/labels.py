"""Class labels and recognition predictions as CSV: what ``rkit propagate`` reads and writes.

Labels (input): header ``name,label``; one row per labelled image; ``name`` as in the features file (image
path relative to the image root; the extension may be left out), ``label`` any non-empty string (a landmark
id). Predictions (output): header ``name,label,confidence,weight``; one row per image of the features file, in
its order; ``confidence`` in [0, 1] ranks predictions (recognition metrics sort by it), ``weight`` in [0, 1]
is the pseudo-label's certainty for training. Labelled images keep their label with confidence and weight 1.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrievalkit.errors import BadInputError
from retrievalkit.io.output import atomic_file

PREDICTION_FIELDS = ("name", "label", "confidence", "weight")


@dataclass
class Predictions:
    names: list[str]
    labels: list[str]  # predicted class per image ("" where none could be given)
    confidence: np.ndarray  # (N,) float
    weight: np.ndarray  # (N,) float

    def __len__(self) -> int:
        return len(self.names)


def _rows(path: Path, required: Sequence[str]) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields = reader.fieldnames or []
            missing = [c for c in required if c not in fields]
            if missing:
                raise BadInputError(f"{path}: expected a CSV header with columns {','.join(required)}, found "
                                    f"{','.join(fields) or 'nothing'}")
            return list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(f"{path}: cannot read it as a UTF-8 CSV file ({e})") from None


def read_labels(path: str | os.PathLike) -> dict[str, str]:
    """``name -> label`` from a ``name,label`` CSV; a name listed twice with two labels is an error."""
    path = Path(path)
    out: dict[str, str] = {}
    for i, row in enumerate(_rows(path, ("name", "label")), start=2):
        name, label = (row.get("name") or "").strip(), (row.get("label") or "").strip()
        if not name or not label:
            raise BadInputError(f"{path}: line {i} has an empty name or label; every row needs both")
        if out.get(name, label) != label:
            raise BadInputError(f"{path}: {name!r} is labelled both {out[name]!r} and {label!r}")
        out[name] = label
    if not out:
        raise BadInputError(f"{path}: holds no labels (header name,label and one row per labelled image)")
    return out


def match_names(labels: dict[str, str], names: Sequence[str], where: str) -> dict[int, str]:
    """Row index in ``names`` -> label. Names match exactly, or without their extension."""
    exact = {n: i for i, n in enumerate(names)}
    stems: dict[str, int] = {}
    for i, n in enumerate(names):
        stems[os.path.splitext(n)[0]] = -1 if os.path.splitext(n)[0] in stems else i
    out, unknown = {}, []
    for name, label in labels.items():
        i = exact.get(name, stems.get(name, stems.get(os.path.splitext(name)[0])))
        if i is None or i < 0:
            unknown.append(name)
        else:
            out[i] = label
    if unknown:
        raise BadInputError(f"{where}: {len(unknown)} labelled name(s) are not in the features file (or are "
                            f"ambiguous without their extension), e.g. {unknown[0]!r}; use the names of its "
                            "'names' dataset")
    return out


def write_predictions(path: str | os.PathLike, pred: Predictions) -> Path:
    """Write ``name,label,confidence,weight`` atomically (temporary file in the target folder, then rename)."""
    path = Path(path)
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(PREDICTION_FIELDS)
        for n, lab, c, wt in zip(pred.names, pred.labels, pred.confidence, pred.weight):
            w.writerow([n, lab, f"{float(c):.6f}", f"{float(wt):.6f}"])
    return path


def read_predictions(path: str | os.PathLike) -> Predictions:
    path = Path(path)
    names, labels, conf, weight = [], [], [], []
    for i, row in enumerate(_rows(path, ("name", "label", "confidence")), start=2):
        try:
            c = float(row["confidence"])
            wt = float(row["weight"]) if row.get("weight") not in (None, "") else 1.0
        except ValueError:
            raise BadInputError(f"{path}: line {i}: confidence/weight must be numbers") from None
        names.append(row["name"])
        labels.append((row.get("label") or "").strip())
        conf.append(c)
        weight.append(wt)
    return Predictions(names, labels, np.asarray(conf, np.float64), np.asarray(weight, np.float64))
