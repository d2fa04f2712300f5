"""Layer forward + backward: graphnet vs dgl.nn vs torch_geometric for GCN, SAGE, GAT, GIN (issue 6, 4a).

Each layer is built once per library with the same parameters (copied across), run on the same unweighted
random graph (all edge values 1, the common case for these layers) with the same float32 features, and
backpropagated with the same upstream gradient; gradients go to X and the parameters. Contenders run
round-robin in one process after warm-ups. Graph-dependent preprocessing is done once, outside the timing,
wherever the library allows (GCN: ``ops.gcn_norm`` / DGL ``norm='both'`` on a graph with self-loops / PyG
given the normalized values; GAT: self-loops added to the graph for everyone).

PyG runs each layer two ways where it can: on ``edge_index`` (gather + scatter message passing) and on a
sparse ``adj_t`` (a ``torch.sparse_csr_tensor`` built once outside the timing, which PyG multiplies with
``torch.sparse.mm``; the optional torch_sparse / pyg_lib extensions are not installed). GAT has per-edge
attention, so PyG's GATConv runs on ``edge_index`` only. The PyG target is judged against the faster of
the two paths.

Layers (in_dim = 64):
- GCN: ``A_hat (X W) + b``, out 64.
- SAGE (mean): ``W_self x_i + W_neigh mean_j x_j + b``, out 64.
- GAT: 4 heads x 16, LeakyReLU(0.2) logits, softmax over in-edges, no dropout, self-loops.
- GIN: ``MLP((1 + eps) x_i + sum_j x_j)``, learnable eps, MLP 64-64-64 with ReLU.

Run (about 3 minutes on an idle 2-core machine; the Markdown goes to --out):
    DGLBACKEND=pytorch .venv/bin/python experiments/benchmarks/layers_bench.py \
        --out experiments/benchmarks/RESULTS-layers.md
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

TARGETS = {"DGL": 0.5, "PyG": 0.35}  # max graphnet / library time (issue 6)
LAYERS = ("gcn", "sage", "gat", "gin")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="Markdown file to write the results to")
    p.add_argument("--edges", default="200000,2000000", help="edge counts, before self-loops")
    p.add_argument("--layers", default=",".join(LAYERS))
    p.add_argument("--avg-degree", type=int, default=20, help="N = edges / avg_degree")
    p.add_argument("--feat", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def build(layer: str, n: int, src, dst, f: int, heads: int, seed: int):
    """Returns (contenders [graphnet, DGL, PyG edge_index, and PyG adj_t but for GAT], outputs for the
    agreement check)."""
    import dgl
    import dgl.nn as dglnn
    import dgl.sparse as dglsp
    import torch
    import torch_geometric.nn as pygnn
    from torch import nn

    from graphnet import ops
    from graphnet.nn import conv

    torch.manual_seed(seed)
    loops = torch.arange(n)
    if layer in ("gcn", "gat"):  # both use self-loops: add them once for every library
        src, dst = torch.cat([src, loops]), torch.cat([dst, loops])
    A = dglsp.spmatrix(torch.stack([dst, src]), torch.ones(src.numel()), (n, n))
    g = dgl.graph((src, dst), num_nodes=n)
    edge_index = torch.stack([src, dst])
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, f, generator=gen).requires_grad_(True)

    if layer == "gcn":
        A_in = ops.gcn_norm(A, self_loops=False)  # loops already in A
        ours = conv.GraphConv(f, f)
        theirs = dglnn.GraphConv(f, f, norm="both")
        # PyG's gcn_norm uses in-degrees at both ends (differs on directed graphs): give it A_hat's values.
        pyg = pygnn.GCNConv(f, f, normalize=False)
        w_hat = A_in.val.detach()
        with torch.no_grad():
            ours.bias.normal_(generator=gen)
            theirs.weight.copy_(ours.weight)
            theirs.bias.copy_(ours.bias)
            pyg.lin.weight.copy_(ours.weight.T)
            pyg.bias.copy_(ours.bias)
        notes = ("gcn_norm(A) precomputed", "norm='both'", "normalize=False, edge_weight = gcn_norm values")
    elif layer == "sage":
        A_in = A
        ours = conv.SAGEConv(f, f, aggregator="mean")
        theirs = dglnn.SAGEConv(f, f, aggregator_type="mean")
        pyg = pygnn.SAGEConv(f, f, aggr="mean")
        with torch.no_grad():
            ours.bias.normal_(generator=gen)
            theirs.fc_self.weight.copy_(ours.lin_self.weight)
            theirs.fc_self.bias.copy_(ours.bias)
            theirs.fc_neigh.weight.copy_(ours.lin_neigh.weight)
            pyg.lin_r.weight.copy_(ours.lin_self.weight)
            pyg.lin_l.weight.copy_(ours.lin_neigh.weight)
            pyg.lin_l.bias.copy_(ours.bias)
        notes = ("mean", "aggregator_type='mean'", "aggr='mean'")
    elif layer == "gat":
        A_in = A
        c = f // heads
        ours = conv.GATConv(f, c, num_heads=heads)
        theirs = dglnn.GATConv(f, c, num_heads=heads)
        pyg = pygnn.GATConv(f, c, heads=heads, add_self_loops=False)
        with torch.no_grad():
            ours.bias.normal_(generator=gen)
            theirs.fc.weight.copy_(ours.lin.weight)
            theirs.attn_l.copy_(ours.attn_src.unsqueeze(0))
            theirs.attn_r.copy_(ours.attn_dst.unsqueeze(0))
            theirs.bias.copy_(ours.bias.reshape(-1))
            pyg.lin.weight.copy_(ours.lin.weight)
            pyg.att_src.copy_(ours.attn_src.unsqueeze(0))
            pyg.att_dst.copy_(ours.attn_dst.unsqueeze(0))
            pyg.bias.copy_(ours.bias.reshape(-1))
        notes = (f"{heads} heads, self-loops in A", f"num_heads={heads}",
                 f"heads={heads}, add_self_loops=False")
    elif layer == "gin":
        A_in = A
        ours = conv.GINConv(f, f, learn_eps=True)
        mlp_d = nn.Sequential(nn.Linear(f, f), nn.ReLU(), nn.Linear(f, f))
        mlp_p = nn.Sequential(nn.Linear(f, f), nn.ReLU(), nn.Linear(f, f))
        theirs = dglnn.GINConv(mlp_d, aggregator_type="sum", learn_eps=True)
        pyg = pygnn.GINConv(mlp_p, train_eps=True)  # resets its MLP: copy the weights afterwards
        mlp_d.load_state_dict(ours.mlp.state_dict())
        mlp_p.load_state_dict(ours.mlp.state_dict())
        notes = ("learnable eps", "aggregator_type='sum', learn_eps=True", "train_eps=True")
    else:
        raise ValueError(f"unknown layer {layer!r}, expected one of {LAYERS}")

    G = torch.randn(n, f, generator=gen)
    mods = (ours, theirs, pyg)

    def reset():
        X.grad = None
        for m in mods:
            for p in m.parameters():
                p.grad = None

    def run(fn):
        out = fn().reshape(n, -1)  # GAT: (N, H, F) / (N, H*F) -> (N, H*F)
        out.backward(G)
        return out

    if layer == "gcn":
        fns = [lambda: ours(A_in, X), lambda: theirs(g, X), lambda: pyg(X, edge_index, w_hat)]
    else:
        fns = [lambda: ours(A_in, X), lambda: theirs(g, X), lambda: pyg(X, edge_index)]
    names = [f"graphnet {type(ours).__name__}", f"DGL {type(theirs).__name__}", f"PyG {type(pyg).__name__}"]
    if layer != "gat":  # PyG's sparse path: adj_t[i, j] = weight of the edge j -> i, rows sorted
        vals = w_hat if layer == "gcn" else torch.ones(src.numel())
        order = torch.argsort(dst * n + src)
        crow = torch.searchsorted(dst[order], torch.arange(n + 1))
        with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
            warnings.simplefilter("ignore", UserWarning)
            adj_t = torch.sparse_csr_tensor(crow, src[order], vals[order], (n, n))
        fns.append(lambda: pyg(X, adj_t))
        names.append(f"PyG {type(pyg).__name__} adj_t")
        notes = (*notes, notes[2].replace("edge_weight = gcn_norm values", "adj_t values = gcn_norm values")
                 + "; adj_t = torch.sparse CSR, built once")
    results = []
    for fn in fns:
        reset()
        out = run(fn).detach()
        results.append((out, X.grad.clone()))
    contenders = [common.Contender(name, lambda fn=fn: run(fn), reset, note)
                  for name, fn, note in zip(names, fns, notes, strict=True)]
    return contenders, results, src.numel()


def main() -> None:
    args = parse_args()
    common.setup_threads(args.threads)
    load_before = common.uptime()
    bandwidth = common.measure_bandwidth()
    sections, summary = [], []
    for e in (int(float(x)) for x in args.edges.split(",")):
        n = max(e // args.avg_degree, 2)
        src, dst, _ = common.random_graph(n, e, args.seed)
        for layer in args.layers.split(","):
            contenders, results, nnz = build(layer, n, src, dst, args.feat, args.heads, args.seed)
            common.run_interleaved(contenders, args.warmup, args.rounds)
            ours, ours_min = contenders[0].median_ms(), contenders[0].min_ms()
            lines = [f"### {layer.upper()}  N={n:,}  E={nnz:,}  F={args.feat}", "",
                     "| contender | median ms | p25 | p75 | min | graphnet / this | max rel. diff (out, dX) "
                     "| notes |",
                     "|---|---:|---:|---:|---:|---:|---:|---|"]
            for c, (out, dX) in zip(contenders, results, strict=True):
                p25, p75 = c.quartiles_ms()
                diff = max(common.rel_diff(out, results[0][0]), common.rel_diff(dX, results[0][1]))
                lines.append(f"| {c.name} | {c.median_ms():.1f} | {p25:.1f} | {p75:.1f} | {c.min_ms():.1f} | "
                             f"{ours / c.median_ms():.3f} | {diff:.1e} | {c.note} |")
            for lib in TARGETS:  # against the library's fastest way to run the layer
                c = min((c for c in contenders[1:] if c.name.split()[0] == lib), key=lambda c: c.median_ms())
                ratio = ours / c.median_ms()
                ok = "yes" if ratio <= TARGETS[lib] else "**no**"
                summary.append(f"| {layer.upper()} | {n:,} / {nnz:,} | graphnet / {c.name} | {ratio:.3f} | "
                               f"{ours_min / c.min_ms():.3f} | <= {TARGETS[lib]} | {ok} |")
            sections.append("\n".join(lines + [""]))
    load_after = common.uptime()
    header = ["# Layer forward + backward: graphnet vs dgl.nn vs torch_geometric", ""]
    header += common.machine_header(args.threads, bandwidth, load_before, load_after)
    header += [f"- graphs: uniform random, N = E / {args.avg_degree}, duplicates and self-loops removed "
               "(GCN, GAT: one self-loop per node added for every library), all edge values 1; edge order "
               "shuffled",
               f"- timing: {args.warmup} warm-ups, then {args.rounds} rounds, contenders interleaved "
               "round-robin in one process; one step = forward + backward (gradients to X and all "
               "parameters) with a fixed upstream gradient; gradients cleared between steps (not timed)",
               "- max rel. diff: max |a - b| / max |b| over the output and the gradient to X, against "
               "graphnet (parameters copied across, so the layers compute the same function)", "",
               "## Targets (issue 6: at most 0.5x DGL, 0.35x PyG)", "",
               "Ratios of medians decide 'met', against the library's faster contender (PyG: edge_index or "
               "adj_t, see the timings); the ratio of the fastest runs (min) is shown because it is "
               "the statistic least disturbed by other processes on a shared machine.", "",
               "| layer | N / E | ratio | value (medians) | value (mins) | target | met |",
               "|---|---|---|---:|---:|---|---|"]
    header += summary + ["", "## Timings", ""]
    common.write_report(args.out, "\n".join(header + sections))


if __name__ == "__main__":
    main()
