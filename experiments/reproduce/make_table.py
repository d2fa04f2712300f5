"""Build the reproduction table (experiments/RESULTS.md) from the committed ledger of reproduction runs.

Usage (from the repository root)::

    python experiments/reproduce/make_table.py --ingest                       # log.jsonl -> ledger
    python experiments/reproduce/make_table.py --ingest --pool-with-previous --note "seed 4 of ..."
    python experiments/reproduce/make_table.py --update experiments/RESULTS.md  # rewrite the table in place
    python experiments/reproduce/make_table.py [--json]                       # print table (or records)

Run directories (``experiments/runs/``) are gitignored and do not survive a fresh checkout, so the numbers
behind the table live in ``experiments/reproduce/ledger.jsonl`` (committed): one line per finished
reproduction with its command, run dir, wall time, machine and every run's final metrics and epochs.
``--ingest`` appends a ledger line for each successful run in ``OUT/log.jsonl`` (run_all.py's log) that the
ledger does not hold yet, read from that run's ``results.json`` files. For each row the table takes the
newest ledger line: ours as mean ± unbiased std over the seeds (for a [sweep] over data splits: over every
split x seed run; a row whose runs pick their epoch on test also shows the last epoch's value, which
involves no selection), the reference with its source, DGL's / PyG's example numbers where known, epochs,
wall time. ``--update`` replaces the table and command list of a RESULTS.md, keeping the old line of any row
the ledger has no entry for (rows run before the ledger existed), and the gap table if the file has one
(``gap``: ours minus the reference, issue 5's target, and the difference over its standard error where the
reference's run count is known). Nothing here is typed in by hand except the reference values, their run
counts and their sources.

Seeds run in separate sessions (a 2-hour ogbl-ddi run per seed) are pooled when the newest line says so:
``"pool_with": [run_dir, ...]`` names earlier ledger lines of the same row (``--ingest --pool-with-previous``
writes it: the previous line of the row and everything that line pooled; ``--note`` sets the "note"). The
table then reports mean ± std over the runs of all of them, and ``pool_check`` refuses the pool unless
every run is clean (git_dirty false), no seed appears twice, the commands differ at most in ``--set
seed=N``, and between the commits the runs recorded, neither the row's config (parsed, ``seed`` aside) nor
``graphnet/`` nor ``requirements.lock`` changed.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))  # graphnet.io, when run as a script from the repository root
from graphnet.io import atomic_write_text  # noqa: E402  (needs the path above; light: no torch import)

LEDGER = ROOT / "experiments" / "reproduce" / "ledger.jsonl"
TABLE_HEADER = "| dataset | model | metric |"
GAP_HEADER = "| row | metric | ours | reference | ours - reference |"
DGL_GCN = "DGL examples/pytorch/gcn README, train.py"
DGL_GAT = "DGL examples/pytorch/gat README, train.py"
DGL_SGC = "DGL examples/pytorch/sgc README"
DGL_APPNP = "DGL examples/pytorch/appnp README"
KIPF = "Kipf & Welling, ICLR 2017"
CONVE = "Dettmers et al., AAAI 2018"
CONVE_README = "TimDettmers/ConvE README"
CONVE_NA = f"{CONVE} DistMult/ComplEx table not retrievable here"
# OGB's leaderboard entries for ddi GCN / SAGE are its own example, written with PyG's GCNConv / SAGEConv.
OGB_DDI_PYG = "PyG: the reference itself (OGB example snap-stanford/ogb examples/linkproppred/ddi/gnn.py)"


def row(name, dataset, model, metrics, ref="", source="", dgl="", pyg="", scale=100.0, ref_n=None):
    """metrics: result keys shown (first = headline); ref: reference text; scale: 100 for percentages;
    ref_n: how many runs the reference's mean ± std is over, where the source says (for the gap's SE)."""
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
        "ref_n": ref_n,
    }


ACC = ["test_accuracy"]
KG = ["test_mrr", "test_hits@10"]
ROWS = [
    row(
        "cora_gcn", "Cora (public split)", "GCN", ACC, "81.5", f"{KIPF}, Table 2",
        f"~81.0 ({DGL_GCN}; its older gcn.py version: 82.6)",
    ),
    row(
        "cora_gat",
        "Cora (public split)",
        "GAT",
        ACC,
        "83.0 ± 0.7",
        "Velickovic et al., ICLR 2018, Table 2",
        f"~82.1 ({DGL_GAT}; its older 300-epoch version: 84.0)",
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
    row(
        "citeseer_gcn", "CiteSeer (public split)", "GCN", ACC, "70.3", f"{KIPF}, Table 2",
        f"~70.7 ({DGL_GCN})",
    ),
    row(
        "citeseer_gat",
        "CiteSeer (public split)",
        "GAT",
        ACC,
        "72.5 ± 0.7",
        "Velickovic et al., ICLR 2018, Table 2",
        f"~71.0 ({DGL_GAT}; its older 300-epoch version: 70.7)",
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
        "MRR 34.3, H@10 53.1 (LibKGE / Ruffinelli et al., ICLR 2020, as cited in issue 5; LibKGE's own"
        " recipe, see the notes); with ConvE's 1-N protocol, as ours: MRR 24.1, H@10 41.9",
        f"{CONVE}, as listed in the dice-group/Convolutional-Complex-Knowledge-Graph-Embeddings README",
    ),
    row(
        "fb15k-237_rgcn",
        "FB15k-237",
        "R-GCN + DistMult",
        KG,
        "MRR 24.8, H@10 41.4",
        "Schlichtkrull et al., ESWC 2018, as cited in issue 5",
        "MRR 20.44 (DGL examples/pytorch/rgcn README, filtered; no Hits@10 given)",
    ),
    row(
        "ml-100k_gcmc",
        "MovieLens-100K (u1)",
        "GC-MC",
        ["test_rmse"],
        "0.910",
        "van den Berg et al., 2017, Table 3 (no side features)",
        "0.9088 (DGL examples/pytorch/gcmc README, no features, full graph)",
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
    row("ogbl-ddi_gcn", "ogbl-ddi", "GCN", ["test_hits@20"], "37.07 ± 5.07", "OGB leaderboard (GCN)",
        pyg=OGB_DDI_PYG, ref_n=10),
    row(
        "ogbl-ddi_sage",
        "ogbl-ddi",
        "GraphSAGE",
        ["test_hits@20"],
        "53.90 ± 4.74",
        "OGB leaderboard (GraphSAGE)",
        pyg=OGB_DDI_PYG,
        ref_n=10,  # OGB's leaderboard rules: mean ± std over 10 runs
    ),
]


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file ([] if it does not exist); SystemExit naming the line for a bad one.

    A last line without its newline that does not parse is skipped with a warning: an append cut short (a
    process killed while writing, a full disk) must not make every finished run before it unreadable."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                if i == len(lines) and not text.endswith("\n"):
                    print(f"warning: {path}:{i}: skipping a cut-off last line ({e.msg})", file=sys.stderr)
                    continue
                raise SystemExit(f"{path}:{i}: not a JSON line ({e.msg})") from None
    return out


def latest_runs(log: Path) -> dict[str, dict]:
    """row -> newest successful record of run_all.py's log (later lines win); plot_curve.py reads these."""
    return {r["row"]: r for r in read_jsonl(log) if r.get("returncode") == 0 and r.get("run_dir")}


