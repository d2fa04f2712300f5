"""ops.spmm: exact outputs and gradients on every kernel path; cache never stale or leaking."""

import gc
import weakref

import dgl.sparse as dglsp
import pytest
import torch

from graphnet import _spmm, ops
from graphnet.ops import spmm


def _matrix(shape, nnz, seed=0, dtype=torch.float64, values="rand", sorted_rows=False):
    g = torch.Generator().manual_seed(seed)
    row = torch.randint(0, shape[0], (nnz,), generator=g)
    col = torch.randint(0, shape[1], (nnz,), generator=g)
    if sorted_rows:
        order = torch.argsort(row * shape[1] + col)
        row, col = row[order], col[order]
    ones = values == "ones"
    val = torch.ones(nnz, dtype=dtype) if ones else torch.rand(nnz, generator=g, dtype=dtype) + 0.1
    return row, col, val


def _dense(row, col, val, shape):
    """Dense float64 A with duplicates summed (differentiable in val)."""
    return torch.zeros(shape, dtype=torch.float64).index_put((row, col), val.double(), accumulate=True)


CASES = {
    "random": ((30, 30), 150),
    "non_square": ((12, 40), 90),  # N_dst != N_src
    "empty_rows": ((25, 25), 8),  # most rows (and columns) have no entry
    "empty_matrix": ((7, 9), 0),
    "duplicates_tiny": ((3, 3), 20),  # more entries than cells: duplicates everywhere
    "single_row": ((1, 6), 4),
}


def _check(shape, nnz, dtype, values, learn_val, learn_x, x_dim=2, sorted_rows=False, seed=0):
    row, col, val0 = _matrix(shape, nnz, seed, dtype, values, sorted_rows)
    val = val0.clone().requires_grad_(learn_val)
    A = dglsp.spmatrix(torch.stack([row, col]), val, shape)
    g = torch.Generator().manual_seed(seed + 1)
    X0 = torch.randn((shape[1], 5) if x_dim == 2 else (shape[1],), generator=g, dtype=dtype)
    X = X0.clone().requires_grad_(learn_x)
    out = spmm(A, X)
    assert out.dtype == dtype and out.shape == ((shape[0], 5) if x_dim == 2 else (shape[0],))

    v_ref = val0.double().requires_grad_(True)
    X_ref = X0.double().requires_grad_(True)
    ref = _dense(row, col, v_ref, shape) @ X_ref
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.double(), ref.detach(), **tol)

    G = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref.backward(G)
    if learn_val or learn_x:
        out.backward(G.to(dtype))
    if learn_x:
        torch.testing.assert_close(X.grad.double(), X_ref.grad, **tol)
    if learn_val:
        torch.testing.assert_close(val.grad.double(), v_ref.grad, **tol)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("values", ["rand", "ones"])
@pytest.mark.parametrize("learn_val", [True, False])
def test_matches_dense_reference(case, dtype, values, learn_val):
    shape, nnz = CASES[case]
    _check(shape, nnz, dtype, values, learn_val=learn_val, learn_x=True)


@pytest.mark.parametrize("learn_x", [True, False])
@pytest.mark.parametrize("x_dim", [1, 2])
def test_vector_input_and_grad_to_values_only(learn_x, x_dim):
    _check((20, 15), 60, torch.float64, "rand", learn_val=True, learn_x=learn_x, x_dim=x_dim)
    _check((20, 15), 60, torch.float32, "ones", learn_val=False, learn_x=True, x_dim=x_dim)


def test_sorted_input_identity_permutation():
    # A row-sorted COO gives an identity CSR permutation: the no-gather branch must be exact too.
    _check((40, 40), 300, torch.float64, "rand", learn_val=True, learn_x=True, sorted_rows=True)
    row, col, val = _matrix((40, 40), 300, sorted_rows=True)
    A = dglsp.spmatrix(torch.stack([row, col]), val, (40, 40))
    assert _spmm._pattern(A).perm is None


def test_large_random_float32_against_float64():
    # Large enough for multi-threaded kernels and many duplicate-free rows.
    _check((2000, 1500), 30000, torch.float32, "rand", learn_val=True, learn_x=True, seed=3)


