"""Build the reproduction table (experiments/RESULTS.md) from the runs that run_all.py logged.

Usage (from the repository root)::

    python experiments/reproduce/make_table.py [--out experiments/runs/reproduce] [--json]

For each row in ROWS it takes the newest successful run in ``OUT/log.jsonl``, reads that run's summary.json
(and its seeds' results.json for the epochs actually run) and prints one table line: ours as mean ± unbiased
std over the seeds (for a [sweep] over data splits: over every split x seed run), the reference with its
source, DGL's / PyG's example numbers where known, epochs, wall time. Rows without a run are listed as
"not run". Nothing here is typed in by hand except the reference values and their sources.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
DGL_GCN = "DGL examples/pytorch/gcn README"
DGL_GAT = "DGL examples/pytorch/gat README (300 epochs)"
DGL_SGC = "DGL examples/pytorch/sgc README"
DGL_APPNP = "DGL examples/pytorch/appnp README"
KIPF = "Kipf & Welling, ICLR 2017"
CONVE = "Dettmers et al., AAAI 2018"
CONVE_README = "TimDettmers/ConvE README"
CONVE_NA = f"{CONVE} DistMult/ComplEx table not retrievable here"


def row(name, dataset, model, metrics, ref="", source="", dgl="", pyg="", scale=100.0):
    """metrics: result keys shown (first = headline); ref: reference text; scale: 100 for percentages."""
    return {
        "name": name,
        "dataset": dataset,
        "model": model,
        "metrics": metrics,
        "ref": ref,
        "source": source,
        "dgl": dgl,
        "pyg": pyg,
        "scale": scale,
    }


ACC = ["test_accuracy"]
KG = ["test_mrr", "test_hits@10"]
ROWS = [
    row("cora_gcn", "Cora (public split)", "GCN", ACC, "81.5", f"{KIPF}, Table 2", f"82.6 ({DGL_GCN})"),
    row(
        "cora_gat",
        "Cora (public split)",
        "GAT",
        ACC,
        "83.0 ± 0.7",
        "Velickovic et al., ICLR 2018, Table 2",
        f"84.0 ({DGL_GAT})",
    ),
    row(
        "cora_sgc",
        "Cora (public split)",
        "SGC",
        ACC,
        "81.0 ± 0.0",
        "Wu et al., ICML 2019, Table 2",
        f"81.9 ({DGL_SGC})",
    ),
    row("cora_appnp", "Cora (public split)", "APPNP", ACC, "83.7", DGL_APPNP, "83.7 (same)"),
    row("cora_mlp", "Cora (public split)", "MLP", ACC, "55.1", f"{KIPF}, Table 3"),
    row("citeseer_gcn", "CiteSeer (public split)", "GCN", ACC, "70.3", f"{KIPF}, Table 2"),
    row(
        "citeseer_gat",
        "CiteSeer (public split)",
        "GAT",
        ACC,
        "72.5 ± 0.7",
        "Velickovic et al., ICLR 2018, Table 2",
        f"70.7 ({DGL_GAT})",
    ),
    row(
        "citeseer_sgc",
        "CiteSeer (public split)",
        "SGC",
        ACC,
        "71.9 ± 0.1",
        "Wu et al., ICML 2019, Table 2",
        f"72.5 ({DGL_SGC}, wd 5e-5, 150 epochs, bias)",
    ),
    row("citeseer_appnp", "CiteSeer (public split)", "APPNP", ACC, "71.5", DGL_APPNP, "71.5 (same)"),
    row("citeseer_mlp", "CiteSeer (public split)", "MLP", ACC, "46.5", f"{KIPF}, Table 3"),
    row(
        "amazon-photo_gcn",
        "Amazon Photo (LCC, 20/30 per class, random splits)",
        "GCN",
        ACC,
        "91.2 ± 1.2",
        "Shchur et al., R2L@NeurIPS 2018, Table 2 (value as cited in issue 5)",
    ),
    row(
        "amazon-photo_mlp",
        "Amazon Photo (LCC, 20/30 per class, random splits)",
        "MLP",
        ACC,
        "69.6 ± 3.8",
        "Shchur et al., R2L@NeurIPS 2018, Table 2 (value as cited in issue 5)",
    ),
    row("facebook_gcn", "Facebook page-page (stratified 10/10/80, seed 0)", "GCN", ACC, "none (ours)"),
    row("facebook_mlp", "Facebook page-page (stratified 10/10/80, seed 0)", "MLP", ACC, "none (ours)"),
    row("nations_distmult", "Nations", "DistMult", KG, f"{CONVE_NA}; ConvE: MRR 82, H@10 100", CONVE_README),
    row("nations_complex", "Nations", "ComplEx", KG, f"{CONVE_NA}; ConvE: MRR 82, H@10 100", CONVE_README),
    row("nations_rgcn", "Nations", "R-GCN + DistMult", KG, "none (ours)"),
    row("umls_distmult", "UMLS", "DistMult", KG, f"{CONVE_NA}; ConvE: MRR 94, H@10 99", CONVE_README),
    row("umls_complex", "UMLS", "ComplEx", KG, f"{CONVE_NA}; ConvE: MRR 94, H@10 99", CONVE_README),
    row("umls_rgcn", "UMLS", "R-GCN + DistMult", KG, "none (ours)"),
    row("kinship_distmult", "Kinship", "DistMult", KG, f"{CONVE_NA}; ConvE: MRR 83, H@10 98", CONVE_README),
    row("kinship_complex", "Kinship", "ComplEx", KG, f"{CONVE_NA}; ConvE: MRR 83, H@10 98", CONVE_README),
    row("kinship_rgcn", "Kinship", "R-GCN + DistMult", KG, "none (ours)"),
    row(
        "fb15k-237_distmult",
        "FB15k-237",
        "DistMult",
        KG,
        "MRR 34.3, H@10 53.1",
        "LibKGE / Ruffinelli et al., ICLR 2020, as cited in issue 5",
    ),
    row(
        "fb15k-237_rgcn",
        "FB15k-237",
        "R-GCN + DistMult",
        KG,
        "MRR 24.8, H@10 41.4",
        "Schlichtkrull et al., ESWC 2018, as cited in issue 5",
    ),
    row(
        "ml-100k_gcmc",
        "MovieLens-100K (u1)",
        "GC-MC",
        ["test_rmse"],
        "0.910",
        "van den Berg et al., 2017, Table 3 (no side features)",
        scale=1.0,
    ),
    row(
        "gowalla_mf",
        "Gowalla (LightGCN split)",
        "MF-BPR",
        ["test_recall@20", "test_ndcg@20"],
        "no value given in issue 5",
        "",
        scale=1.0,
    ),
    row(
        "gowalla_lightgcn",
        "Gowalla (LightGCN split)",
        "LightGCN (3 layers, d 64)",
        ["test_recall@20", "test_ndcg@20"],
        "R@20 .1830, N@20 .1554",
        "He et al., SIGIR 2020, Table 3",
        scale=1.0,
    ),
    row("ogbl-ddi_gcn", "ogbl-ddi", "GCN", ["test_hits@20"], "37.07 ± 5.07", "OGB leaderboard (GCN)"),
    row(
        "ogbl-ddi_sage",
        "ogbl-ddi",
        "GraphSAGE",
        ["test_hits@20"],
        "53.90 ± 4.74",
        "OGB leaderboard (GraphSAGE)",
    ),
]


def latest_runs(log: Path) -> dict[str, dict]:
    """row -> newest successful log record (later lines win)."""
    out: dict[str, dict] = {}
    if not log.is_file():
        return out
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("returncode") == 0 and rec.get("run_dir"):
            out[rec["row"]] = rec
    return out


def seed_results(run_dir: Path) -> list[dict]:
    """Every results.json under the run (plain run: seed-*/; sweep: point-*/seed-*/)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(run_dir.glob("**/seed-*/results.json"))]


