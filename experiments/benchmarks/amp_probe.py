"""Which DGL 2.1 ops and graphnet layers run in bfloat16 / float16 on this machine (issue 6, deliverable 3).

Every op, layer, model stack and head below runs forward, then backward with a fixed upstream gradient, on a
small random graph (N = 64 nodes, ~400 edges, 16 features, 4 heads, 3 relations), in these modes:

- ``ac-bf16`` / ``ac-fp16``: float32 inputs and parameters inside ``torch.autocast(device, dtype)``
  (backward outside it, as the Trainer does);
- ``bf16`` / ``fp16``: features, edge values and parameters cast to the dtype, no autocast;
- ``mix-bf16`` / ``mix-fp16`` (DGL ops that take both): features in the dtype, edge values / weights in
  float32, no autocast: what a layer hands DGL under autocast (X from a Linear, A.val untouched).

Each cell: verdict, output dtype, then the error vs the same call in float32, as max|out - ref| / max|ref|
for the output and the worst of the gradients (inputs, edge values, parameters):

- ``native``: ran in the requested precision (no graphnet fallback warning);
- ``fallback``: graphnet warned ``ReducedPrecisionFallback`` (some op computed in float32, result cast back);
- ``f32``: ran, but entirely in float32 (autocast does not reach the op; error 0);
- ``ERROR``: the forward (``fwd``) or backward (``bwd``) raised; the message's first line is listed below.

Prints Markdown (environment header, one table per group, the error messages) to stdout or ``--out``.
With ``--bench``, also times a GCN layer (GraphConv 64 -> 64 on gcn_norm(A), forward + backward to X and W)
at E = 2e5 in float32 and bf16, round-robin (experiments/benchmarks/common.py).

Run (~1 min; heavy parts nice'd by the caller):
    DGLBACKEND=pytorch PYTHONPATH=. nice -n 10 .venv/bin/python experiments/benchmarks/amp_probe.py \
        --bench --out /tmp/amp_probe.md
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

MODES = ("ac-bf16", "bf16", "mix-bf16", "ac-fp16", "fp16", "mix-fp16")
N, E, F, H, R = 64, 400, 16, 4, 3


@dataclass
class Case:
    """``run(inputs, modules) -> Tensor`` on float leaves ``feats`` (cast in mix-*) and ``vals`` (kept float32
    in mix-*); ``modules`` are cast with the inputs in bf16/fp16 modes. ``mixed``: probe the mix-* modes."""

    name: str
    run: Callable
    feats: dict
    vals: dict
    modules: dict
    mixed: bool = False


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", help="Markdown file (default: stdout)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--bench", action="store_true", help="also time a GCN layer at E = 2e5")
    p.add_argument("--rounds", type=int, default=15)
    return p.parse_args()


# ---------------------------------------------------------------------------------------- cases
def dgl_cases(torch, dgl, dglsp, ops) -> list[Case]:
    g = torch.Generator().manual_seed(0)
    src, dst, w = common.random_graph(N, E, seed=0)
    idx = torch.stack([dst, src])  # graphnet orientation: A[dst, src]
    G = dgl.graph((src, dst), num_nodes=N)  # DGL graph src -> dst; in-edges summed at dst
    nnz = src.numel()
    X = torch.randn(N, F, generator=g)
    X3 = torch.randn(N, F, H, generator=g)
    XT3 = torch.randn(F, N, H, generator=g)
    vH = torch.rand(nnz, H, generator=g)
    W = torch.randn(R, F, 8, generator=g)
    etype = torch.randint(0, R, (nnz,), generator=g)
    seglen = torch.bincount(etype, minlength=R)
    Ein = torch.randn(nnz, F, generator=g)
    seg_nodes = torch.bincount(dst, minlength=N)
    indptr, indices, perm = dglsp.spmatrix(idx, w, (N, N)).csr()
    perm = torch.arange(nnz) if perm is None else perm

    def A(v):
        return dglsp.spmatrix(idx, v, (N, N))

    return [
        Case("dglsp.spmm (COO matrix)", lambda i, m: dglsp.spmm(A(i["val"]), i["X"]), {"X": X}, {"val": w},
             {}, True),
        Case("dglsp.spmm (CSR matrix)",
             lambda i, m: dglsp.spmm(dglsp.from_csr(indptr, indices, i["val"][perm], (N, N)), i["X"]),
             {"X": X}, {"val": w}, {}, True),
        Case("dglsp.sddmm", lambda i, m: dglsp.sddmm(A(i["val"]), i["X"], i["X"].T).val, {"X": X},
             {"val": w}, {}, True),
        Case("dglsp.bsddmm", lambda i, m: dglsp.bsddmm(A(i["val"]), i["X3"], i["XT3"]).val,
             {"X3": X3, "XT3": XT3}, {"val": vH}, {}, True),
        Case("dglsp.softmax", lambda i, m: dglsp.softmax(A(i["val"])).val, {}, {"val": vH}, {}),
        Case("A.sum(1)", lambda i, m: A(i["val"]).sum(1), {}, {"val": w}, {}),
        Case("dgl.ops.copy_u_sum", lambda i, m: dgl.ops.copy_u_sum(G, i["X"]), {"X": X}, {}, {}),
        Case("dgl.ops.u_mul_e_sum", lambda i, m: dgl.ops.u_mul_e_sum(G, i["X"], i["w"].unsqueeze(1)),
             {"X": X}, {"w": w}, {}, True),
        Case("dgl.ops.gsddmm (u_dot_v)", lambda i, m: dgl.ops.gsddmm(G, "dot", i["X"], i["X"], "u", "v"),
             {"X": X}, {}, {}),
        Case("dgl.ops.edge_softmax", lambda i, m: dgl.ops.edge_softmax(G, i["val"]), {}, {"val": vH}, {}),
        Case("dgl.ops.segment_reduce (sum)",
             lambda i, m: dgl.ops.segment_reduce(seg_nodes, i["Ein"][torch.argsort(dst, stable=True)], "sum"),
             {"Ein": Ein}, {}, {}),
        Case("dgl.ops.gather_mm", lambda i, m: dgl.ops.gather_mm(i["Ein"], i["W"], idx_b=etype),
             {"Ein": Ein}, {"W": W}, {}, True),
        Case("dgl.ops.segment_mm",
             lambda i, m: dgl.ops.segment_mm(i["Ein"][torch.argsort(etype, stable=True)], i["W"], seglen),
             {"Ein": Ein}, {"W": W}, {}, True),
        Case("graphnet ops.spmm", lambda i, m: ops.spmm(A(i["val"]), i["X"]), {"X": X}, {"val": w}, {}, True),
    ]


def layer_cases(torch, dglsp, ops, gnn) -> tuple[list[Case], list[Case], list[Case]]:
    """(layers of conv.py / conv_rel.py, model stacks of models.py, heads)."""
    from graphnet.nn import conv_rel, heads, models

    g = torch.Generator().manual_seed(1)
    src, dst, w = common.random_graph(N, E, seed=1)
    A0 = dglsp.spmatrix(torch.stack([dst, src]), w, (N, N))
    etype = torch.randint(0, R, (A0.nnz,), generator=g)
    X = torch.randn(N, F, generator=g)

    def prepared(A):
        return {"val": A.val.detach().clone()}, (lambda v, A=A: dglsp.val_like(A, v))

    def layer(name, make, A, extra=None, call=None):
        vals, mk = prepared(A)
        feats = {"X": X, **(extra or {})}
        torch.manual_seed(0)  # parameters depend on nothing but the layer's own constructor
        module = make()
        fn = call or (lambda i, m: m["m"](mk(i["val"]), i["X"]))
        return Case(name, lambda i, m, fn=fn, mk=mk: fn({**i, "A": mk(i["val"])}, m), feats, vals,
                    {"m": module})

    loops = ops.add_self_loops(A0)
    ef = torch.randn(loops.nnz, 3, generator=g)
    ef0 = torch.randn(A0.nnz, 3, generator=g)
    rel = conv_rel.relation_norm(A0, etype)
    L = [
        layer("GraphConv", lambda: gnn.GraphConv(F, F), ops.gcn_norm(A0)),
        layer("SAGEConv mean", lambda: gnn.SAGEConv(F, F, "mean"), A0),
        layer("SAGEConv sum", lambda: gnn.SAGEConv(F, F, "sum"), A0),
        layer("SAGEConv pool", lambda: gnn.SAGEConv(F, F, "pool"), A0),
        layer("GATConv (4 heads)", lambda: gnn.GATConv(F, 8, H), loops),
        layer("GATConv edge_dim=3", lambda: gnn.GATConv(F, 8, H, edge_dim=3), loops, {"ef": ef},
              lambda i, m: m["m"](i["A"], i["X"], i["ef"])),
        layer("GINConv", lambda: gnn.GINConv(F, F), A0),
        layer("SGConv K=2", lambda: gnn.SGConv(F, F, K=2), ops.gcn_norm(A0)),
        layer("APPNPConv K=3", lambda: gnn.APPNPConv(K=3), ops.gcn_norm(A0)),
        layer("ChebConv K=3", lambda: gnn.ChebConv(F, F, K=3), ops.scaled_laplacian(A0)),
        layer("EdgeFeatConv", lambda: gnn.EdgeFeatConv(F, F), ops.row_norm(A0)),
        layer("EdgeFeatConv edge_dim=3", lambda: gnn.EdgeFeatConv(F, F, edge_dim=3), ops.row_norm(A0),
              {"ef": ef0}, lambda i, m: m["m"](i["A"], i["X"], i["ef"])),
        layer("LightGCNProp", lambda: gnn.LightGCNProp(3), ops.gcn_norm(A0, self_loops=False)),
    ]
    for reg in (None, "basis", "bdd"):
        def make(reg=reg):
            return conv_rel.RelGraphConv(F, F, R, regularizer=reg, num_bases=2 if reg == "bdd" else None)

        L.append(layer(f"RelGraphConv {reg or 'full'}", make, rel,
                       call=lambda i, m: m["m"](i["A"], i["X"], etype)))

    M = []
    for name, cls in models.ENCODERS.items():
        kw = {"num_relations": R} if name == "rgcn" else {}
        A = cls.preprocess(A0, etype)
        et = etype if A.nnz == A0.nnz else None
        # eval(): dropout off, so every mode computes the same function
        M.append(layer(f"{cls.__name__} (`{name}`)", lambda cls=cls, kw=kw: cls(F, 7, **kw).eval(), A,
                       call=lambda i, m, et=et: m["m"](i["A"], i["X"], et)))

    B, d = 32, 16
    h, t = torch.randn(B, d, generator=g), torch.randn(B, d, generator=g)
    r = torch.randint(0, R, (B,), generator=g)
    Ent = torch.randn(50, d, generator=g)
    hd = [
        ("DotProduct", lambda: heads.DotProduct(), lambda i, m: m["m"](i["h"], i["t"])),
        ("MLPScorer", lambda: heads.MLPScorer(d, 32, 2), lambda i, m: m["m"](i["h"], i["t"])),
        ("DistMult", lambda: heads.DistMult(R, d), lambda i, m: m["m"](i["h"], r, i["t"])),
        ("ComplEx", lambda: heads.ComplEx(R, d), lambda i, m: m["m"](i["h"], r, i["t"])),
        ("RotatE", lambda: heads.RotatE(R, d), lambda i, m: m["m"](i["h"], r, i["t"])),
        ("RotatE.score_tails", lambda: heads.RotatE(R, d),
         lambda i, m: m["m"].score_tails(i["h"], r, i["E"])),
        ("BilinearDecoder", lambda: heads.BilinearDecoder(d, 5), lambda i, m: m["m"](i["h"], i["t"])),
    ]
    HD = []
    for n, make, fn in hd:
        torch.manual_seed(0)
        HD.append(Case(n, fn, {"h": h, "t": t, "E": Ent}, {}, {"m": make()}))
    return L, M, HD


# ---------------------------------------------------------------------------------------- probing
def run_mode(torch, case: Case, mode: str | None, fallback_cls, warned: set):
    """(output, grads dict, fallback warned?) of one case in one mode (None = float32 reference)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[mode.split("-")[-1]] if mode else None
    autocast = bool(mode) and mode.startswith("ac-")
    cast_feats = bool(mode) and not autocast
    cast_vals = bool(mode) and mode in ("bf16", "fp16")
    leaves = {}
    for k, v in case.feats.items():
        leaves[k] = (v.to(dtype) if cast_feats else v).detach().clone().requires_grad_(True)
    for k, v in case.vals.items():
        leaves[k] = (v.to(dtype) if cast_vals else v).detach().clone().requires_grad_(True)
    modules = {k: copy.deepcopy(m) for k, m in case.modules.items()}
    if cast_vals:
        modules = {k: m.to(dtype) for k, m in modules.items()}
    warned.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=autocast):
            out = case.run(leaves, modules)
    fell_back = any(issubclass(w.category, fallback_cls) for w in caught)
    return out, leaves, modules, fell_back


