"""Mixed precision: ops.spmm's reduced-precision paths, bf16 autocast end to end, the Trainer's train.amp.

On CPU, ops.spmm computes float16/bfloat16 products in float32 and casts the result back, warning once
(``ReducedPrecisionFallback``); float32/float64 inputs are never changed, autocast or not. GPU-only tests
are marked ``gpu`` and skip without CUDA. The support table is docs/mixed-precision.md.
"""

from __future__ import annotations

import dataclasses
import warnings

import dgl.sparse as dglsp
import pytest
import torch
import torch.nn.functional as F

from graphnet import _spmm, ops
from graphnet.config import TrainConfig
from graphnet.errors import ConfigError
from graphnet.graph import Graph
from graphnet.nn import GAT, GCN, GIN, SAGE
from graphnet.ops import spmm
from graphnet.tasks.node_cls import NodeClassification
from graphnet.train import Trainer, seed_everything

HALF = [torch.bfloat16, torch.float16]
BF16_EPS = 2.0**-8  # unit roundoff of bfloat16 (8 significand bits)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Every test starts as a new process would: no fallback warned yet."""
    monkeypatch.setattr(_spmm, "_WARNED", set())


def _weighted(shape=(30, 20), nnz=100, seed=0, heads=None):
    """Random (row, col, val) with duplicates and empty rows; values in [0.1, 1.1) (no D_r B D_c scaling)."""
    g = torch.Generator().manual_seed(seed)
    row = torch.randint(0, shape[0], (nnz,), generator=g)
    col = torch.randint(0, shape[1], (nnz,), generator=g)
    val = torch.rand((nnz,) if heads is None else (nnz, heads), generator=g) + 0.1
    return row, col, val


def _dense(row, col, val, shape):
    """Dense float64 A (duplicates summed), differentiable in val."""
    return torch.zeros(shape, dtype=torch.float64).index_put((row, col), val.double(), accumulate=True)


def _fallbacks(caught):
    return [w for w in caught if issubclass(w.category, _spmm.ReducedPrecisionFallback)]


def _rel(a, b) -> float:
    """max |a - b| / max |b|, in float64."""
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


# ---------------------------------------------------------------------------------------- ops.spmm
@pytest.mark.parametrize("dtype", HALF)
def test_cpu_fallback_warns_once_and_equals_float32_cast_back(dtype):
    row, col, val = _weighted()
    shape = (30, 20)
    v = val.to(dtype).requires_grad_(True)
    X = torch.randn(20, 6).to(dtype).requires_grad_(True)
    A = dglsp.spmatrix(torch.stack([row, col]), v, shape)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = spmm(A, X)
        spmm(A, X)  # second call: no second warning
    (w,) = _fallbacks(caught)
    name = str(dtype).removeprefix("torch.")
    assert f"graphnet.ops.spmm: no {name} kernel used on cpu; computing in float32" in str(w.message)
    assert w.filename == __file__  # points at the caller of ops.spmm

    # the float32 computation on the same (rounded) inputs, cast back: bit-identical
    v32 = v.detach().float().requires_grad_(True)
    X32 = X.detach().float().requires_grad_(True)
    out32 = spmm(dglsp.spmatrix(torch.stack([row, col]), v32, shape), X32)
    assert out.dtype == dtype and torch.equal(out, out32.to(dtype))
    G = torch.randn(30, 6).to(dtype)
    out.backward(G)
    out32.backward(G.float())
    assert X.grad.dtype == dtype and v.grad.dtype == dtype
    assert torch.equal(X.grad, X32.grad.to(dtype)) and torch.equal(v.grad, v32.grad.to(dtype))

    # and against the dense float64 product of the rounded inputs: only the final rounding to dtype
    ref = _dense(row, col, v.detach(), shape) @ X.detach().double()
    assert _rel(out, ref) <= torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", HALF)
