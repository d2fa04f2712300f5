"""Scaling (issue 6, 4c): training time and peak RSS of GCN training on random graphs from 1e5 to 1e8 edges.

Every point runs in a fresh subprocess (``--point``), so its peak RSS (``VmHWM`` from /proc/self/status)
belongs to that point alone. Graph: N = E / avg_degree nodes, E uniform random directed edges
(``torch.randint``; duplicates and self-loops not removed at generation), X (N, 16) float32 random,
8 random classes. The graph is built the graphnet way: ``adjacency`` -> the model's ``preprocess``
(``ops.gcn_norm``, whose ``A + I`` coalesces: the few duplicate edges, about E^2 / (2 N^2) = 50 here,
are merged into weight-2 entries and random self-loops into weight-2 diagonal entries) -> CSR
materialized once. So the trained graph is a weighted simple graph, nnz <= E + N.
Model: graphnet GCN, 2 layers, 16 -> 16 -> 8, dropout 0.5, Adam lr 0.01.
- full: one epoch = full-batch forward + backward + step (loss on a random 10% of the nodes).
- sampled: ``graphnet.sampling.NeighborSampler([10, 10])``, up to ``--batches`` batches of 1,024 seed nodes
  drawn from the 10% training nodes (one batch at E = 1e5);
  one timed run = sample + ``model(blocks, X[input_nodes])`` + backward + step for each of those batches
  (what ``task.fanouts = [10, 10]`` runs inside the Trainer). This is NOT a full epoch: a full sampled
  epoch covers all N / 10 training nodes, so it grows with the number of training nodes (linear in E
  here, since N = E / 10), about (time per batch) x N / 10,240 batches.
Reported per point: build time (random edges -> normalized CSR), median time of ``--epochs`` timed runs
(full: one epoch; sampled: up to ``--batches`` batches) after one warm-up run, RSS after imports, and peak
RSS, in GB = 1e9 bytes. Slopes are least-squares fits of log(y) on log(E).

Run (about 2 minutes on 2 idle cores, 10-15 on loaded ones, with the 1e8 point; Markdown to --out):
    DGLBACKEND=pytorch .venv/bin/python experiments/benchmarks/scaling_bench.py \
        --out experiments/benchmarks/RESULTS-scaling.md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="Markdown file to write the results to")
    p.add_argument("--full", default="1e5,1e6,1e7,3e7", help="edge counts for full-batch training")
    p.add_argument("--sampled", default="1e5,1e6,1e7,1e8", help="edge counts for sampled training")
    p.add_argument("--avg-degree", type=int, default=10)
    p.add_argument("--feat", type=int, default=16)
    p.add_argument("--batches", type=int, default=10, help="sampled batches per timed run (not a full epoch)")
    p.add_argument("--epochs", type=int, default=2, help="timed runs per point (full: epochs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--point", help="internal: 'full:<E>' or 'sampled:<E>' (run one point, print JSON)")
    return p.parse_args()


def vm(key: str) -> float:
    """A /proc/self/status field (kB = 1024 bytes there) in GB = 1e9 bytes (VmRSS = now, VmHWM = peak)."""
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith(key + ":"))
    return kb * 1024 / 1e9


def run_point(mode: str, num_edges: int, args) -> dict:
    common.setup_threads(args.threads)
    import torch
    import torch.nn.functional as F

    from graphnet.graph import adjacency
    from graphnet.nn.models import GCN
    from graphnet.sampling import NeighborSampler

    rss_imports = vm("VmRSS")
    n = max(num_edges // args.avg_degree, 2)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.perf_counter()
    src = torch.randint(0, n, (num_edges,), generator=gen)
    dst = torch.randint(0, n, (num_edges,), generator=gen)
    A = adjacency(src, dst, n)
    del src, dst
    A = GCN.preprocess(A)  # ops.gcn_norm: self-loops + symmetric normalization, once
    A.csr()  # materialize CSR on the object that is reused (DGL then runs its CSR kernels)
    build_s = time.perf_counter() - t0
    X = torch.randn(n, args.feat, generator=gen)
    y = torch.randint(0, 8, (n,), generator=gen)
    train = torch.randperm(n, generator=gen)[: max(n // 10, 1)]
    steps = 1 if mode == "full" else len(train[: args.batches * 1024].split(1024))  # fewer on small graphs
    torch.manual_seed(args.seed)
    model = GCN(args.feat, 8, hidden_dim=16, num_layers=2, dropout=0.5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sampler = NeighborSampler([10, 10])

    def epoch_full() -> None:
        opt.zero_grad()
        F.cross_entropy(model(A, X)[train], y[train]).backward()
        opt.step()

    def epoch_sampled() -> None:
        perm = train[torch.randperm(train.numel(), generator=gen)]
        for seeds in perm[: args.batches * 1024].split(1024):
            mb = sampler.sample(A, seeds, gen)
            H = model(mb.blocks, X[mb.input_nodes])  # the stack over the L sampled blocks: (1024, 8)
            opt.zero_grad()
            F.cross_entropy(H, y[mb.output_nodes]).backward()
            opt.step()

    epoch = epoch_full if mode == "full" else epoch_sampled
    epoch()  # warm-up
    times = []
    for _ in range(args.epochs):
        t = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t)
    return {
        "mode": mode,
        "edges": num_edges,
        "nodes": n,
        "nnz": int(A.nnz),
        "steps": steps,
        "build_s": build_s,
        "time_s": statistics.median(times),
        "rss_imports_gb": rss_imports,
        "peak_gb": vm("VmHWM"),
    }


def slope(xs: list[float], ys: list[float]) -> float:
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly, strict=True)) / sum((a - mx) ** 2 for a in lx)


def main() -> None:
    args = parse_args()
    if args.point:
        mode, e = args.point.split(":")
        print(json.dumps(run_point(mode, int(float(e)), args)), flush=True)
        return
    load_before = common.uptime()
    rows, failures = [], []
    for mode, spec in (("full", args.full), ("sampled", args.sampled)):
        for e in [s for s in spec.split(",") if s]:
            cmd = [
                sys.executable,
                __file__,
                "--point",
                f"{mode}:{e}",
                "--avg-degree",
                str(args.avg_degree),
                "--feat",
                str(args.feat),
                "--batches",
                str(args.batches),
                "--epochs",
                str(args.epochs),
                "--threads",
                str(args.threads),
                "--seed",
                str(args.seed),
            ]
            load = common.uptime().split("load average:")[-1].strip()
            r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
            lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
            if r.returncode != 0 or not lines:
                failures.append(f"{mode} E={e}: exit {r.returncode}: {r.stderr.strip().splitlines()[-1:]}")
                continue
            row = json.loads(lines[-1])
            row["load"] = load
            rows.append(row)
            print(
                json.dumps(row), file=sys.stderr, flush=True
            )  # progress (this is a script, not the library)
    out = ["# Scaling: GCN training time and peak RSS vs edges (issue 6, 4c)", ""]
    common.setup_threads(args.threads)
    out += common.machine_header(args.threads, common.measure_bandwidth(), load_before, common.uptime())
    out += [
        f"- graphs: N = E / {args.avg_degree}, uniform random edges; the few duplicate edges and random "
        "self-loops are merged into weight-2 entries when gcn_norm adds self-loops (nnz = entries after "
        f"merging, self-loops included); X (N, {args.feat}) float32; GCN 2 layers {args.feat}->16->8",
        f"- time s: median of {args.epochs} timed runs after 1 warm-up; full: one epoch (full-batch "
        f"forward + backward + step); sampled: fanouts [10, 10], up to {args.batches} batches of 1,024 "
        "seeds drawn from the 10% training nodes (fewer on small graphs: 'steps'), NOT a full epoch: a full "
        "sampled epoch covers all N / 10 training nodes, so it grows with the number of training nodes "
        f"(linear in E here, since N = E / {args.avg_degree}); each point in a fresh subprocess",
        "- memory in GB = 1e9 bytes (VmRSS / VmHWM from /proc/self/status)",
        "",
        "| mode | edges | nodes | nnz (merged, + self-loops) | build s | steps | time s (full: epoch; "
        "sampled: 'steps' batches) | RSS after imports GB | peak RSS GB | peak - imports GB "
        "| load (1/5/15 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['mode']} | {r['edges']:.0e} | {r['nodes']:,} | {r['nnz']:,} | {r['build_s']:.1f} | "
            f"{r['steps']} | {r['time_s']:.2f} | {r['rss_imports_gb']:.2f} | {r['peak_gb']:.2f} | "
            f"{r['peak_gb'] - r['rss_imports_gb']:.2f} | {r['load']} |"
        )
    out += ["", "## Log-log slopes (d log y / d log E; 1 = linear in edges)", ""]
    for mode in ("full", "sampled"):
        rs = [r for r in rows if r["mode"] == mode]
        big = [r for r in rs if r["edges"] >= 1e6]
        if len(big) < 2:
            continue
        e = [r["edges"] for r in big]
        s_mem = slope(e, [r["peak_gb"] - r["rss_imports_gb"] for r in big])
        s_build = slope(e, [r["build_s"] for r in big])
        s_time = slope(e, [r["time_s"] for r in big])
        what = "epoch time" if mode == "full" else f"time of up to {args.batches} batches (not an epoch)"
        out.append(
            f"- {mode} (E >= 1e6, {len(big)} points): peak RSS above imports {s_mem:.2f}, build time "
            f"{s_build:.2f}, {what} {s_time:.2f}"
        )
    top = [r for r in rows if r["mode"] == "sampled" and r["edges"] >= 1e8]
    if top:
        out.append(
            f"- target 'sampled training on 1e8 edges fits in 24 GB' (GB = 1e9 bytes): peak RSS "
            f"{top[0]['peak_gb']:.2f} GB "
            f"-> {'met' if top[0]['peak_gb'] <= 24 else 'NOT met'}"
        )
    if failures:
        out += ["", "Failed points:"] + [f"- {f}" for f in failures]
    text = "\n".join(out) + "\n"
    if args.out:
        common.write_report(args.out, text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
