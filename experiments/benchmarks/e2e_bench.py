"""End-to-end training epoch time (issue 6, 4b): graphnet vs DGL-style vs PyG-style, in one interleaved run.

The same model, loss, optimizer and batches for every contender; only the graph encoder differs. Each
contender is a deep copy of the graphnet model (task.setup) whose GNN is swapped for the library's own
(weights copied, so all start identical); the step is then the graphnet task's own ``loss`` + backward +
Adam step, so input embeddings, decoders, negatives and regularizers are shared code.

Workloads (one "epoch" each; hyper-parameters from experiments/configs):
- cora-gcn: full-batch 2-layer GCN, hidden 16, dropout 0.5, Adam lr 0.01, wd 5e-4 (1 step = 1 epoch).
- ddi-gcn: ogbl-ddi link prediction with the OGB example's model as in experiments/configs/ogbl-ddi_gcn.toml
  (2-layer GCN 256, learnable 256-d embeddings, dropout 0.5 between the layers and none on the embedding
  input, 2-layer MLP predictor with dropout 0.5, Adam lr 0.005) on the full message-passing graph every
  step. Reduced epoch: ``--ddi-batches`` batches of 65,536 positives + 65,536 uniform negatives
  (the OGB epoch is 17 such batches), the same batches for every contender.
- gowalla-lightgcn: LightGCN, 3 layers, d=64, BPR + 1e-4 L2 on the batch's ego embeddings, Adam lr 1e-3;
  reduced epoch: ``--gowalla-batches`` BPR batches of 2,048 (the full epoch is ~396), each with the full
  3-layer propagation (as LightGCN's code).
Encoders: graphnet (its GCN / LightGCN on dgl.sparse, normalization precomputed once);
DGL-style: ``dgl.nn.GraphConv(norm='both')`` on a DGLGraph (self-loops added for GCN; ``weight=False,
bias=False`` for LightGCN propagation); PyG-style: ``torch_geometric.nn.GCNConv`` with cached=False and
cached=True on edge_index; for LightGCN ``torch_geometric.nn.models.LightGCN`` (normalizes every forward),
also on edge_index. PyG's other input, a sparse ``adj_t`` (torch.sparse CSR or SparseTensor), is accepted
by both and runs sparse-matrix products instead of the per-edge gather + scatter; it is not timed here,
so the PyG-style rows are PyG's edge_index path, not its fastest one (see graphconv_bench's adj_t row).

Run (~10 min on 2 loaded cores; the Markdown goes to --out):
    DGLBACKEND=pytorch GRAPHNET_MIRROR=/work/shared/data GRAPHNET_DATA=/tmp/graphnet-data \
        .venv/bin/python experiments/benchmarks/e2e_bench.py --out experiments/benchmarks/RESULTS-e2e.md
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="Markdown file to write the results to")
    p.add_argument("--workloads", default="cora-gcn,ddi-gcn,gowalla-lightgcn")
    p.add_argument("--ddi-batches", type=int, default=2)
    p.add_argument("--gowalla-batches", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2, help="untimed epochs per contender")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs per contender (cora: x10)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def _gcn_encoders(gn_model, graph_src, graph_dst, num_nodes: int):
    """DGL and PyG copies of a graphnet GCN stack (same weights, same dropout), ignoring graphnet's A."""
    import dgl
    import dgl.nn as dglnn
    import torch
    import torch.nn.functional as F
    import torch_geometric.nn as pygnn
    from torch import nn

    g = dgl.add_self_loop(dgl.remove_self_loop(dgl.graph((graph_src, graph_dst), num_nodes=num_nodes)))
    edge_index = torch.stack([graph_src, graph_dst])  # PyG adds the self-loops inside gcn_norm

    class Stack(nn.Module):
        def __init__(self, kind: str, cached: bool = False):
            super().__init__()
            self.kind = kind
            # layer i's input dropout (input_dropout, then dropout), registered so train()/eval() reach it
            self.drops = nn.ModuleList(gn_model.dropout_before(i) for i in range(len(gn_model.layers)))
            convs = []
            for layer in gn_model.layers:
                w, b = layer.weight.detach().T, layer.bias.detach()  # (out, in), (out,)
                if kind == "dgl":
                    c = dglnn.GraphConv(w.shape[1], w.shape[0], norm="both", allow_zero_in_degree=True)
                    c.weight.data.copy_(w.T), c.bias.data.copy_(b)
                else:
                    c = pygnn.GCNConv(w.shape[1], w.shape[0], cached=cached)
                    c.lin.weight.data.copy_(w), c.bias.data.copy_(b)
                convs.append(c)
            self.layers = nn.ModuleList(convs)

        def forward(self, A, X, edge_type=None, edge_feat=None):  # A ignored: the library's own graph
            H = X
            for i, conv in enumerate(self.layers):
                H = self.drops[i](H)
                H = conv(g, H) if self.kind == "dgl" else conv(H, edge_index)
                if i < len(self.layers) - 1:
                    H = F.relu(H)
            return H

    return {
        "DGL-style dgl.nn.GraphConv(norm=both)": Stack("dgl"),
        "PyG-style GCNConv(cached=False)": Stack("pyg", cached=False),
        "PyG-style GCNConv(cached=True)": Stack("pyg", cached=True),
    }


