"""Recognition metrics for one predicted class (+ confidence) per test image: accuracy and GAP.

GAP (global average precision, the Google Landmarks recognition metric; also called micro-AP): all
predictions are sorted by confidence, decreasing, and

    GAP = (1 / M) * sum_i P(i) * rel(i)

where P(i) is the precision over the first i predictions, rel(i) = 1 if prediction i is correct, and M is the
number of test images that have a true class. Images without a true class (distractors) can only hurt (their
predictions are never correct), so a good confidence puts them last; images without a prediction count in M
and contribute nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from retrievalkit.errors import UsageError


def _check(pred: Sequence, conf, truth: Sequence) -> np.ndarray:
    conf = np.asarray(conf, dtype=np.float64).reshape(-1)
    if not (len(pred) == len(truth) == conf.shape[0]):
        raise UsageError(f"recognition metrics: {len(pred)} predictions, {conf.shape[0]} confidences and "
                         f"{len(truth)} true labels must be as many")
    if not np.all(np.isfinite(conf)):
        raise UsageError("recognition metrics: confidences must be finite")
    return conf


def _missing(v) -> bool:
    return v is None or v == ""


def global_average_precision(pred: Sequence, conf, truth: Sequence) -> float:
    """GAP in [0, 1]. ``pred[i]`` / ``truth[i]``: predicted / true class of image i (None or "" = none).

    Ties of confidence keep the input order (stable sort). Returns nan when no image has a true class.
    """
    conf = _check(pred, conf, truth)
    m = sum(not _missing(t) for t in truth)
    if m == 0:
        return float("nan")
    has = np.array([not _missing(p) for p in pred], dtype=bool)
    idx = np.flatnonzero(has)
    order = idx[np.argsort(-conf[idx], kind="stable")]
    correct = np.array([not _missing(truth[i]) and pred[i] == truth[i] for i in order], dtype=np.float64)
    if correct.size == 0:
        return 0.0
    precision = np.cumsum(correct) / np.arange(1, correct.size + 1)
    return float((precision * correct).sum() / m)


def accuracy(pred: Sequence, truth: Sequence) -> float:
    """Fraction of the images with a true class whose prediction is that class (nan when none has one)."""
    if len(pred) != len(truth):
        raise UsageError(f"accuracy: {len(pred)} predictions for {len(truth)} true labels")
    keep = [i for i, t in enumerate(truth) if not _missing(t)]
    if not keep:
        return float("nan")
    return float(np.mean([pred[i] == truth[i] for i in keep]))


def recognition_metrics(pred: Sequence, conf, truth: Sequence) -> dict:
    """``{"accuracy", "gap", "images", "with_class"}`` (accuracy and GAP in percent, like the retrieval metrics)."""
    conf = _check(pred, conf, truth)
    acc, gap = accuracy(pred, truth), global_average_precision(pred, conf, truth)
    return {"accuracy": None if np.isnan(acc) else round(100 * acc, 2),
            "gap": None if np.isnan(gap) else round(100 * gap, 2),
            "images": len(truth), "with_class": sum(not _missing(t) for t in truth)}


def evaluate_predictions(predictions, truth) -> dict:
    """Recognition metrics of a predictions CSV (``rkit propagate``) against a truth CSV ``name,label``.

    Only the images listed in the truth file are scored (leave the labelled training images out of it); an empty
    truth label marks an image without a class (a distractor). Names match exactly or without extension.
    Returns :func:`recognition_metrics`' dict.
    """
    import csv
    import os
    from pathlib import Path

    from retrievalkit.errors import BadInputError
    from retrievalkit.io.labels import read_predictions

    pred = read_predictions(predictions)
    path = Path(truth)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or "name" not in reader.fieldnames or "label" not in reader.fieldnames:
                raise BadInputError(f"{path}: expected a CSV header name,label (empty label: no class)")
            rows = [((r.get("name") or "").strip(), (r.get("label") or "").strip()) for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BadInputError(f"{path}: cannot read it as a UTF-8 CSV file ({e})") from None
    if not rows:
        raise BadInputError(f"{path}: holds no rows to score")
    index = {n: i for i, n in enumerate(pred.names)}
    index.update({os.path.splitext(n)[0]: i for i, n in enumerate(pred.names) if os.path.splitext(n)[0] not in index})
    missing = [n for n, _ in rows if index.get(n, index.get(os.path.splitext(n)[0])) is None]
    if missing:
        raise BadInputError(f"{predictions}: has no prediction for {len(missing)} image(s) of {path}, e.g. "
                            f"{missing[0]!r}")
    sel = [index.get(n, index.get(os.path.splitext(n)[0])) for n, _ in rows]
    return recognition_metrics([pred.labels[i] for i in sel], pred.confidence[sel], [t for _, t in rows])