def test_strided_values_and_features():
    # GAT-style use: one head's column of (E, H) attention values and of (N, H, F) features (both strided).
    row, col, _ = _matrix((15, 15), 60, sorted_rows=True)  # identity permutation: values used as given
    alpha = torch.rand(60, 3, dtype=torch.float64, requires_grad=True)
    Z = torch.randn(15, 3, 4, dtype=torch.float64, requires_grad=True)
    base = dglsp.spmatrix(torch.stack([row, col]), torch.ones(60, dtype=torch.float64), (15, 15))
    out = torch.stack([spmm(dglsp.val_like(base, alpha[:, h]), Z[:, h]) for h in range(3)], 1)
    ref = torch.stack([_dense(row, col, alpha[:, h], (15, 15)) @ Z[:, h] for h in range(3)], 1)
    torch.testing.assert_close(out, ref)
    G = torch.randn_like(ref)
    got, want = torch.autograd.grad(out, (alpha, Z), G), torch.autograd.grad(ref, (alpha, Z), G)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_kernel_choice_and_no_dense_gradient(monkeypatch):
    calls = []
    for name in ("_CsrSpmm", "_OnesSpmm"):
        fn = getattr(_spmm, name)
        monkeypatch.setattr(fn, "apply", (lambda f, n: lambda *a: calls.append(n) or f(*a))(fn.apply, name))
    row, col, val = _matrix((50, 50), 300, dtype=torch.float32)
    X = torch.randn(50, 8, requires_grad=True)
    spmm(dglsp.spmatrix(torch.stack([row, col]), val, (50, 50)), X)
    ones = dglsp.spmatrix(torch.stack([row, col]), torch.ones(300), (50, 50))
    spmm(ones, X)
    spmm(dglsp.val_like(ones, torch.ones(300, requires_grad=True)), X)  # learnable ones need the SDDMM
    spmm(dglsp.val_like(ones, torch.ones(300, dtype=torch.float64)), X.double())  # no libxsmm for float64
    assert calls == ["_CsrSpmm", "_OnesSpmm", "_CsrSpmm", "_CsrSpmm"]
    # The value gradient is an (nnz,) SDDMM; torch.sparse.mm's autograd (dense N x N grad) is never used.
    w = torch.rand(300, requires_grad=True)
    out = spmm(dglsp.spmatrix(torch.stack([row, col]), w, (50, 50)), X)
    assert type(out.grad_fn).__name__ == "_CsrSpmmBackward"
    out.sum().backward()
    assert w.grad.shape == (300,)


def _binary(shape, nnz, seed=0, loops=False):
    row, col, _ = _matrix(shape, nnz, seed, dtype=torch.float32)
    if loops:
        n = min(shape)
        row, col = torch.cat([row, torch.arange(n)]), torch.cat([col, torch.arange(n)])
    return dglsp.spmatrix(torch.stack([row, col]), torch.ones(row.numel()), shape)


@pytest.mark.parametrize("norm", ["gcn", "row", "col", "gcn_weighted", "ones", "ones_times_2"])
@pytest.mark.parametrize("shape", [(40, 40), (30, 50)])
def test_scaled_binary_matrices_use_the_unweighted_kernel_exactly(monkeypatch, norm, shape):
    # Normalized 0/1 matrices are diag(r) B diag(c): computed as r * copy_u(B, c * X). Duplicates and
    # empty rows/columns (zero scaling, never NaN) included; weighted ones must take the CSR kernel.
    calls = []
    monkeypatch.setattr(_spmm._OnesSpmm, "apply", (lambda f: lambda *a: calls.append(1) or f(*a))(
        _spmm._OnesSpmm.apply))
    B = _binary(shape, 120, seed=7, loops=norm.startswith("gcn"))
    if norm == "gcn":
        A = ops.gcn_norm(B, self_loops=False)
    elif norm == "gcn_weighted":
        A = ops.gcn_norm(dglsp.val_like(B, torch.rand(B.nnz) + 0.5), self_loops=False)
    elif norm == "row":
        A = ops.row_norm(B)
    elif norm == "col":
        A = ops.col_norm(B)
    else:
        A = dglsp.val_like(B, B.val * (2.0 if norm == "ones_times_2" else 1.0))
    X = torch.randn(shape[1], 6, requires_grad=True)
    out = spmm(A, X)
    dense = _dense(A.row, A.col, A.val, shape)
    ref = dense @ X.detach().double()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    G = torch.randn(shape[0], 6)
    out.backward(G)
    torch.testing.assert_close(X.grad.double(), dense.T @ G.double(), rtol=1e-5, atol=1e-6)
    assert bool(torch.isfinite(out).all())
    assert len(calls) == (0 if norm in ("gcn_weighted", "ones_times_2") else 1)


