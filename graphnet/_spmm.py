"""SpMM kernel dispatch behind ``graphnet.ops.spmm``: ``A @ X`` with exact gradients to X and to ``A.val``.

The user keeps a dgl.sparse ``SparseMatrix``; this module only reads its index arrays and values and
picks the kernel (measured on CPU, torch 2.2.1 + MKL, dgl 2.1.0; numbers in
experiments/benchmarks/RESULTS-graphconv.md).

Dispatch (first matching row wins):

| case                                                       | forward        | grad X      | grad A.val    |
|------------------------------------------------------------|----------------|-------------|---------------|
| reduced precision d (float16 / bfloat16, see below), CUDA  | dglsp.spmm in d| dgl         | dgl           |
| reduced precision d, CPU: float32 instead, warns once      | rows below in float32, result cast to d      |
| A.val (nnz, H); X 3-D; non-float; dtype or device mismatch | dglsp.spmm     | dgl         | dgl           |
| CPU float32, no grad to values, libxsmm on, A = D_r B D_c  | r * copy_u(c X)| copy_u, A^T | --            |
| float32 / float64 (any device)                             | torch CSR SpMM | CSR of A^T  | sampled_addmm |

Reduced precision d: A.val and X both in d (float16 or bfloat16), or, inside ``torch.autocast`` for X's
device, one of them in the autocast dtype d and the other not (X from an autocast Linear, float32 edge
values): spmm then behaves like ``torch.mm`` under autocast and returns d. Float32 / float64 inputs are
never touched, autocast or not. On CUDA both operands are cast to d for DGL's half-precision kernels.
On CPU the product is computed in float32 from the operands as given (edge values are not rounded to d
first) and the result is cast to d, with a one-time ``ReducedPrecisionFallback`` warning per dtype:
torch has no CPU float16/bfloat16 sparse kernel, DGL has none for float16 and only its naive CSR kernel
for bfloat16 (COO input raises), which is slower than float32 here (docs/mixed-precision.md).

"A = D_r B D_c": B is the 0/1 matrix of A's pattern and the diagonal scalings are none (all values 1),
gcn_norm's (d_in^-1/2, d_out^-1/2), row_norm's (d_in^-1) or col_norm's (d_out^-1), with d the entry
counts of B; checked to 1e-6 relative once per values version (a 64-entry probe rejects other values
first). "copy_u" is DGL's unweighted SpMM (``dgl.ops.copy_u_sum``, libxsmm), scaled around it.
"torch CSR SpMM" is ``torch.sparse.mm`` (MKL on CPU, cuSPARSE on CUDA); "sampled_addmm" is
``torch.sparse.sampled_addmm`` on A's pattern (a two-gather product when F = 1 or when duplicates give
more entries than cells, which it rejects).

Why these kernels (E = 2e6, F = 64, 2 threads): torch's CSR SpMM (MKL) runs ~8x faster than DGL's
weighted kernels (``dglsp.spmm``, ``update_all(u_mul_e)``; both the scalar-broadcast "naive" kernel).
DGL's unweighted ``copy_u`` uses libxsmm and beats MKL by ~2x, so all-ones matrices go there, and so
do normalized 0/1 matrices (GCN/SAGE/LightGCN on unweighted graphs), as DGL's own GraphConv does.
The value gradient ``dval[e] = <G[row[e]], X[col[e]]>`` is an SDDMM over the nonzeros; torch's
``sampled_addmm`` is ~4x faster than DGL's ``gsddmm`` and ~10x faster than a gather. torch's own
autograd of ``torch.sparse.mm`` is never used: it transposes the CSR on every backward and, for CSR
values that require grad, materialises a dense N x N gradient.

Caching: the CSR index arrays of A and of A^T (from DGL's ``A.csr()`` / ``A.csc()``, as int32, which
MKL wants, plus the value *permutations*; never values) are kept per sparsity pattern in ``_PATTERNS``.
The key is the address of A's COO row and column index storage, which ``dglsp.val_like`` shares, so a
new matrix with the same structure (e.g. attention values every step) reuses them; the entry also
records the index arrays' version counters, so indices rewritten in place give a new entry. An entry is
dropped by a weakref callback as soon as either index storage dies, so the cache cannot outlive the
matrices (no leak) and an address cannot be reused while its entry exists (no stale hit). Values are
read from A at every call, so changing or learning them is always seen. Per-matrix facts (values in
CSR / CSC order, the D_r B D_c test) are cached on the matrix object itself, keyed by the values'
version counter, so they die with it. Version counters see every in-place update (optimizer steps,
``copy_``, ``mul_``, writes under ``no_grad``) but not writes through ``.data``: a matrix whose values
or indices are changed through ``.data`` must be rebuilt (``dglsp.val_like``). Nothing is cached for
tensors of ``torch.inference_mode``, which have no version counter.
"""

