"""Plots of the reports and of ``rkit evaluate --plot`` (matplotlib, Agg backend, imported only here).

- retrieval: mean interpolated precision-recall curve per protocol (and per method), per-query AP histogram;
- comparison of methods: per-query AP of method A against B (scatter), or per-query bars for more methods;
- copy detection: the pooled precision-recall curve with µAP and the 90 %-precision point marked.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from retrievalkit.errors import MissingDependencyError
from retrievalkit.evaluate.groundtruth import PROTOCOLS, GroundTruth

RECALL_LEVELS = np.linspace(0.0, 1.0, 101)
_POSITIVE = {"easy": b"e", "medium": b"eh", "hard": b"h"}
_IGNORED = {"easy": b"hj", "medium": b"j", "hard": b"ej"}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b")


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError("plots need matplotlib; install it: pip install -c constraints.txt "
                                     "matplotlib") from None
    return plt


def interpolated_pr(categories: np.ndarray, npos: np.ndarray, protocol: str) -> np.ndarray:
    """Interpolated precision at :data:`RECALL_LEVELS` of ranked lists (revisitop protocol semantics).

    Args:
        categories: (Q, K) uint8 category codes (``e``/``h``/``j``/``w``) of each query's ranked results.
        npos: (Q,) positives of each query under ``protocol`` (found or not).
    Returns:
        (Q, 101) precision: at each recall level, the best precision at any rank reaching that recall (0 where
        the list never does; junk removed first); NaN rows for queries without positives.
    """
    c = np.atleast_2d(np.asarray(categories, np.uint8))
    npos = np.atleast_1d(np.asarray(npos, np.float64))
    pos_lut = np.zeros(256, bool)
    ign_lut = np.zeros(256, bool)
    pos_lut[list(_POSITIVE[protocol])] = True
    ign_lut[list(_IGNORED[protocol])] = True
    keep = ~ign_lut[c]
    pos = pos_lut[c] & keep
    rank = np.cumsum(keep, axis=1)  # 1-based rank after junk removal (at kept positions)
    tp = np.cumsum(pos, axis=1)
    prec = np.where(keep, tp / np.maximum(rank, 1), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / npos[:, None]
    # best precision at this position or any later one (recall only grows along a list)
    best = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]
    out = np.zeros((c.shape[0], RECALL_LEVELS.size))
    for li, level in enumerate(RECALL_LEVELS):
        reach = rec >= level - 1e-12
        first = reach.argmax(axis=1)
        ok = reach[np.arange(c.shape[0]), first]
        out[ok, li] = best[ok, first[ok]]
    out[npos <= 0] = np.nan
    return out


def retrieval_curves(method, gnd: GroundTruth) -> dict[str, np.ndarray | None]:
    """protocol -> (101,) mean interpolated precision over the queries with positives (None if there are none).

    ``method`` is a :class:`retrievalkit.show.retrieval.Method` aligned to ``gnd`` (rows in its query order).
    """
    out: dict[str, np.ndarray | None] = {}
    for p in PROTOCOLS:
        npos = np.array([x.size for x in gnd.positives(p)])
        curves = interpolated_pr(method.categories, npos, p)[npos > 0]
        out[p] = curves.mean(axis=0) if curves.size else None
    return out


def save_figure(fig, path: str | os.PathLike) -> Path:
    """Write a figure as PNG through the one write path (``io/output.py``: checked, locked, temp + rename)."""
    from retrievalkit.io.output import atomic_file

    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    with atomic_file(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


def plot_retrieval(path: str | os.PathLike, labels: Sequence[str], curves: Sequence[dict],
                   aps: Sequence[dict[str, np.ndarray]]) -> Path:
    """Precision-recall curves (one per protocol and method) and the per-query AP histogram (Medium)."""
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"easy": ":", "medium": "-", "hard": "--"}
    for j, (label, c, a) in enumerate(zip(labels, curves, aps)):
        for p in PROTOCOLS:
            if c[p] is None:
                continue
            valid = a[p][~np.isnan(a[p])]
            score = f"{100 * valid.mean():.1f}"
            name = f"{p} (mAP {score})" if len(labels) == 1 else f"{label} {p} ({score})"
            ax1.plot(RECALL_LEVELS, c[p], styles[p], color=COLOURS[j % len(COLOURS)], label=name)
    ax1.set(xlabel="recall", ylabel="precision (interpolated, mean over queries)", xlim=(0, 1), ylim=(0, 1.02),
            title="precision-recall")
    ax1.grid(alpha=0.3)
    ax1.legend(fontsize=8, loc="lower left")
    bins = np.linspace(0, 1, 21)
    for j, (label, a) in enumerate(zip(labels, aps)):
        valid = a["medium"][~np.isnan(a["medium"])]
        ax2.hist(valid, bins=bins, alpha=0.6 if len(labels) > 1 else 0.9, color=COLOURS[j % len(COLOURS)],
                 label=f"{label} ({valid.size} queries)", edgecolor="white")
    ax2.set(xlabel="AP (Medium)", ylabel="queries", xlim=(0, 1), title="per-query AP")
    ax2.legend(fontsize=8, loc="upper left")
    return save_figure(fig, path)


def plot_comparison(path: str | os.PathLike, labels: Sequence[str], aps: Sequence[dict[str, np.ndarray]],
                    protocol: str = "medium") -> Path:
    """Per-query AP of two methods against each other (points above the diagonal: the second wins), or
    per-query bars of several methods sorted by the first method's AP."""
    plt = _pyplot()
    a = np.stack([x[protocol] for x in aps])
    ok = ~np.isnan(a).any(axis=0)
    a = a[:, ok]
    if len(labels) == 2:
        fig, ax = plt.subplots(figsize=(5.2, 5))
        win_b = a[1] > a[0]
        win_a = a[0] > a[1]
        ax.scatter(a[0][win_a], a[1][win_a], s=14, color=COLOURS[0], label=f"{labels[0]} better ({win_a.sum()})")
        ax.scatter(a[0][win_b], a[1][win_b], s=14, color=COLOURS[1], label=f"{labels[1]} better ({win_b.sum()})")
        tie = ~(win_a | win_b)
        ax.scatter(a[0][tie], a[1][tie], s=14, color="grey", label=f"equal ({tie.sum()})")
        ax.plot([0, 1], [0, 1], color="black", lw=0.8)
        ax.set(xlabel=f"AP {labels[0]}", ylabel=f"AP {labels[1]}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02),
               title=f"per-query AP ({protocol})")
        ax.set_aspect("equal")
        ax.legend(fontsize=8, loc="lower right")
    else:
        order = np.argsort(a[0], kind="stable")
        fig, ax = plt.subplots(figsize=(min(16, 4 + 0.12 * a.shape[1] * len(labels)), 4))
        width = 0.8 / len(labels)
        x = np.arange(a.shape[1])
        for j, label in enumerate(labels):
            ax.bar(x + j * width, a[j][order], width, color=COLOURS[j % len(COLOURS)], label=label)
        ax.set(xlabel="query (sorted by the first method's AP)", ylabel="AP", ylim=(0, 1.02),
               title=f"per-query AP ({protocol})")
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_copy_detection(path: str | os.PathLike, metrics, label: str = "") -> Path:
    """Pooled precision-recall curve of copy detection with µAP and the 90 %-precision operating point.

    ``metrics`` is a :class:`retrievalkit.evaluate.copydetect.CopyDetectionMetrics`.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    rec = np.concatenate([[0.0], metrics.recalls])
    prec = np.concatenate([[1.0], metrics.precisions])
    ax.plot(rec, prec, color=COLOURS[0], label=f"{label + ' ' if label else ''}µAP {metrics.micro_ap:.4f}")
    ax.axhline(0.9, color="grey", lw=0.8, ls="--")
    if metrics.threshold_at_p90 is not None:
        i = int(np.flatnonzero((metrics.recalls == metrics.recall_at_p90) & (metrics.precisions >= 0.9))[0])
        ax.plot([metrics.recalls[i]], [metrics.precisions[i]], "o", color=COLOURS[1], ms=8,
                label=f"recall@P90 {metrics.recall_at_p90:.4f} (score ≥ {metrics.threshold_at_p90:.4g})")
    else:
        ax.plot([], [], "o", color=COLOURS[1], label="precision never reaches 0.9")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
           title=f"copy detection: {metrics.num_predictions} predictions, {metrics.num_positives} true pairs")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return save_figure(fig, path)


def plot_ranks_file(ranks_path: str | os.PathLike, gnd_path: str | os.PathLike, output: str | os.PathLike) -> Path:
    """``rkit evaluate RANKS --gnd GND --plot OUT.png``: precision-recall curves and the AP histogram."""
    from retrievalkit.evaluate.groundtruth import load_gnd
    from retrievalkit.show.retrieval import load_methods

    gnd = load_gnd(gnd_path)
    _, methods = load_methods([Path(ranks_path)], gnd, Path(gnd_path))
    m = methods[0]
    return plot_retrieval(output, [m.label], [retrieval_curves(m, gnd)], [m.aps])


def plot_copy_detection_file(result_path: str | os.PathLike, gt_path: str | os.PathLike,
                             output: str | os.PathLike) -> Path:
    """``rkit evaluate matches.csv --gt GT.csv --plot OUT.png``: the copy-detection precision-recall curve."""
    from retrievalkit.evaluate.copydetect import evaluate_copy_detection, read_ground_truth_csv
    from retrievalkit.evaluate.copydetect_stage import load_predictions

    gt = read_ground_truth_csv(gt_path)
    pred, _ = load_predictions(result_path)
    metrics = evaluate_copy_detection(pred, gt, source=str(result_path))
    if metrics.micro_ap is None:
        from retrievalkit.errors import BadInputError

        raise BadInputError(f"{gt_path}: the ground truth has no (query, reference) pair; nothing to plot")
    return plot_copy_detection(output, metrics, Path(result_path).name)