def results_files(run_dir: Path) -> list[Path]:
    """Every results.json under the run (plain run: seed-*/; sweep: point-*/seed-*/), in path order."""
    return sorted(run_dir.glob("**/seed-*/results.json"))


def seed_results(run_dir: Path) -> list[dict]:
    """The content of every results.json under the run (see ``results_files``)."""
    return [json.loads(p.read_text(encoding="utf-8")) for p in results_files(run_dir)]


def ingest(log: Path, ledger: Path = LEDGER, *, pool_with_previous: bool = False, note: str | None = None,
           same_code: SameCode | None = None) -> list[str]:
    """Append a ledger line for every successful run in ``log`` that the ledger lacks; returns their rows.

    A ledger line is the log record (row, command, run_dir, wall_s, started, threads, machine, and a
    hand-written "note" where a run deviated from its command) plus
    ``runs``: one {"path", "metrics", "epochs_run", "git_commit", "git_dirty"} per results.json of the run
    (the code each seed ran, as the runner recorded it; plus "last_metrics" for a run whose epoch was
    picked on test, see ``last_epoch``), so the table can be rebuilt without the (gitignored) run directory.

    ``note`` replaces the record's note on every new line. ``pool_with_previous`` (more seeds of a row
    already in the ledger) sets each new line's "pool_with" to the row's previous line and every line that
    one pooled (pooling is not transitive, so the list is written out whole), and runs ``pool_check`` on
    the result before anything is written: a pool the table would refuse never reaches the ledger.
    """
    same_code = same_code or git_same_code
    existing = read_jsonl(ledger)
    known = {e["run_dir"] for e in existing}
    newest = latest_entries(existing)  # row -> its previous line, updated as lines are added
    added, lines = [], []
    for rec in read_jsonl(log):
        if rec.get("returncode") != 0 or not rec.get("run_dir") or rec["run_dir"] in known:
            continue
        run_dir = ROOT / rec["run_dir"]
        files = results_files(run_dir)
        if not files:
            raise SystemExit(f"{log}: run {rec['run_dir']} ({rec['row']}) has no seed-*/results.json")
        runs = []
        for f in files:
            res = json.loads(f.read_text(encoding="utf-8"))
            runs.append({"path": str(f.parent.relative_to(run_dir)), "metrics": res["metrics"],
                         "epochs_run": res["epochs_run"], "git_commit": res.get("git_commit"),
                         "git_dirty": res.get("git_dirty"), **last_epoch(res)})
        keys = ("row", "command", "run_dir", "wall_s", "started", "threads", "machine", "note")
        entry = {k: rec[k] for k in keys if k in rec}  # "note": how a run deviated, when it did
        if note is not None:
            entry["note"] = note
        entry["runs"] = runs
        if pool_with_previous:
            prev = newest.get(rec["row"])
            if prev is None:
                raise SystemExit(f"{log}: --pool-with-previous: the ledger has no earlier line of "
                                 f"{rec['row']} to pool run {rec['run_dir']} with")
            entry["pool_with"] = [*(prev.get("pool_with") or []), prev["run_dir"]]
            pooled_entries(entry, existing, same_code)  # SystemExit naming the lines, ledger untouched
        lines.append(json.dumps(entry) + "\n")
        existing.append(entry)
        newest[rec["row"]] = entry
        known.add(rec["run_dir"])
        added.append(rec["row"])
    if lines:  # rewritten whole and atomically: a killed ingest never leaves half a line in the ledger
        old = ledger.read_text(encoding="utf-8") if ledger.is_file() else ""
        atomic_write_text(ledger, old + "".join(lines))
    return added