from __future__ import annotations

import itertools
import warnings
import weakref

import dgl
import dgl.sparse as dglsp
import torch
from dgl.sparse import SparseMatrix
from torch import Tensor
from torch.autograd.function import once_differentiable

_FAST_DTYPES = (torch.float32, torch.float64)
_HALF_DTYPES = (torch.float16, torch.bfloat16)
_SCALE_ATTR = "_graphnet_scaling"  # ((values version, data_ptr), _scaling result) cached on the matrix
_VALS_ATTR = "_graphnet_vals"  # {layout: ((values version, data_ptr), values in that layout's order)}


# torch warns once per process that CSR support is "beta"; spend that one warning here, silenced.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", UserWarning)
    _empty = torch.zeros(0, dtype=torch.long)
    torch.sparse_csr_tensor(torch.zeros(2, dtype=torch.long), _empty, torch.zeros(0), (1, 1))


# ---------------------------------------------------------------------------------------- patterns
class _Pattern:
    """Index arrays of one sparsity pattern in the layouts the kernels need. Holds no values.

    ``perm[k]`` is the position in ``A.val`` of the k-th nonzero in CSR order (None: identity);
    ``t`` = (indptr, indices, perm) of A^T (the CSC of A), built before the first backward to X.
    """

    def __init__(self, A: SparseMatrix, avoid: set[int]):
        self.shape = A.shape
        self.nnz = A.nnz
        self._avoid = avoid  # storages of A's COO arrays: never reference them (see _own)
        # int32 indices: torch converts int64 ones to int32 for MKL on every call (~10% of an SpMM).
        self._int32 = max(self.nnz, *self.shape) < 2**31 - 1
        indptr, indices, perm = A.csr()
        self.indptr, self.indices, self.perm = self._index(indptr), self._index(indices), self._perm(perm)
        self.t: tuple[Tensor, Tensor, Tensor | None] | None = None
        self.blocks: dict[str, object] = {}  # DGL blocks for copy_u, built on demand
        self._col_counts: Tensor | None = None
        self.refs: list[weakref.ref] = []  # weakrefs whose callbacks drop this entry

    def _own(self, t: Tensor) -> Tensor:
        # If DGL handed out a view of the COO storage (sorted input), holding it would keep that storage
        # alive and its weakref callback would never fire: copy it instead.
        return t.clone() if t.untyped_storage().data_ptr() in self._avoid else t

    def _index(self, t: Tensor) -> Tensor:
        return t.to(torch.int32) if self._int32 else self._own(t)

    def _perm(self, perm: Tensor | None) -> Tensor | None:
        arange = None if perm is None else torch.arange(self.nnz, device=perm.device, dtype=perm.dtype)
        if perm is None or torch.equal(perm, arange):
            return None  # identity: skip the gather/scatter on every call
        # int64 always: index_copy_ (the value gradient) takes no other index type; int32 indices give an
        # int32 permutation.
        return self._own(perm) if perm.dtype == torch.int64 else perm.long()

    def build_t(self, A: SparseMatrix) -> None:
        if self.t is None:
            indptr, indices, perm = A.csc()
            self.t = (self._index(indptr), self._index(indices), self._perm(perm))

    def csr(self, A: SparseMatrix | None, val: Tensor) -> Tensor:
        """torch CSR of A, (N_dst, N_src), with the current values."""
        v = _ordered(A, val, self.perm, "csr")
        return torch.sparse_csr_tensor(self.indptr, self.indices, v, self.shape)

    def csr_t(self, A: SparseMatrix | None, val: Tensor) -> Tensor:
        """torch CSR of A^T, (N_src, N_dst), with the current values."""
        indptr, indices, perm = self.t
        v = _ordered(A, val, perm, "csr_t")
        return torch.sparse_csr_tensor(indptr, indices, v, (self.shape[1], self.shape[0]))

    def sddmm(self, G: Tensor, X: Tensor) -> Tensor:
        """dval[e] = <G[row[e]], X[col[e]]> in A.val order; only the nnz dot products are computed."""
        if self.nnz <= self.shape[0] * self.shape[1] and G.shape[1] > 1:
            # beta=0 does not mask NaN/inf in the input values, so the pattern carries zeros.
            pattern = torch.sparse_csr_tensor(self.indptr, self.indices, G.new_zeros(self.nnz), self.shape)
            d = torch.sparse.sampled_addmm(pattern, G, X.T, beta=0.0).values()  # (nnz,) in CSR order
        else:
            # F = 1: two gathers beat sampled_addmm. More entries than cells (duplicates on a tiny
            # matrix): sampled_addmm rejects the pattern.
            counts = self.indptr.diff().long()
            rows = torch.repeat_interleave(torch.arange(self.shape[0], device=G.device), counts)
            d = (G[rows] * X[self.indices]).sum(1)  # (nnz,) in CSR order
        return d if self.perm is None else torch.empty_like(d).index_copy_(0, self.perm, d)

    def col_counts(self) -> Tensor:
        """Entries per column (duplicates counted), (N_src,); computed once."""
        if self._col_counts is None:
            self._col_counts = torch.bincount(self.indices, minlength=self.shape[1])
        return self._col_counts

    def block(self, transpose: bool):
        """DGL block whose in-CSC is the CSR of A (or of A^T): copy_u_sum on it is A @ X with A = 1."""
        key = "t" if transpose else "a"
        if key not in self.blocks:
            indptr, indices = (self.t[0], self.t[1]) if transpose else (self.indptr, self.indices)
            n_dst, n_src = self.shape[::-1] if transpose else self.shape
            eids = torch.empty(0, dtype=indices.dtype, device=indices.device)
            self.blocks[key] = dgl.create_block(("csc", (indptr, indices, eids)), num_src_nodes=n_src,
                                                num_dst_nodes=n_dst)
        return self.blocks[key]