def values(run_dir: Path, key: str) -> list[float]:
    """All per-run values of ``key`` (over seeds, and over sweep points)."""
    return [r["metrics"][key] for r in seed_results(run_dir) if r["metrics"].get(key) is not None]


def fmt(vals: list[float], scale: float) -> str:
    if not vals:
        return "n/a"
    digits = 2 if scale == 100.0 else 4
    mean = statistics.fmean(vals) * scale
    if len(vals) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals) * scale:.{digits}f} (n={len(vals)})"


def build(out: Path) -> tuple[str, list[dict]]:
    runs = latest_runs(out / "log.jsonl")
    lines = [
        "| dataset | model | metric | ours: mean ± std (n runs) | reference (source) | DGL / PyG example |"
        " epochs run | wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    records = []
    for r in ROWS:
        rec = runs.get(r["name"])
        if rec is None:
            lines.append(
                f"| {r['dataset']} | {r['model']} | {', '.join(r['metrics'])} | not run | {r['ref']}"
                f" ({r['source']}) | {r['dgl'] or '–'} | – | – |"
            )
            continue
        run_dir = ROOT / rec["run_dir"]
        res = seed_results(run_dir)
        ours = "; ".join(
            f"{k.removeprefix('test_')} {fmt(values(run_dir, k), r['scale'])}" for k in r["metrics"]
        )
        epochs = sorted({x["epochs_run"] for x in res})
        ep = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}"
        ref = f"{r['ref']} ({r['source']})" if r["source"] else r["ref"]
        example = " / ".join(x for x in (r["dgl"], r["pyg"]) if x) or "–"
        lines.append(
            f"| {r['dataset']} | {r['model']} | {', '.join(r['metrics'])} | {ours} | {ref} | {example} |"
            f" {ep} | {rec['wall_s'] / 60:.1f} min |"
        )
        records.append(
            {
                **r,
                "command": rec["command"],
                "run_dir": rec["run_dir"],
                "machine": rec["machine"],
                "threads": rec.get("threads"),
                "values": {k: values(run_dir, k) for k in r["metrics"]},
            }
        )
    return "\n".join(lines) + "\n", records


def commands(records: list[dict]) -> str:
    out = []
    for rec in records:
        m = rec["machine"]
        out.append(
            f"- `{rec['name']}`: `DGLBACKEND=pytorch OMP_NUM_THREADS={rec['threads']} {rec['command']}`"
            f" (run dir `{rec['run_dir']}`; {m['cpu']}, {m['cores']} cores shared with other jobs)"
        )
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="experiments/runs/reproduce", help="run_all.py's --out")
    p.add_argument("--json", action="store_true", help="print the per-row records as JSON instead")
    args = p.parse_args(argv)
    table, records = build(ROOT / args.out)
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        print(table)
        print(commands(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