def test_scaling_probe_is_confirmed_on_every_entry():
    # Values that match gcn_norm's scaling on the first entries but not on a later one: the CSR kernel.
    A = ops.gcn_norm(_binary((40, 40), 200, seed=3, loops=True), self_loops=False)
    val = A.val.clone()
    val[150] *= 1.01
    B = dglsp.val_like(A, val)
    X = torch.randn(40, 5)
    ref = _dense(B.row, B.col, B.val, (40, 40)) @ X.double()
    torch.testing.assert_close(spmm(B, X).double(), ref, rtol=1e-5, atol=1e-6)
    assert _spmm._scaling(B, B.val, _spmm._pattern(B), cache=False) is None
    assert _spmm._scaling(A, A.val, _spmm._pattern(A), cache=False) is not None


def test_gradcheck_custom_functions():
    row, col, val = _matrix((9, 7), 25, seed=5)
    A = dglsp.spmatrix(torch.stack([row, col]), val, (9, 7))
    pat = _spmm._pattern(A)
    pat.build_t(A)
    v = val.clone().requires_grad_(True)
    X = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v, X: _spmm._CsrSpmm.apply(v, X, pat, None), (v, X))
    X1 = torch.randn(7, 1, dtype=torch.float64, requires_grad=True)  # F = 1 uses the gather SDDMM
    assert torch.autograd.gradcheck(lambda v, X: _spmm._CsrSpmm.apply(v, X, pat, None), (v, X1))
    assert torch.autograd.gradcheck(lambda X: _spmm._OnesSpmm.apply(X, pat), (X,))


def test_double_backward_raises_instead_of_silently_wrong():
    row, col, val = _matrix((6, 6), 12)
    v = val.clone().requires_grad_(True)
    X = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
    out = spmm(dglsp.spmatrix(torch.stack([row, col]), v, (6, 6)), X)
    (gX,) = torch.autograd.grad(out.pow(2).sum(), X, create_graph=True)
    with pytest.raises(RuntimeError):
        gX.sum().backward()