def last_epoch(res: dict) -> dict:
    """{"last_metrics": the test metrics of the last evaluation} for a run whose epoch was picked on test.

    A run that monitors a test metric (the Gowalla rows: the LightGCN paper reports its best epoch on test,
    having no validation split) reports an optimistic number; its last evaluation (the newest history entry
    with test metrics: an early stop can end on an epoch that was not evaluated) involves no selection, so
    the table shows both. Empty for other runs."""
    hist = res.get("history") or []
    evaluated = [h for h in hist if any(k.startswith("test_") for k in h)]
    if not str(res.get("monitor", "")).startswith("test_") or not evaluated:
        return {}
    return {"last_metrics": {k: v for k, v in evaluated[-1].items() if k.startswith("test_")}}


def latest_entries(ledger_lines: list[dict]) -> dict[str, dict]:
    """row -> newest of the ledger lines (later lines win)."""
    return {e["row"]: e for e in ledger_lines}


def values(entry: dict, key: str, field: str = "metrics") -> list[float]:
    """All per-run values of ``key`` in a ledger line (over seeds, and over sweep points); ``field``
    "last_metrics" reads the last evaluation of runs selected on test (see ``last_epoch``).

    A run that has ``key`` as null (results.json writes a NaN metric, a diverged seed, as null) or lacks
    it gives NaN, so the row's mean is NaN and ``fmt`` says so, rather than averaging only the seeds that
    survived. Runs without ``field`` at all (no "last_metrics": not selected on test) give nothing."""
    out = []
    for r in entry["runs"]:
        if field in r:
            got = r[field].get(key)
            out.append(math.nan if got is None else got)
    return out