def test_cpu_fallback_multi_head_values(dtype):
    row, col, val = _weighted(heads=3)
    v = val.to(dtype).requires_grad_(True)
    X = torch.randn(20, 4, 3).to(dtype).requires_grad_(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = spmm(dglsp.spmatrix(torch.stack([row, col]), v, (30, 20)), X)  # (30, 4, 3)
    assert len(_fallbacks(caught)) == 1 and out.dtype == dtype
    ref = torch.stack([_dense(row, col, v.detach()[:, h], (30, 20)) @ X.detach()[:, :, h].double()
                       for h in range(3)], -1)
    assert _rel(out, ref) <= torch.finfo(dtype).eps
    out.float().sum().backward()
    col_sums = torch.stack([_dense(row, col, v.detach()[:, h], (30, 20)).sum(0) for h in range(3)], -1)
    assert _rel(X.grad, col_sums[:, None, :].expand(20, 4, 3)) <= torch.finfo(dtype).eps


def test_autocast_mixed_operands_follow_matmul_rules():
    """Under autocast, float32 edge values x bf16 features (X from a Linear) -> bf16, computed in float32
    from the unrounded values; the gradient reaches the float32 values in float32."""
    row, col, val = _weighted()
    v = val.clone().requires_grad_(True)
    A = dglsp.spmatrix(torch.stack([row, col]), v, (30, 20))
    X = torch.randn(20, 6).to(torch.bfloat16).requires_grad_(True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = spmm(A, X)
            spmm(A, X)
    assert len(_fallbacks(caught)) == 1
    v32, X32 = val.clone().requires_grad_(True), X.detach().float().requires_grad_(True)
    out32 = spmm(dglsp.spmatrix(torch.stack([row, col]), v32, (30, 20)), X32)
    assert out.dtype == torch.bfloat16 and torch.equal(out, out32.to(torch.bfloat16))
    G = torch.randn(30, 6).to(torch.bfloat16)
    out.backward(G)
    out32.backward(G.float())
    assert v.grad.dtype == torch.float32 and torch.equal(v.grad, v32.grad)
    assert X.grad.dtype == torch.bfloat16 and torch.equal(X.grad, X32.grad.to(torch.bfloat16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("values", ["rand", "gcn_norm"])
def test_full_precision_is_unchanged_under_autocast(dtype, values):
    """float32/float64 operands keep their dtype and kernel (MKL CSR or DGL copy_u) inside autocast."""
    row, col, val = _weighted(shape=(20, 20))
    A = dglsp.spmatrix(torch.stack([row, col]), val.to(dtype), (20, 20))
    if values == "gcn_norm":
        A = ops.gcn_norm(dglsp.val_like(A, torch.ones_like(A.val)))
    X = torch.randn(20, 5, dtype=dtype)
    expected = spmm(A, X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = spmm(A, X)
    assert not _fallbacks(caught)
    assert out.dtype == dtype and torch.equal(out, expected)


def test_mixed_dtypes_without_autocast_still_raise():
    row, col, val = _weighted()
    A = dglsp.spmatrix(torch.stack([row, col]), val, (30, 20))
    with pytest.raises(RuntimeError, match="same dtype"):
        spmm(A, torch.randn(20, 6).to(torch.bfloat16))


# ---------------------------------------------------------------------------------------- models
def sbm(n: int = 60, classes: int = 3, f: int = 8, seed: int = 0):
    """Symmetric 3-block stochastic block model (p_in 0.25, p_out 0.02), features = noise + class one-hot."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    p = torch.where(y[:, None] == y[None, :], 0.25, 0.02)
    adj = torch.triu(torch.rand(n, n, generator=g) < p, 1)
    dst, src = (adj | adj.T).nonzero().T
    X = torch.randn(n, f, generator=g) + F.one_hot(y, f).float()
    return src, dst, X, y


MODELS = {"gcn": (GCN, {}), "sage": (SAGE, {}), "gat": (GAT, {"attn_dropout": 0.0}), "gin": (GIN, {})}


def _train(name: str, amp: bool, steps: int = 30):
    src, dst, X, y = sbm()
    cls, kw = MODELS[name]
    torch.manual_seed(0)
    model = cls(X.shape[1], 3, dropout=0.0, **kw)
    A = model.preprocess(dglsp.spmatrix(torch.stack([dst, src]), torch.ones(src.numel()), (60, 60)))
    train = torch.arange(0, 60, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        first_out = model(A, X).float()
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(A, X)[train].float(), y[train])
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return first_out, losses


@pytest.mark.parametrize("name", MODELS)
def test_bf16_autocast_end_to_end(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", _spmm.ReducedPrecisionFallback)
        out16, loss16 = _train(name, amp=True)
    out32, loss32 = _train(name, amp=False)
    # same initial weights: the bf16 forward is within ~5 bf16 roundoffs (normwise) of float32
    # (measured 3.5e-3 GCN, 4.3e-3 SAGE, 6.9e-3 GAT, 1.0e-2 GIN), and it really is reduced precision
    assert 0 < _rel(out16, out32) <= 5 * BF16_EPS
    assert loss16[-1] < 0.5 * loss16[0]  # it learns
    assert abs(loss16[-1] - loss32[-1]) <= 0.02 + 0.1 * loss32[-1]  # to about where float32 gets


# ---------------------------------------------------------------------------------------- Trainer
CPU = TrainConfig(device="cpu", epochs=30, lr=0.02, weight_decay=0.0)


def _fit(cfg: TrainConfig, model_name: str = "gcn"):
    src, dst, X, y = sbm()
    idx = torch.arange(60)
    graph = Graph.from_edges(src, dst, 60, X=X, y=y,
                             splits={"train": idx[0::3], "val": idx[1::3], "test": idx[2::3]})
    seed_everything(0)
    task = NodeClassification()
    model, g = task.setup(graph, model_name, {"hidden_dim": 16, "dropout": 0.0}, seed=0)
    return Trainer(cfg, seed=0, progress=False).fit(model, task, g)


@pytest.mark.parametrize("model_name", ["gcn", "gat"])
def test_trainer_bf16_on_cpu_trains_like_float32(model_name):
    with pytest.warns(_spmm.ReducedPrecisionFallback, match="bfloat16"):
        out = _fit(dataclasses.replace(CPU, amp="bf16"), model_name)
    ref = _fit(CPU, model_name)
    assert out["amp"] == "bf16"  # autocast stayed on: no first-step failure, no float32 retreat
    h16, h32 = [h["loss"] for h in out["history"]], [h["loss"] for h in ref["history"]]
    assert h16 != h32  # really ran in reduced precision
    assert h16[-1] < 0.5 * h16[0]
    assert abs(h16[-1] - h32[-1]) <= 0.02 + 0.1 * h32[-1]
    for k in ("val_accuracy", "test_accuracy"):
        assert abs(out["metrics"][k] - ref["metrics"][k]) <= 0.1  # at most 2 of the 20 nodes differ


def test_trainer_fp16_on_cpu_is_a_config_error():
    with pytest.raises(ConfigError, match=r"train.amp='fp16' needs a CUDA device .*use 'bf16' on CPU"):
        _fit(dataclasses.replace(CPU, amp="fp16"))


# ---------------------------------------------------------------------------------------- GPU
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("dtype", HALF)
def test_cuda_spmm_reduced_precision_uses_dgl_kernels(dtype):
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16 support")
    row, col, val = _weighted()
    A = dglsp.spmatrix(torch.stack([row, col]), val, (30, 20)).to("cuda")
    X = torch.randn(20, 6, device="cuda", requires_grad=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with torch.autocast("cuda", dtype=dtype):
            out = spmm(A, X.to(dtype))  # float32 values, reduced features: cast like a matmul
    assert not _fallbacks(caught) and out.dtype == dtype
    ref = _dense(row, col, val, (30, 20)) @ X.detach().double().cpu()
    # inputs rounded to dtype (2 eps) + up to ~6 additions per row if DGL accumulates in dtype: <= 8 eps
    assert _rel(out.cpu(), ref) <= 8 * torch.finfo(dtype).eps
    out.float().sum().backward()
    assert X.grad is not None and X.grad.dtype == torch.float32


@pytest.mark.gpu
@needs_cuda
def test_trainer_fp16_with_grad_scaler_on_cuda(monkeypatch):
    scaled = []
    original = torch.cuda.amp.GradScaler.scale
    monkeypatch.setattr(torch.cuda.amp.GradScaler, "scale",
                        lambda self, loss: scaled.append(self.is_enabled()) or original(self, loss))
    out = _fit(dataclasses.replace(CPU, device="cuda", amp="fp16"))
    assert out["amp"] == "fp16" and scaled and all(scaled)  # every step went through an enabled scaler
    h = [r["loss"] for r in out["history"]]
    assert h[-1] < 0.5 * h[0]