def _ordered(A: SparseMatrix | None, val: Tensor, perm: Tensor | None, layout: str) -> Tensor:
    """``val[perm]``, cached on the matrix object A (val must be ``A.val``) per layout, keyed by version.

    A fixed A then pays the gather once; learned values change version at every optimizer step and are
    gathered once per step. Kept on A (not in _PATTERNS), so it lives exactly as long as A.
    A = None: no caching.
    """
    if perm is None:
        return val
    if A is None:  # index_select: ~4x faster than advanced indexing for a 1-D gather of 2e6 values
        return val.detach().index_select(0, perm)
    key = (val._version, val.data_ptr())
    cache = A.__dict__.setdefault(_VALS_ATTR, {})
    hit = cache.get(layout)
    if hit is None or hit[0] != key:
        hit = cache[layout] = (key, val.detach().index_select(0, perm))
    return hit[1]


_PATTERNS: dict[tuple, _Pattern] = {}
_TOKENS = itertools.count()


def _drop(key: tuple, token: int) -> None:
    p = _PATTERNS.get(key)
    if p is not None and p.token == token:
        del _PATTERNS[key]


def _cacheable(*ts: Tensor) -> bool:
    """Whether caches keyed by these tensors' version counters are valid: inference tensors (made in
    ``torch.inference_mode``) have none, and results computed there cannot be saved for a later backward."""
    return not torch.is_inference_mode_enabled() and not any(t.is_inference() for t in ts)


def _pattern(A: SparseMatrix) -> _Pattern:
    """The cached index arrays of A's sparsity pattern (built on first use; see module docstring)."""
    row, col = A.coo()
    nnz = row.numel()
    if not _cacheable(row, col):
        return _Pattern(A, avoid=set())  # no version to key on: built for this call only
    # Tensor attributes are ~50x cheaper than SparseMatrix properties (TorchScript calls): use them.
    key = (row.data_ptr(), col.data_ptr(), row.dtype, nnz, A.shape, row.device)
    # The versions catch index arrays rewritten in place (idx.copy_(...), then a new matrix on idx): the
    # same storage then holds another pattern.
    versions = (row._version, col._version)
    p = _PATTERNS.get(key)
    if p is None or p.versions != versions:
        storages = {row.untyped_storage(), col.untyped_storage()} if nnz else set()
        p = _Pattern(A, avoid={s.data_ptr() for s in storages})
        p.token, p.versions = next(_TOKENS), versions
        # The weakref objects must stay alive for their callbacks to fire; the entry owns them.
        p.refs = [weakref.ref(s, lambda _, k=key, t=p.token: _drop(k, t)) for s in storages]
        if nnz:  # an empty pattern is fully described by its key; keep none (nothing to leak)
            _PATTERNS[key] = p  # replaces an entry of rewritten indices (its callbacks check the token)
    return p