def grads_of(torch, out, leaves, modules):
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(7)).to(out.dtype)
    out.backward(upstream)
    named = {f"in:{k}": v.grad for k, v in leaves.items()}
    for k, m in modules.items():
        named.update({f"{k}.{n}": p.grad for n, p in m.named_parameters()})
    return named


def probe(torch, case: Case, fallback_cls, warned: set) -> dict[str, str]:
    out, leaves, mods, _ = run_mode(torch, case, None, fallback_cls, warned)
    ref_out, ref_g = out.detach(), grads_of(torch, out, leaves, mods)
    cells, errors = {}, {}
    for mode in MODES:
        if mode.startswith("mix") and not case.mixed:
            cells[mode] = "--"
            continue
        try:
            out, leaves, mods, fell_back = run_mode(torch, case, mode, fallback_cls, warned)
        except Exception as e:  # noqa: BLE001  (any kernel error is a result here)
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            cells[mode] = "ERROR fwd"
            errors[mode] = msg
            continue
        fwd = common.rel_diff(out.detach(), ref_out)
        dt = str(out.dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float16", "fp16") \
            .replace("float32", "f32").replace("float64", "f64")
        try:
            g = grads_of(torch, out, leaves, mods)
            bwd = max((common.rel_diff(g[k], ref_g[k]) for k in ref_g
                       if ref_g[k] is not None and g.get(k) is not None), default=0.0)
            missing = [k for k in ref_g if ref_g[k] is not None and g.get(k) is None]
            bwd_s = f"{bwd:.0e}" + (" (no grad: " + ", ".join(missing) + ")" if missing else "")
        except Exception as e:  # noqa: BLE001
            bwd_s = "ERROR bwd"
            errors[mode] = str(e).strip().splitlines()[0]
        if fell_back:
            verdict = "fallback"
        elif fwd == 0 and out.dtype == torch.float32:
            verdict = "f32"
        else:
            verdict = "native"
        cells[mode] = f"{verdict} {dt} {fwd:.0e} / {bwd_s}"
    return cells, errors


def table(torch, title: str, cases: list[Case], fallback_cls, warned: set, messages: dict) -> list[str]:
    lines = [f"### {title}", "", "| op | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 1) + "|"]
    for case in cases:
        cells, errors = probe(torch, case, fallback_cls, warned)
        for mode, msg in errors.items():
            key = msg[:160]
            ref = messages.setdefault(key, f"E{len(messages) + 1}")
            cells[mode] += f" [{ref}]"
        lines.append(f"| {case.name} | " + " | ".join(cells[m] for m in MODES) + " |")
    return lines + [""]


# ---------------------------------------------------------------------------------------- timing
def bench(torch, dglsp, ops, gnn, rounds: int) -> list[str]:
    """GCN layer at E = 2e5: float32 vs autocast bf16 vs bf16 parameters, forward + backward."""
    n, e, f = 20_000, 200_000, 64
    src, dst, _ = common.random_graph(n, e, seed=0)
    A = ops.gcn_norm(dglsp.spmatrix(torch.stack([dst, src]), torch.ones(src.numel()), (n, n)))
    Aw = dglsp.val_like(A, torch.rand(A.nnz, generator=torch.Generator().manual_seed(0)))  # weighted
    X = torch.randn(n, f).requires_grad_(True)
    G = torch.randn(n, f)
    torch.manual_seed(0)
    layer = gnn.GraphConv(f, f)
    layer_bf = copy.deepcopy(layer).to(torch.bfloat16)
    Xb = X.detach().bfloat16().requires_grad_(True)
    Ab, Awb = dglsp.val_like(A, A.val.bfloat16()), dglsp.val_like(Aw, Aw.val.bfloat16())
    indptr, indices, perm = Aw.csr()
    Cb = dglsp.from_csr(indptr, indices, Awb.val[perm], (n, n))  # DGL's native bf16 CSR kernel

    def step(fn, autocast=False):
        def go():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out = fn()
            out.backward(G.to(out.dtype))
        return go

    def reset():
        for p in (X, Xb, *layer.parameters(), *layer_bf.parameters()):
            p.grad = None

    def native_bf16():
        return dglsp.spmm(Cb, Xb @ layer_bf.weight) + layer_bf.bias

    C = common.Contender
    contenders = [
        C("float32, gcn_norm A (0/1 pattern: DGL copy_u)", step(lambda: layer(A, X)), reset),
        C("autocast bf16, gcn_norm A", step(lambda: layer(A, X), True), reset),
        C("bf16 parameters + A + X, gcn_norm A", step(lambda: layer_bf(Ab, Xb)), reset),
        C("float32, weighted A (MKL CSR)", step(lambda: layer(Aw, X)), reset),
        C("autocast bf16, weighted A", step(lambda: layer(Aw, X), True), reset),
        C("bf16 parameters + A + X, weighted A", step(lambda: layer_bf(Awb, Xb)), reset),
        C("DGL native bf16 CSR SpMM, weighted A (not used)", step(native_bf16), reset),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = common.uptime()
        common.run_interleaved(contenders, warmup=2, rounds=rounds)
        after = common.uptime()
    lines = [f"### GCN layer (GraphConv {f} -> {f}), N = {n}, E = {A.nnz} with self-loops, fwd + bwd", "",
             f"- load before: `{before}`", f"- load after: `{after}`",
             f"- rounds: {rounds}, round-robin", "",
             "| variant | min ms | median ms | median / float32 same A |", "|---|---|---|---|"]
    base = {"gcn": contenders[0].median_ms(), "weighted": contenders[3].median_ms()}
    for c in contenders:
        b = base["gcn" if "gcn_norm" in c.name else "weighted"]
        lines.append(f"| {c.name} | {c.min_ms():.1f} | {c.median_ms():.1f} | {c.median_ms() / b:.2f} |")
    return lines + [""]


def main() -> None:
    args = parse_args()
    common.setup_threads(args.threads)
    import dgl
    import dgl.sparse as dglsp
    import torch

    import graphnet.nn as gnn
    from graphnet import _spmm, ops

    warned = _spmm._WARNED  # cleared before every call, so each case reports its own fallback
    fb = _spmm.ReducedPrecisionFallback
    load_before = common.uptime()
    messages: dict[str, str] = {}
    out = ["## Reduced-precision support probe (CPU)", ""]
    body = table(torch, "DGL 2.1 ops", dgl_cases(torch, dgl, dglsp, ops), fb, warned, messages)
    L, M, HD = layer_cases(torch, dglsp, ops, gnn)
    body += table(torch, "graphnet layers (graphnet/nn/conv.py, conv_rel.py)", L, fb, warned, messages)
    body += table(torch, "graphnet model stacks (graphnet/nn/models.py, eval mode)", M, fb, warned, messages)
    body += table(torch, "graphnet heads (graphnet/nn/heads.py)", HD, fb, warned, messages)
    body += ["### Error messages", ""] + [f"- {ref}: `{msg}`" for msg, ref in messages.items()] + [""]
    if args.bench:
        body += bench(torch, dglsp, ops, gnn, args.rounds)
    header = common.machine_header(args.threads, common.measure_bandwidth(), load_before, common.uptime())
    text = "\n".join(out + header + [""] + body)
    if args.out:
        common.write_report(args.out, text)
    else:
        print(text)


if __name__ == "__main__":
    main()