def jsonable(vals: list[float]) -> list[float | None]:
    """``vals`` with NaN as None (JSON has no NaN)."""
    return [None if math.isnan(v) else v for v in vals]


SEED_SET = re.compile(r"\s--set\s+seed=\d+")
RUN_KEYS = ("command", "run_dir", "started", "threads", "machine")  # what the command list shows of a run
SameCode = Callable[[str, str, str], "str | None"]  # (row, commit_a, commit_b) -> what differs, or None


def git_same_code(row: str, commit_a: str, commit_b: str) -> str | None:
    """None when ``row``'s config (parsed, ``seed`` aside), ``graphnet/`` and ``requirements.lock`` are the
    same at both commits of this repository; otherwise what differs."""
    if commit_a == commit_b:
        return None

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    configs = []
    for c in (commit_a, commit_b):
        shown = git("show", f"{c}:experiments/reproduce/{row}.toml")
        if shown.returncode != 0:
            return f"cannot read experiments/reproduce/{row}.toml at {c} ({shown.stderr.strip()})"
        cfg = tomllib.loads(shown.stdout)
        cfg.pop("seed", None)
        configs.append(cfg)
    if configs[0] != configs[1]:
        return f"experiments/reproduce/{row}.toml differs between {commit_a[:7]} and {commit_b[:7]}"
    diff = git("diff", "--quiet", commit_a, commit_b, "--", "graphnet", "requirements.lock")
    if diff.returncode != 0:
        what = "changed" if diff.returncode == 1 else f"not comparable ({diff.stderr.strip()})"
        return f"graphnet/ or requirements.lock {what} between {commit_a[:7]} and {commit_b[:7]}"
    return None


def pool_check(entries: list[dict], same_code: SameCode = git_same_code) -> None:
    """Refuse (SystemExit naming the ledger lines) to pool ``entries`` unless they are one experiment run in
    parts: same row, clean runs, disjoint seeds, commands equal up to ``--set seed=N``, same code."""
    first = entries[0]
    where = ", ".join(e["run_dir"] for e in entries)
    rows = {e["row"] for e in entries}
    if len(rows) != 1:
        raise SystemExit(f"ledger: pool_with mixes rows {sorted(rows)} ({where})")
    paths = [r["path"] for e in entries for r in e["runs"]]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise SystemExit(f"ledger: pooled lines of {first['row']} repeat {', '.join(twice)} ({where})")
    dirty = [e["run_dir"] for e in entries for r in e["runs"] if r.get("git_dirty") is not False]
    if dirty:
        raise SystemExit(f"ledger: {first['row']}: cannot pool runs of uncommitted code ({dirty[0]})")
    commands = {SEED_SET.sub("", e["command"]) for e in entries}
    if len(commands) != 1:
        raise SystemExit(f"ledger: pooled lines of {first['row']} ran different commands: {sorted(commands)}")
    ref = first["runs"][0]["git_commit"]
    for e in entries:
        for r in e["runs"]:
            why = same_code(first["row"], ref, r["git_commit"])
            if why:
                raise SystemExit(f"ledger: cannot pool {e['run_dir']} with {first['run_dir']}: {why}")


def pooled_entries(entry: dict, ledger_lines: list[dict], same_code: SameCode = git_same_code) -> list[dict]:
    """``entry`` and the earlier ledger lines its "pool_with" names, oldest first, checked by pool_check."""
    names = entry.get("pool_with") or []
    if not names:
        return [entry]
    by_dir = {e["run_dir"]: e for e in ledger_lines}
    missing = [n for n in names if n not in by_dir]
    if missing:
        raise SystemExit(f"ledger: {entry['run_dir']}: pool_with names no ledger line {missing[0]!r}")
    entries = [by_dir[n] for n in names] + [entry]
    pool_check(entries, same_code)
    return entries