# ---------------------------------------------------------------------------------------- kernels
class _CsrSpmm(torch.autograd.Function):
    """out = A @ X with torch CSR kernels; dX = A^T G (CSR of A^T); dval = SDDMM(G, X) on the nonzeros."""

    @staticmethod
    def forward(ctx, val: Tensor, X: Tensor, pat: _Pattern, A: SparseMatrix | None) -> Tensor:
        ctx.pat, ctx.A = pat, A
        ctx.save_for_backward(val, X)
        return torch.sparse.mm(pat.csr(A, val), X)

    @staticmethod
    @once_differentiable
    def backward(ctx, G: Tensor):
        val, X = ctx.saved_tensors
        pat = ctx.pat
        dval = pat.sddmm(G, X) if ctx.needs_input_grad[0] else None
        dX = torch.sparse.mm(pat.csr_t(ctx.A, val), G) if ctx.needs_input_grad[1] else None
        return dval, dX, None, None


class _OnesSpmm(torch.autograd.Function):
    """out = A @ X for A with all values 1 (DGL copy_u, libxsmm); dX = copy_u on A^T."""

    @staticmethod
    def forward(ctx, X: Tensor, pat: _Pattern) -> Tensor:
        ctx.pat = pat
        return dgl.ops.copy_u_sum(pat.block(transpose=False), X)

    @staticmethod
    @once_differentiable
    def backward(ctx, G: Tensor):
        return dgl.ops.copy_u_sum(ctx.pat.block(transpose=True), G.contiguous()), None


# (power of the in-degree, power of the out-degree) of the diagonal scalings tried, 0 = no scaling:
# gcn_norm, row_norm and col_norm of a 0/1 matrix.
_SCALINGS = ((0.5, 0.5), (1.0, 0.0), (0.0, 1.0))
_SCALING_RTOL = 1e-6  # ~8 float32 ulps: the scaled product is then as exact as any float32 kernel


def _inv_pow(count: Tensor, power: float) -> Tensor | None:
    """count ** -power as a (n, 1) column, 0 where count = 0 (no entries: never gathered, never NaN)."""
    if power == 0:
        return None
    d = count.to(torch.float32)
    return torch.where(d > 0, d.clamp_min(1).pow(-power), torch.zeros_like(d)).unsqueeze(1)


def _scaling(A: SparseMatrix, val: Tensor, pat: _Pattern, cache: bool):
    """(r, c) with A = diag(r) B diag(c) for the 0/1 matrix B of A's pattern (None = identity), or None.

    Tried only for the scalings in _SCALINGS, computed from B's entry counts; cached on A (when
    ``cache``, i.e. val is A.val) by the values' version. A 64-entry probe rejects other values first.
    """
    if not cache:
        return _find_scaling(A, val, pat)
    key = (val._version, val.data_ptr())
    cached = A.__dict__.get(_SCALE_ATTR)
    if cached is not None and cached[0] == key:
        return cached[1]
    result = _find_scaling(A, val, pat)
    A.__dict__[_SCALE_ATTR] = (key, result)
    return result


def _find_scaling(A: SparseMatrix, val: Tensor, pat: _Pattern):
    if bool((val == 1).all()):
        return None, None
    row, col = A.coo()  # (nnz,) each, in A.val order: no permutation needed
    k = min(64, pat.nnz)
    for p_in, p_out in _SCALINGS:
        r, c = _inv_pow(pat.indptr.diff(), p_in), _inv_pow(pat.col_counts(), p_out)

        def matches(n: int | None, r=r, c=c) -> bool:
            v, rows, cols = val[:n], row[:n], col[:n]
            ones = torch.ones(1, dtype=torch.float32, device=v.device)
            e = (ones if r is None else r[rows, 0]) * (ones if c is None else c[cols, 0])
            return torch.allclose(v, e.expand_as(v), rtol=_SCALING_RTOL, atol=0)

        if matches(k) and matches(None):
            return r, c
    return None


def _fast(A: SparseMatrix, val: Tensor, X: Tensor, own: bool = True) -> Tensor:
    """A @ X for val (nnz,), X (N_src, F), same float32/float64 dtype and device.

    ``own``: val is ``A.val`` itself, so per-matrix caches keyed by its version are valid. A derived
    tensor (e.g. upcast) is new at every call and may reuse a freed address: never cache on it.
    """
    pat = _pattern(A)
    own = own and _cacheable(val)
    grad = torch.is_grad_enabled()
    if grad and X.requires_grad:
        pat.build_t(A)
    if (X.device.type == "cpu" and X.dtype == torch.float32 and not (grad and val.requires_grad)
            and dgl.is_libxsmm_enabled()):
        scaling = _scaling(A, val, pat, cache=own)
        if scaling is not None:  # A = diag(r) B diag(c), B 0/1: DGL's unweighted kernel, scaled around it
            r, c = scaling
            out = _OnesSpmm.apply((X if c is None else X * c).contiguous(), pat)  # (N_dst, F)
            return out if r is None else out * r
    return _CsrSpmm.apply(val, X, pat, A if own else None)