def _lightgcn_encoders(gn_model, src, dst, num_nodes: int):
    import dgl
    import dgl.nn as dglnn
    import torch
    from torch import nn
    from torch_geometric.nn.models import LightGCN as PyGLightGCN

    g = dgl.graph((src, dst), num_nodes=num_nodes)
    edge_index = torch.stack([src, dst])
    num_layers = gn_model.prop.num_layers if hasattr(gn_model.prop, "num_layers") else 3

    class DGLLightGCN(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = copy.deepcopy(gn_model.embedding)
            self.conv = dglnn.GraphConv(
                1, 1, norm="both", weight=False, bias=False, allow_zero_in_degree=True
            )

        def forward(self, A, X=None, edge_type=None, edge_feat=None):
            H = self.embedding.weight
            out = H
            for _ in range(num_layers):
                H = self.conv(g, H)
                out = out + H
            return out / (num_layers + 1)

    class PyGWrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.pyg = PyGLightGCN(num_nodes, gn_model.embedding.weight.shape[1], num_layers)
            self.pyg.embedding.weight.data.copy_(gn_model.embedding.weight.detach())
            self.embedding = self.pyg.embedding  # the ego table the task regularizes

        def forward(self, A, X=None, edge_type=None, edge_feat=None):
            return self.pyg.get_embedding(edge_index)

    return {
        "DGL-style dgl.nn.GraphConv(norm=both, no weight)": DGLLightGCN(),
        "PyG-style torch_geometric LightGCN": PyGWrap(),
    }


def build(workload: str, args):
    """Returns (contenders, description, final-loss dict)."""
    import torch

    from graphnet import data
    from graphnet.tasks import TASKS

    if workload == "cora-gcn":
        graph = data.load("cora")
        task, model_name, kw, lr, wd = TASKS["node"](), "gcn", {"hidden_dim": 16, "dropout": 0.5}, 0.01, 5e-4
        nb, desc = (
            1,
            "Cora, full-batch 2-layer GCN (hidden 16, dropout 0.5), Adam lr 0.01 wd 5e-4; 1 step/epoch",
        )
    elif workload == "ddi-gcn":
        graph = data.load("ogbl-ddi")
        task = TASKS["link"](
            decoder="mlp",
            out_dim=256,
            emb_dim=256,
            batch_size=65536,
            mlp_hidden_dim=256,
            mlp_num_layers=2,
            mlp_dropout=0.5,
        )
        model_name, lr, wd = "gcn", 0.005, 0.0
        kw = {"hidden_dim": 256, "num_layers": 2, "dropout": 0.5, "input_dropout": 0.0}
        nb = args.ddi_batches
        desc = (
            f"ogbl-ddi link prediction, OGB example's GCN (2x256, emb 256, dropout 0.5 between the layers, "
            f"none on the embedding input; 2-layer MLP predictor, dropout 0.5), "
            f"Adam lr 0.005; epoch = {nb} batches of 65,536 positives + 65,536 negatives"
        )
    else:
        graph = data.load("gowalla")
        task, model_name, kw, lr, wd = TASKS["rec"](), "lightgcn", {"num_layers": 3}, 0.001, 0.0
        nb = args.gowalla_batches
        desc = (
            f"Gowalla LightGCN (3 layers, d=64, BPR + 1e-4 L2), Adam lr 0.001; epoch = {nb} BPR batches "
            "of 2,048, full propagation per batch"
        )
    model, g = task.setup(graph, model_name, kw, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    batches = list(task.batches(model, g, 0, gen))[:nb]  # the same batches for every contender
    A = graph.A  # raw graph (before preprocess) for the other libraries
    src, dst = A.col, A.row  # edge src -> dst
    owner = model.encoder if hasattr(model, "encoder") else model  # node task: the model IS a NodeEncoder
    gn = owner.model
    others = (
        _lightgcn_encoders(gn, src, dst, g.num_nodes)
        if model_name == "lightgcn"
        else _gcn_encoders(gn, src, dst, g.num_nodes)
    )
    models = {f"graphnet {model_name} (dgl.sparse)": model}
    for name, enc in others.items():
        m = copy.deepcopy(model)
        (m.encoder if hasattr(m, "encoder") else m).model = enc
        models[name] = m
    losses: dict[str, float] = {}
    contenders = []
    for name, m in models.items():
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=lr, weight_decay=wd)

        def step(m=m, opt=opt, name=name):
            for b in batches:
                opt.zero_grad()
                loss = task.loss(m, g, b)
                loss.backward()
                opt.step()
            losses[name] = float(loss)

        contenders.append(common.Contender(name, step, lambda: None))
    # Agreement check before training: same weights -> same first loss (dropout off).
    first = {}
    with torch.no_grad():
        for name, m in models.items():
            m.eval()
            first[name] = float(task.loss(m, g, batches[0]))
            m.train()
    return contenders, desc, losses, first


def main() -> None:
    args = parse_args()
    common.setup_threads(args.threads)
    import torch

    torch.manual_seed(args.seed)
    load_before = common.uptime()
    bandwidth = common.measure_bandwidth()
    body: list[str] = []
    for wl in [w for w in args.workloads.split(",") if w]:
        cs, desc, losses, first = build(wl, args)
        rounds = args.rounds * (10 if wl == "cora-gcn" else 1)
        warmup = args.warmup * (10 if wl == "cora-gcn" else 1)
        common.run_interleaved(cs, warmup=warmup, rounds=rounds)
        base = cs[0].median_ms()
        body += [
            f"## {wl}",
            "",
            desc + f". {warmup} warm-up + {rounds} timed epochs per contender, "
            f"round-robin. `{common.uptime()}`",
            "",
            "| implementation | median ms/epoch | p25 | p75 | min | time / graphnet's | initial loss (eval) "
            "| final loss |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for c in cs:
            q25, q75 = c.quartiles_ms()
            body.append(
                f"| {c.name} | {c.median_ms():,.1f} | {q25:,.1f} | {q75:,.1f} | {c.min_ms():,.1f} | "
                f"{c.median_ms() / base:.2f}x | {first[c.name]:.6f} | {losses[c.name]:.4f} |"
            )
        body.append("")
    head = ["# End-to-end epoch time (issue 6, 4b)", ""]
    head += common.machine_header(args.threads, bandwidth, load_before, common.uptime())
    head += [
        "- every contender: same data, batches, loss code (the graphnet task's), decoder, embeddings and "
        "initial weights; only the GNN encoder differs. 'initial loss (eval)' is the loss of the first "
        "batch before training without dropout: equal values show the encoders compute the same model.",
        "- this machine is shared with other jobs at times (load averages are recorded above and per table): "
        "compare ratios within a table, not absolute times",
        "- PyG-style rows run on edge_index (per-edge gather + scatter-add message passing), both "
        "GCNConv and LightGCN. PyG also accepts a sparse adj_t (torch.sparse CSR or SparseTensor) for "
        "these, which runs sparse-matrix products (several times faster than edge_index in the layer "
        "benchmarks on this machine); that path is not timed here, so these rows are not PyG's fastest "
        "configuration",
        "- time / graphnet's > 1 means graphnet is faster",
        "",
    ]
    common.write_report(args.out, "\n".join(head + body) + "\n")


if __name__ == "__main__":
    main()