def fmt(vals: list[float], scale: float) -> str:
    """Mean ± unbiased std of ``vals`` x ``scale`` and their count: "81.84 ± 0.70 (n=10)"."""
    if not vals:
        return "n/a"
    nan = sum(math.isnan(v) for v in vals)
    if nan:
        return f"n/a ({nan} of {len(vals)} runs NaN)"
    digits = 2 if scale == 100.0 else 4
    mean = statistics.fmean(vals) * scale
    if len(vals) == 1:
        return f"{mean:.{digits}f} (n=1)"
    return f"{mean:.{digits}f} ± {statistics.stdev(vals) * scale:.{digits}f} (n={len(vals)})"


def shown(entry: dict, row: dict, field: str = "metrics") -> str:
    """The row's metrics over the entry's runs, e.g. "recall@20 0.1409 (n=1); ndcg@20 0.1214 (n=1)"."""
    return "; ".join(f"{k.removeprefix('test_')} {fmt(values(entry, k, field), row['scale'])}"
                     for k in row["metrics"])


def build(ledger: Path = LEDGER, same_code: SameCode = git_same_code) -> tuple[dict[str, str], list[dict]]:
    """row name -> table line (only rows with a ledger entry), and the per-row records.

    A row's numbers come from its newest ledger line, pooled with the lines it names in "pool_with"."""
    all_lines = read_jsonl(ledger)
    entries = latest_entries(all_lines)
    lines, records = {}, []
    for r in ROWS:
        e = entries.get(r["name"])
        if e is None:
            continue
        parts = pooled_entries(e, all_lines, same_code)
        e = {**e, "runs": [x for p in parts for x in p["runs"]]}  # the newest line, with every pooled run
        ours = shown(e, r)
        if any("last_metrics" in x for x in e["runs"]):  # picked on test: also the selection-free number
            ours = f"best epoch on test: {ours}; last epoch (no selection): {shown(e, r, 'last_metrics')}"
        dirty = sum(x.get("git_dirty") is not False for x in e["runs"])
        if dirty:  # pool_check refuses these in a pool; a single line is shown, but not as if committed
            ours += f"; {dirty} of {len(e['runs'])} runs with uncommitted changes (git_dirty)"
        epochs = sorted({x["epochs_run"] for x in e["runs"]})
        ep = f"{epochs[0]}" if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}"
        ref = f"{r['ref']} ({r['source']})" if r["source"] else r["ref"]
        example = " / ".join(x for x in (r["dgl"], r["pyg"]) if x) or "–"
        wall = " + ".join(f"{p['wall_s'] / 60:.1f}" for p in parts)
        lines[r["name"]] = (
            f"| {r['dataset']} | {r['model']} | {', '.join(r['metrics'])} | {ours} | {ref} | {example} |"
            f" {ep} | {wall} min |"
        )
        records.append({**r, "command": e["command"], "run_dir": e["run_dir"], "machine": e["machine"],
                        "threads": e.get("threads"), "started": e.get("started"),
                        "pooled": [{k: p.get(k) for k in RUN_KEYS} for p in parts[:-1]],
                        "values": {k: jsonable(values(e, k)) for k in r["metrics"]},
                        "headline_by_line": [jsonable(values(p, r["metrics"][0])) for p in parts]})
    return lines, records


