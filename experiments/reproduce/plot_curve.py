"""Plot a metric per epoch for several reproduction rows (default: Gowalla MF-BPR vs LightGCN, Recall@20).

Usage (from the repository root)::

    python experiments/reproduce/plot_curve.py [--rows gowalla_mf gowalla_lightgcn] [--metric test_recall@20]
        [--out experiments/reproduce/gowalla_curve.png] [--loss-label "training loss (BPR + L2)"]

FB15k-237 (experiments/reproduce/fb15k-237_curve.png)::

    python experiments/reproduce/plot_curve.py --rows fb15k-237_distmult fb15k-237_rgcn --metric val_mrr \
        --loss-label "training loss (1-N BCE)" --out experiments/reproduce/fb15k-237_curve.png

Reads the newest successful run of each row from run_all.py's log (experiments/runs/reproduce/log.jsonl) and
the per-epoch history in its seeds' results.json; one line per (row, seed), plus the training loss.
``--run-dir ROW=DIR`` (repeatable) takes a row's run directory from the command line instead, for runs
started with ``python -m graphnet run`` directly (they are not in the log), e.g.::

    python experiments/reproduce/plot_curve.py \
        --run-dir gowalla_lightgcn=experiments/runs/reproduce/gowalla_lightgcn/<run-id> \
        --run-dir gowalla_mf=experiments/runs/reproduce/gowalla_mf/<run-id>
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _make_table():
    spec = importlib.util.spec_from_file_location("repro_make_table", HERE / "make_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="+", default=["gowalla_mf", "gowalla_lightgcn"])
    p.add_argument("--metric", default="test_recall@20")
    p.add_argument("--runs", default="experiments/runs/reproduce", help="run_all.py's --out")
    p.add_argument("--out", default="experiments/reproduce/gowalla_curve.png")
    p.add_argument("--loss-label", default="training loss (BPR + L2)", help="y label of the loss panel")
    p.add_argument("--run-dir", action="append", default=[], metavar="ROW=DIR",
                   help="run directory of a row (relative to the repository root); overrides the log")
    args = p.parse_args(argv)
    given = {}
    for item in args.run_dir:
        row, sep, path = item.partition("=")
        if not sep or not row or not path:
            p.error(f"--run-dir: expected ROW=DIR, got {item!r}")
        given[row] = {"run_dir": path}
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mt = _make_table()
    from graphnet.io import atomic_open  # make_table put the repository root on sys.path

    runs = {**mt.latest_runs(mt.ROOT / args.runs / "log.jsonl"), **given}
    fig = Figure(figsize=(9, 3.5), tight_layout=True)
    FigureCanvasAgg(fig)
    ax_loss, ax_metric = fig.subplots(1, 2)
    for row in args.rows:
        if row not in runs:
            continue
        for res in mt.seed_results(mt.ROOT / runs[row]["run_dir"]):
            hist = res["history"]
            label = f"{row} (seed {res['seed']})"
            ax_loss.plot([h["epoch"] + 1 for h in hist], [h["loss"] for h in hist], marker="o", label=label)
            pts = [(h["epoch"] + 1, h[args.metric]) for h in hist if h.get(args.metric) is not None]
            if pts:
                ax_metric.plot(*zip(*pts, strict=True), marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel=args.loss_label, title="loss")
    ax_metric.set(xlabel="epoch", ylabel=args.metric, title=f"{args.metric} per epoch")
    ax_metric.legend(fontsize=7)
    with atomic_open(mt.ROOT / args.out, "wb") as f:  # a failed save leaves the committed PNG as it was
        fig.savefig(f, format="png", dpi=100)
    return 0


if __name__ == "__main__":
    sys.exit(main())