def spmm(A: SparseMatrix, X: Tensor) -> Tensor:
    """``A @ X``: (N_dst, N_src) x (N_src, F) -> (N_dst, F), or (N_src,) -> (N_dst,); kernel per the table."""
    val = A.val
    half = _reduced_dtype(val, X)
    if half is not None:
        return _reduced(A, val, X, half)
    if _autocast_dtype(X.device) is not None:
        # float32/float64 operands keep their dtype under autocast; without this, autocast would cast the
        # torch sparse product inside to its dtype, for which torch has no CPU kernel.
        with torch.autocast(X.device.type, enabled=False):
            return _full(A, val, X)
    return _full(A, val, X)


def _full(A: SparseMatrix, val: Tensor, X: Tensor) -> Tensor:
    """The dispatch for every case but reduced precision (the last three rows of the table)."""
    if (val.dim() != 1 or X.dim() > 2 or not X.is_floating_point() or val.dtype != X.dtype
            or val.device != X.device):
        return dglsp.spmm(A, X)
    if X.dtype not in _FAST_DTYPES:
        return dglsp.spmm(A, X)
    if X.dim() == 1:
        return _fast(A, val, X.unsqueeze(1)).squeeze(1)
    return _fast(A, val, X)


# ---------------------------------------------------------------------------------------- half precision
class ReducedPrecisionFallback(UserWarning):
    """An op asked for float16/bfloat16 ran in float32 (no usable kernel); its result is cast back."""


_WARNED: set[tuple[str, torch.dtype, str]] = set()  # (op, dtype, device type) already warned about


def warn_fallback(op: str, dtype: torch.dtype, device: torch.device, stacklevel: int = 2) -> None:
    """Warn once per process and (op, dtype, device type) that ``op`` runs in float32 instead of ``dtype``."""
    key = (op, dtype, device.type)
    if key in _WARNED:
        return
    _WARNED.add(key)
    name = str(dtype).removeprefix("torch.")
    warnings.warn(f"{op}: no {name} kernel used on {device.type}; computing in float32 and casting the "
                  f"result to {name} (shown once; see docs/mixed-precision.md)", ReducedPrecisionFallback,
                  stacklevel=stacklevel + 1)


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype torch.autocast is casting to on ``device``'s type, or None when it is off there."""
    if device.type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if device.type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return None


def _reduced_dtype(val: Tensor, X: Tensor) -> torch.dtype | None:
    """The reduced precision to return (module docstring), or None for the float32/float64 rows."""
    if not (val.is_floating_point() and X.is_floating_point()) or val.device != X.device:
        return None
    if val.dtype == X.dtype:
        return X.dtype if X.dtype in _HALF_DTYPES else None
    ac = _autocast_dtype(X.device)
    return ac if ac in (val.dtype, X.dtype) else None


def _reduced(A: SparseMatrix, val: Tensor, X: Tensor, dtype: torch.dtype) -> Tensor:
    """``A @ X`` returned in ``dtype`` (float16/bfloat16): DGL's kernels on CUDA, float32 on CPU."""
    if X.device.type != "cpu":
        B = A if val.dtype == dtype else dglsp.val_like(A, val.to(dtype))
        return dglsp.spmm(B, X.to(dtype))
    warn_fallback("graphnet.ops.spmm", dtype, X.device, stacklevel=4)  # -> the layer calling ops.spmm
    own = val.dtype == torch.float32  # val is A.val itself: per-matrix caches stay valid
    val32, X32 = (val if own else val.float()), X.float()
    with torch.autocast("cpu", enabled=False):  # else torch.sparse.mm inside would be cast back to dtype
        if val.dim() == 1 and X.dim() <= 2:
            out = _fast(A, val32, X32.unsqueeze(1) if X.dim() == 1 else X32, own=own)
            out = out.squeeze(1) if X.dim() == 1 else out
        else:  # multi-head values / 3-D X: DGL's float32 kernel
            out = dglsp.spmm(A if own else dglsp.val_like(A, val32), X32)
    return out.to(dtype)