def table(lines: dict[str, str], old: dict[str, str] | None = None) -> str:
    """The markdown table in ROWS order; rows without a new line keep ``old``'s line, else "not run"."""
    out = [
        f"{TABLE_HEADER} ours: mean ± std (n runs) | reference (source) | DGL / PyG example | epochs run |"
        " wall time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        line = lines.get(r["name"]) or (old or {}).get(r["name"])
        if line is None:
            ref = f"{r['ref']} ({r['source']})" if r["source"] else r["ref"]
            line = (f"| {r['dataset']} | {r['model']} | {', '.join(r['metrics'])} | not run | {ref} |"
                    " – | – | – |")
        out.append(line)
    return "\n".join(out) + "\n"


# A reference that is one number, optionally "± std" ("37.07 ± 5.07", "0.910"); others are text.
REF_VALUE = re.compile(r"(-?\d*\.?\d+)(?: ± (\d*\.?\d+))?")
# The headline cell of a table line as fmt() writes it: "accuracy 81.84 ± 0.70 (n=10)".
SHOWN = re.compile(r"[\w@]+ (-?\d+\.\d+)(?: ± (\d+\.\d+))? \(n=(\d+)\)")


def reference(row: dict) -> tuple[float, float | None] | None:
    """(mean, std or None) of a row's reference when it is one number, else None."""
    m = REF_VALUE.fullmatch(row["ref"].strip())
    return None if m is None else (float(m[1]), float(m[2]) if m[2] else None)


def gap_history(rec: dict) -> list[float]:
    """For a pooled row: ours minus the reference after each pooled ledger line (oldest first), on the
    table's scale, from the exact per-run values; [] for a row of one line or a reference that is text."""
    ref = reference(rec)
    by_line = rec.get("headline_by_line") or []
    if ref is None or len(by_line) < 2:
        return []
    seen: list[float] = []
    out = []
    for vals in by_line:
        seen += [math.nan if v is None else v for v in vals]
        out.append(statistics.fmean(seen) * rec["scale"] - ref[0])
    return out


def gap(row: dict, line: str, history: list[float] | None = None) -> str | None:
    """The gap-table line of ``row``, from its results-table ``line`` (shown, rounded values), or None when
    the reference or our headline is not a single number.

    target: issue 5's "within one reported std, or 1.0 accuracy point": |ours - ref| <= max(ref std, 1 point)
    for percentages, <= ref std otherwise. Where the source gives its number of runs (``ref_n``), the
    difference of the two means is also set against its standard error, sqrt(s²/n + s_ref²/n_ref)
    (Welch's, unbiased stds): a ratio beyond about ±2 is unlikely from seed noise alone."""
    ref = reference(row)
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    headline = cells[3].split(";")[0].strip() if len(cells) > 3 else ""
    ours = SHOWN.fullmatch(headline)
    if ref is None or ours is None:
        return None
    d = 2 if row["scale"] == 100.0 else 4
    mean, sd, n = float(ours[1]), float(ours[2]) if ours[2] else None, int(ours[3])
    ref_mean, ref_sd = ref
    diff = mean - ref_mean
    tol = max(ref_sd or 0.0, 1.0 if row["scale"] == 100.0 else 0.0)
    within = f"{'yes' if round(abs(diff), d) <= tol else 'no'} (±{tol:.{d}f})" if tol else "– (no std given)"
    se = z = "–"
    if row.get("ref_n") and ref_sd is not None and sd is not None and n >= 2:
        err = math.sqrt(sd ** 2 / n + ref_sd ** 2 / row["ref_n"])
        se, z = f"sqrt({sd:.{d}f}²/{n} + {ref_sd:.{d}f}²/{row['ref_n']}) = {err:.{d}f}", f"{diff / err:+.2f}"
    hist = ", ".join(f"{h:+.{d}f}" for h in history) if history else "–"
    return (f"| `{row['name']}` | {row['metrics'][0]} | {headline} | {row['ref']} |"
            f" {diff:+.{d}f} | {within} | {se} | {z} | {hist} |")


def gap_table(lines: dict[str, str], records: list[dict]) -> str:
    """The gap table (ROWS order) for the rows of ``lines`` whose reference is a number."""
    history = {rec["name"]: gap_history(rec) for rec in records}
    out = [
        f"{GAP_HEADER} within target: max(ref std, 1 point) | standard error of the difference |"
        " difference / SE | difference after each pooled line |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ROWS:
        g = gap(r, lines[r["name"]], history.get(r["name"])) if r["name"] in lines else None
        if g:
            out.append(g)
    return "\n".join(out) + "\n"


def command_line(rec: dict) -> str:
    """One "- `row`: ..." line: the newest run's command, and before it any runs pooled with it."""

    def one(run: dict) -> str:
        m = run["machine"]
        when = f"{run['started']}; " if run.get("started") else ""
        # threads None: run_all.py ran the row with OMP_NUM_THREADS unset (torch's default thread count)
        threads = f" OMP_NUM_THREADS={run['threads']}" if run.get("threads") else ""
        return (f"`DGLBACKEND=pytorch{threads} {run['command']}` (run dir"
                f" `{run['run_dir']}`; {when}{m['cpu']}, {m['cores']} cores)")

    pooled = rec.get("pooled") or []
    prefix = "".join(f"{one(p)}, pooled with " for p in pooled)
    return f"- `{rec['name']}`: {prefix}{one(rec)}"


def update(results_md: Path, lines: dict[str, str], records: list[dict]) -> None:
    """Rewrite the table block, the gap table (if the file has one) and the ``- `row`: ...`` command list of
    ``results_md`` in place (atomic).

    Rows with a ledger entry get new lines; the others keep theirs. A table block runs from its header line
    to the next blank line; the command list is the first unbroken run of lines starting with "- `<row>`:"
    (a later line that happens to start so, e.g. a bullet of the notes, is prose and left alone).
    """
    text = results_md.read_text(encoding="utf-8").split("\n")
    names = {r["name"] for r in ROWS}
    by_dataset_model = {(r["dataset"], r["model"], ", ".join(r["metrics"])): r["name"] for r in ROWS}
    try:
        start = next(i for i, ln in enumerate(text) if ln.startswith(TABLE_HEADER))
    except StopIteration:
        raise SystemExit(f"{results_md}: no table starting with {TABLE_HEADER!r}") from None
    end = next((i for i in range(start, len(text)) if not text[i].strip()), len(text))
    old_lines = {}
    for ln in text[start + 2:end]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        name = by_dataset_model.get(tuple(cells[:3]))
        if name:
            old_lines[name] = ln
    new_table = table(lines, old_lines).rstrip("\n").split("\n")
    text[start:end] = new_table
    gap_start = next((i for i, ln in enumerate(text) if ln.startswith(GAP_HEADER)), None)
    if gap_start is not None:  # the gap table, from every row's line as it now stands
        gap_end = next((i for i in range(gap_start, len(text)) if not text[i].strip()), len(text))
        shown_lines = {**old_lines, **lines}
        text[gap_start:gap_end] = gap_table(shown_lines, records).rstrip("\n").split("\n")

    def cmd_row(ln: str) -> str | None:
        name = ln[3:].split("`", 1)[0] if ln.startswith("- `") else None
        return name if name in names else None

    first = next((i for i, ln in enumerate(text) if cmd_row(ln)), None)
    if first is not None:
        last = first
        while last + 1 < len(text) and cmd_row(text[last + 1]):
            last += 1
        old_cmds = {cmd_row(ln): ln for ln in text[first:last + 1] if cmd_row(ln)}
        new_cmds = {rec["name"]: command_line(rec) for rec in records}
        text[first:last + 1] = [new_cmds.get(r["name"]) or old_cmds[r["name"]]
                                for r in ROWS if r["name"] in new_cmds or r["name"] in old_cmds]
    atomic_write_text(results_md, "\n".join(text))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="experiments/runs/reproduce", help="run_all.py's --out (for --ingest)")
    p.add_argument("--ledger", default=str(LEDGER.relative_to(ROOT)), help="the committed ledger")
    p.add_argument("--ingest", action="store_true", help="add OUT/log.jsonl's new runs to the ledger")
    p.add_argument("--pool-with-previous", action="store_true",
                   help="with --ingest: pool each new run with its row's previous ledger line(s)")
    p.add_argument("--note", help="with --ingest: the note of every new ledger line (how the run came about)")
    p.add_argument("--update", metavar="RESULTS_MD",
                   help="rewrite this file's table, gap table and command list")
    p.add_argument("--json", action="store_true", help="print the per-row records as JSON instead")
    args = p.parse_args(argv)
    ledger = ROOT / args.ledger
    if (args.pool_with_previous or args.note is not None) and not args.ingest:
        p.error("--pool-with-previous and --note only apply with --ingest")
    if args.ingest:
        added = ingest(ROOT / args.out / "log.jsonl", ledger, pool_with_previous=args.pool_with_previous,
                       note=args.note)
        print(f"ledger {args.ledger}: {len(added)} new line(s){': ' if added else ''}{', '.join(added)}",
              file=sys.stderr)
    lines, records = build(ledger)
    if args.update:
        update(ROOT / args.update, lines, records)
    elif args.json:
        print(json.dumps(records, indent=1))
    else:
        print(table(lines))
        print(gap_table(lines, records))
        print("\n".join(command_line(rec) for rec in records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
