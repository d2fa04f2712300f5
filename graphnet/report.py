"""Multi-seed summaries, result tables (Markdown, CSV) and training-curve plots; all written atomically.

The spread is the *unbiased* sample standard deviation (ddof = 1), undefined (null) for a single seed;
GraphGym's population std understates it for the usual 3-10 seeds.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from graphnet.config import SPLITS
from graphnet.io import atomic_open, atomic_write_text


def summarize(values: dict[str, Sequence[float | None]]) -> dict[str, dict[str, Any]]:
    """Per key: mean, unbiased std (None for n = 1), values and n. A missing or non-finite (NaN, +-inf)
    value is recorded as None and makes mean/std None (no mean over the seeds that survived).

    Formula: std = sqrt(sum_i (x_i - mean)^2 / (n - 1)).
    """
    out = {}
    for key, vals in values.items():
        vals = [None if v is None or not math.isfinite(v) else float(v) for v in vals]
        ok = all(v is not None for v in vals) and vals
        out[key] = {"mean": statistics.fmean(vals) if ok else None,
                    "std": statistics.stdev(vals) if ok and len(vals) > 1 else None,
                    "values": vals, "n": len(vals)}
    return out


def collect(results: Sequence[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Metric key -> one value per seed result (a key missing from a seed counts as None)."""
    keys = sorted({k for r in results for k in r["metrics"]})
    return {k: [r["metrics"].get(k) for r in results] for k in keys}


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def table_rows(summary: dict[str, dict[str, Any]]) -> list[list[str]]:
    """[metric, mean, std, n, values] rows, header first; a None mean/std is an empty cell, a None value
    "n/a"."""
    rows = [["metric", "mean", "std", "n", "values"]]
    for key, s in summary.items():
        values = " ".join(_fmt(v) or "n/a" for v in s["values"])  # n/a: missing, NaN or inf
        rows.append([key, _fmt(s["mean"]), _fmt(s["std"]), str(s["n"]), values])
    return rows


def markdown(rows: list[list[str]], title: str = "") -> str:
    """A GitHub Markdown table (first row = header)."""
    head = [f"## {title}", ""] if title else []
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(head + lines) + "\n"


def write_tables(rows: list[list[str]], directory: Path, title: str = "") -> None:
    """``results.md`` and ``results.csv`` in ``directory``."""
    atomic_write_text(directory / "results.md", markdown(rows, title))
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    atomic_write_text(directory / "results.csv", buf.getvalue())


def plot_curves(results: Sequence[dict[str, Any]], path: Path, monitor: str) -> Any:
    """PNG with the training loss (left) and the monitored metric (right) per epoch, one line per seed; the
    same metric of splits logged by ``train.track`` (e.g. test_hits@20 for val_hits@20) is drawn dashed in
    the seed's colour. Returns the matplotlib Figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # no pyplot: no global backend state
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.5), tight_layout=True)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric = fig.subplots(1, 2)
    split, metric = monitor.split("_", 1) if "_" in monitor else ("", monitor)
    keys = [monitor] + [f"{t}_{metric}" for t in SPLITS if t != split]  # the monitor, then tracked splits
    for r in results:
        hist = r["history"]
        label = f"seed {r['seed']}"
        ax_loss.plot([h["epoch"] for h in hist], [h["loss"] for h in hist], label=label, lw=1)
        color = None
        for key in keys:
            pts = [(h["epoch"], h[key]) for h in hist if h.get(key) is not None]
            if not pts:
                continue
            tracked = key != monitor  # a split logged by train.track: for the curve only
            line, = ax_metric.plot([e for e, _ in pts], [v for _, v in pts], lw=1, color=color,
                                   ls="--" if tracked else "-",
                                   label=f"{label} {key.split('_', 1)[0]}" if tracked else label)
            color = line.get_color()
        if r.get("best_epoch", -1) >= 0:
            ax_metric.axvline(r["best_epoch"], color="grey", lw=0.5, ls=":")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="loss")
    ax_metric.set(xlabel="epoch", ylabel=monitor, title=f"{monitor} (dotted: best epoch)")
    if len(results) <= 10:
        ax_metric.legend(fontsize=7)
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return fig