def test_multi_head_values_fall_back_to_dgl():
    row, col, _ = _matrix((10, 8), 30)
    val = torch.rand(30, 3, dtype=torch.float64, requires_grad=True)
    X = torch.randn(8, 4, 3, dtype=torch.float64, requires_grad=True)
    out = spmm(dglsp.spmatrix(torch.stack([row, col]), val, (10, 8)), X)  # (10, 4, 3)
    ref = torch.stack([_dense(row, col, val[:, h], (10, 8)) @ X[:, :, h] for h in range(3)], -1)
    torch.testing.assert_close(out, ref)
    g_out = torch.autograd.grad(out.sum(), (val, X))
    g_ref = torch.autograd.grad(ref.sum(), (val, X))
    for a, b in zip(g_out, g_ref, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_reduced_precision_on_cpu_upcasts(dtype):
    row, col, val = _matrix((30, 20), 100, dtype=torch.float32)
    v = val.to(dtype).requires_grad_(True)
    X = torch.randn(20, 6).to(dtype).requires_grad_(True)
    out = spmm(dglsp.spmatrix(torch.stack([row, col]), v, (30, 20)), X)
    assert out.dtype == dtype
    ref = _dense(row, col, v.detach().double(), (30, 20)) @ X.detach().double()
    torch.testing.assert_close(out.double(), ref, rtol=2e-2, atol=2e-2)
    out.float().sum().backward()
    assert v.grad.dtype == dtype and X.grad.dtype == dtype
    col_sums = _dense(row, col, v.detach().double(), (30, 20)).sum(0)  # d(sum A X)/dX[j, :] = sum_i A[i, j]
    torch.testing.assert_close(X.grad.double(), col_sums[:, None].expand(20, 6), rtol=2e-2, atol=2e-2)


def test_values_changed_in_place_are_seen():
    row, col, _ = _matrix((20, 20), 80, dtype=torch.float32)
    val = torch.ones(80)
    A = dglsp.spmatrix(torch.stack([row, col]), val, (20, 20))
    X = torch.randn(20, 4)
    first = spmm(A, X)  # all-ones kernel, result cached as "ones" for this version of the values
    A.val.mul_(3.0)  # same tensor, new version
    torch.testing.assert_close(spmm(A, X), 3 * first)
    A.val[0] = 0.5
    ref = _dense(row, col, A.val, (20, 20)) @ X.double()
    torch.testing.assert_close(spmm(A, X).double(), ref, rtol=1e-5, atol=1e-5)
    # The backward (values of A^T in their own order, cached too) must see the change as well.
    Xg = X.clone().requires_grad_(True)
    spmm(A, Xg).sum().backward()
    A.val[1] = 7.0
    Xg2 = X.clone().requires_grad_(True)
    spmm(A, Xg2).sum().backward()
    col_sums = _dense(row, col, A.val, (20, 20)).sum(0)[:, None]  # d(sum A X)/dX[j] = sum_i A[i, j]
    torch.testing.assert_close(Xg2.grad.double(), col_sums.expand(20, 4), rtol=1e-5, atol=1e-5)


def test_optimizer_updates_of_values_are_seen():
    # Learned edge weights updated in place by an optimizer: forward, dX (CSR of A^T) and dval stay exact.
    row, col, val = _matrix((25, 25), 100)
    w = torch.nn.Parameter(val.clone())
    A = dglsp.spmatrix(torch.stack([row, col]), w, (25, 25))
    X = torch.randn(25, 3, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        X.grad = None
        out = spmm(A, X)
        out.pow(2).sum().backward()
        w_ref = w.detach().clone().requires_grad_(True)
        X_ref = X.detach().clone().requires_grad_(True)
        ref = _dense(row, col, w_ref, (25, 25)) @ X_ref
        ref.pow(2).sum().backward()
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(w.grad, w_ref.grad)
        torch.testing.assert_close(X.grad, X_ref.grad)
        opt.step()


def test_new_values_same_structure_reuse_pattern_and_are_exact():
    row, col, val = _matrix((30, 30), 120)
    A = dglsp.spmatrix(torch.stack([row, col]), val, (30, 30))
    X = torch.randn(30, 4, dtype=torch.float64, requires_grad=True)
    spmm(A, X).sum().backward()
    pat = _spmm._pattern(A)
    for _ in range(3):  # e.g. attention or a learned weight producing new values every step
        w = torch.rand(120, dtype=torch.float64, requires_grad=True)
        B = dglsp.val_like(A, w)
        assert _spmm._pattern(B) is pat  # structure shared, values gathered per call
        out = spmm(B, X)
        ref = _dense(row, col, w, (30, 30)) @ X
        torch.testing.assert_close(out, ref)
        torch.testing.assert_close(torch.autograd.grad(out.sum(), w)[0], torch.autograd.grad(ref.sum(), w)[0])


def test_cache_is_freed_with_the_matrices():
    gc.collect()
    before = len(_spmm._PATTERNS)
    refs = []
    X = torch.randn(200, 4, requires_grad=True)
    for seed in range(30):
        row, col, val = _matrix((200, 200), 1000, seed=seed, dtype=torch.float32)
        A = dglsp.spmatrix(torch.stack([row, col]), val.requires_grad_(True), (200, 200))
        spmm(A, X).sum().backward()  # builds CSR and CSC of A and of A^T
        child = dglsp.val_like(A, torch.rand(1000))
        spmm(child, X)
        refs.append(weakref.ref(A))
        assert len(_spmm._PATTERNS) <= before + 1  # the previous matrix's entry is already gone
        del A, child
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(_spmm._PATTERNS) == before


def test_cache_outlives_parent_while_a_child_shares_the_structure():
    row, col, val = _matrix((40, 40), 200)
    A = dglsp.spmatrix(torch.stack([row, col]), val, (40, 40))
    X = torch.randn(40, 3, dtype=torch.float64)
    spmm(A, X)
    w = torch.rand(200, dtype=torch.float64)
    child = dglsp.val_like(A, w)
    pat = _spmm._pattern(child)
    del A
    gc.collect()
    assert _spmm._pattern(child) is pat  # the COO storage is still alive through the child
    torch.testing.assert_close(spmm(child, X), _dense(row, col, w, (40, 40)) @ X)


@pytest.mark.parametrize("values", ["rand", "ones"])
def test_index_tensor_rewritten_in_place_gives_the_new_pattern(values):
    """A reused index buffer (a sampler's output, say): each new matrix on it is a new pattern."""
    N, E = 20, 80
    X = torch.randn(N, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    idx = torch.empty(2, E, dtype=torch.long)
    for step in range(3):
        row, col, val = _matrix((N, N), E, seed=step, values=values)
        idx.copy_(torch.stack([row, col]))  # same storage, new edges
        A = dglsp.spmatrix(idx, val, (N, N))
        torch.testing.assert_close(spmm(A, X), _dense(row, col, val, (N, N)) @ X, rtol=1e-12, atol=1e-12)
        Xf = X.float().requires_grad_(True)  # the float32 paths (copy_u for ones) and dX
        spmm(dglsp.val_like(A, val.float()), Xf).sum().backward()
        torch.testing.assert_close(Xf.grad.double(), _dense(row, col, val, (N, N)).sum(0).unsqueeze(1)
                                   .expand(N, 4), rtol=1e-5, atol=1e-5)


def test_inference_mode_matrices_and_evaluate_then_train_on_a_cached_matrix():
    """Inference tensors have no version counter; nothing computed there may be cached for training."""
    row, col, val = _matrix((30, 30), 150, dtype=torch.float32)
    X = torch.randn(30, 5, generator=torch.Generator().manual_seed(1))
    ref = (_dense(row, col, val, (30, 30)) @ X.double()).float()
    with torch.inference_mode():
        for v in (val, torch.ones_like(val)):
            A_inf = dglsp.spmatrix(torch.stack([row, col]), v.clone(), (30, 30))
            expected = ref if v is val else (_dense(row, col, v, (30, 30)) @ X.double()).float()
            torch.testing.assert_close(spmm(A_inf, X.clone()), expected, rtol=1e-5, atol=1e-5)
    A = ops.gcn_norm(dglsp.spmatrix(torch.stack([row, col]), torch.ones(150), (30, 30)))  # copy_u path
    with torch.inference_mode():
        first = spmm(A, X)
    Xg = X.clone().requires_grad_(True)
    out = spmm(A, Xg)  # a training step on the same matrix after evaluating it
    out.sum().backward()
    torch.testing.assert_close(out.detach(), first)
    col_sums = _dense(A.row, A.col, A.val, (30, 30)).sum(0)  # d sum(A X) / dX[j, f] = sum_i A[i, j]
    torch.testing.assert_close(Xg.grad.double(), col_sums.unsqueeze(1).expand(30, 5), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("F", [1, 5])
def test_int32_indices_give_the_value_gradient(F):
    """dgl.graph(...).int().adj() has int32 indices: its CSR permutation is int32, index_copy_ wants int64."""
    row, col, val0 = _matrix((30, 30), 150)  # unsorted: a real permutation
    val = val0.clone().requires_grad_(True)
    A = dglsp.spmatrix(torch.stack([row, col]).int(), val, (30, 30))
    X = torch.randn(30, F, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    G = torch.randn(30, F, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    spmm(A, X).backward(G)
    v_ref = val0.clone().requires_grad_(True)
    (_dense(row, col, v_ref, (30, 30)) @ X).backward(G)
    torch.testing.assert_close(val.grad, v_ref.grad, rtol=1e-12, atol=1e-12)
