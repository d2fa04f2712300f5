"""Kernel floor of GCN, SAGE and GIN against DGL's layers (issue 6, 4a: why 0.5x DGL is out of reach).

On an unweighted graph DGL's GraphConv, SAGEConv and GINConv aggregate with DGL's libxsmm ``copy_u`` SpMM,
the fastest SpMM in this stack, and graphnet dispatches to the same kernel. Both then pay the same dense
matmuls. This script times, in one process and round-robin with the two full layers, a *floor*: only those
shared kernels, chained with autograd and nothing else (no normalization, bias, eps, ReLU or copies):

- GCN:  ``Y = S(X W)``; backward: ``S^T`` on the upstream gradient, ``dW = X^T dH``, ``dX = dH W^T``.
- SAGE: ``Y = X W_s + S(X) W_n``; backward: 4 matmuls and ``S^T``.
- GIN:  ``Y = (S(X)) W_1 W_2`` (the MLP without its ReLU); backward: 4 matmuls and ``S^T``.

``S`` is ``dgl.ops.copy_u_sum`` (forward ``A @ X``, backward ``A^T @ G``, both libxsmm). Any implementation
built on these kernels takes at least the floor, so graphnet / DGL <= 0.5 needs floor / DGL <= 0.5. The
SpMM row times ``S`` alone (forward + backward) and, for comparison, the other SpMM kernels available here
(torch CSR via MKL, as graphnet's ``_spmm`` runs it for weighted values; dgl.sparse), forward + backward to
X, on the same graph.

Run on an idle machine (about 3 minutes; the Markdown goes to --out):
    DGLBACKEND=pytorch .venv/bin/python experiments/benchmarks/layers_floor.py \
        --out experiments/benchmarks/RESULTS-floor.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402
from layers_bench import build  # noqa: E402

LAYERS = ("gcn", "sage", "gin")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="Markdown file to write the results to")
    p.add_argument("--edges", default="200000,2000000", help="edge counts, before self-loops")
    p.add_argument("--avg-degree", type=int, default=20, help="N = edges / avg_degree")
    p.add_argument("--feat", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def floor_contenders(layer: str, n: int, src, dst, f: int, seed: int) -> list[common.Contender]:
    """The floor step of ``layer`` and the SpMM-only steps, on the graph ``layers_bench.build`` uses."""
    import dgl
    import dgl.sparse as dglsp
    import torch

    from graphnet import _spmm

    if layer == "gcn":  # layers_bench adds one self-loop per node for GCN
        loops = torch.arange(n)
        src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    g = dgl.graph((src, dst), num_nodes=n)
    gen = torch.Generator().manual_seed(seed + 1)
    X = torch.randn(n, f, generator=gen).requires_grad_(True)
    W1, W2 = (torch.randn(f, f, generator=gen).div_(f**0.5).requires_grad_(True) for _ in range(2))
    G = torch.randn(n, f, generator=gen)
    leaves = (X, W1, W2)

    def spmm(h):
        return dgl.ops.copy_u_sum(g, h)

    if layer == "gcn":
        def floor():
            return spmm(X @ W1)
    elif layer == "sage":
        def floor():
            return X @ W1 + spmm(X) @ W2
    else:
        def floor():
            return spmm(X) @ W1 @ W2

    # The other SpMM kernels of the stack, forward + backward to X (no values to learn). The torch CSR one is
    # graphnet's own weighted-values path (ops.spmm sends all-ones matrices to copy_u instead, so call it).
    A = dglsp.spmatrix(torch.stack([dst, src]), torch.ones(src.numel()), (n, n))
    pattern = _spmm._pattern(A)
    pattern.build_t(A)  # the CSR of A^T for the backward, built once as ops.spmm does

    def torch_csr(x):
        return _spmm._CsrSpmm.apply(A.val, x, pattern, A)

    def reset():
        for t in leaves:
            t.grad = None

    def step(fn):
        def run():
            fn().backward(G)
        return run

    return [
        common.Contender("floor: shared kernels only", step(floor), reset),
        common.Contender("SpMM copy_u (libxsmm) fwd+bwd", step(lambda: spmm(X)), reset),
        common.Contender("SpMM torch CSR (MKL) fwd+bwd", step(lambda: torch_csr(X)), reset),
        common.Contender("SpMM dgl.sparse fwd+bwd", step(lambda: dglsp.spmm(A, X)), reset),
    ]


def main() -> None:
    args = parse_args()
    common.setup_threads(args.threads)
    load_before = common.uptime()
    bandwidth = common.measure_bandwidth()
    summary, sections = [], []
    for e in (int(float(x)) for x in args.edges.split(",")):
        n = max(e // args.avg_degree, 2)
        src, dst, _ = common.random_graph(n, e, args.seed)
        for layer in LAYERS:
            layers, _, nnz = build(layer, n, src, dst, args.feat, 4, args.seed)
            contenders = layers[:2] + floor_contenders(layer, n, src, dst, args.feat, args.seed)
            common.run_interleaved(contenders, args.warmup, args.rounds)
            ours, dgl_ms, floor_ms = (c.median_ms() for c in contenders[:3])
            summary.append(f"| {layer.upper()} | {n:,} / {nnz:,} | {ours / dgl_ms:.3f} | "
                           f"{floor_ms / dgl_ms:.3f} | {contenders[3].median_ms() / dgl_ms:.3f} | "
                           f"{'yes' if floor_ms / dgl_ms <= 0.5 else 'no'} |")
            lines = [f"### {layer.upper()}  N={n:,}  E={nnz:,}  F={args.feat}", "",
                     "| step | median ms | p25 | p75 | min | this / DGL (medians) |",
                     "|---|---:|---:|---:|---:|---:|"]
            for c in contenders:
                p25, p75 = c.quartiles_ms()
                lines.append(f"| {c.name} | {c.median_ms():.1f} | {p25:.1f} | {p75:.1f} | {c.min_ms():.1f} | "
                             f"{c.median_ms() / dgl_ms:.3f} |")
            sections.append("\n".join(lines + [""]))
    load_after = common.uptime()
    header = ["# Kernel floor: the kernels graphnet and DGL share, against DGL's full layer", ""]
    header += common.machine_header(args.threads, bandwidth, load_before, load_after)
    header += [f"- graphs: as layers_bench.py (uniform random, N = E / {args.avg_degree}, GCN with one "
               "self-loop per node, all edge values 1, edge order shuffled)",
               f"- timing: {args.warmup} warm-ups, then {args.rounds} rounds, all steps of one layer "
               "interleaved round-robin in one process; one step = forward + backward (gradients to X and "
               "the weights) with a fixed upstream gradient",
               "- floor: the layer's SpMMs (DGL's libxsmm copy_u, forward and backward) and its matmuls, "
               "chained with autograd, nothing else; see the script's docstring", "",
               "## Summary (medians)", "",
               "A ratio floor / DGL above 0.5 means no implementation on these kernels can meet issue 6's "
               "0.5x-DGL target for that layer.", "",
               "| layer | N / E | graphnet / DGL | floor / DGL | SpMM alone / DGL | 0.5x reachable on these "
               "kernels |", "|---|---|---:|---:|---:|---|"]
    header += summary + ["", "## Timings", ""]
    common.write_report(args.out, "\n".join(header + sections))


if __name__ == "__main__":
    main()
