"""A restricted unpickler for the Planetoid files (Python-2 pickles of numpy/scipy objects).

``pickle.load`` executes whatever callable a file names (``os.system`` via ``__reduce__``). This unpickler
resolves only the globals listed in ``ALLOWED``, the exact set the Planetoid files use (checked with
``pickletools`` on all 24 files): numpy arrays and dtypes, scipy CSR matrices, ``collections.defaultdict``
and ``list``. Any other global raises ``DataError`` *before* anything is called, so a tampered file cannot
run code. Python-2 module names (``__builtin__``, ``copy_reg``, ``scipy.sparse.csr``) are mapped to their
current homes.
"""

from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

from graphnet.errors import DataError


def _allowed() -> dict[tuple[str, str], Any]:
    import numpy as np
    import scipy.sparse as sp

    try:  # numpy >= 2 moved it; keep both spellings resolvable to the same function
        from numpy.core.multiarray import _reconstruct
    except ImportError:  # pragma: no cover
        from numpy._core.multiarray import _reconstruct
    return {
        ("numpy", "dtype"): np.dtype,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("scipy.sparse.csr", "csr_matrix"): sp.csr_matrix,
        ("scipy.sparse._csr", "csr_matrix"): sp.csr_matrix,
        ("scipy.sparse", "csr_matrix"): sp.csr_matrix,
        ("collections", "defaultdict"): collections.defaultdict,
        ("__builtin__", "list"): list,
        ("builtins", "list"): list,
    }


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose ``find_class`` admits only ``ALLOWED`` globals (see module docstring)."""

    def __init__(self, file: Any, source: str = "<pickle>") -> None:
        super().__init__(file, encoding="latin1")  # Python-2 str -> bytes-as-latin1, as numpy expects
        self.source = source
        self.allowed = _allowed()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.allowed[(module, name)]
        except KeyError:
            raise DataError(
                f"{self.source}: refusing to unpickle global {module}.{name} (only numpy arrays, "
                f"scipy CSR matrices, defaultdict and list are allowed); the file may have been "
                f"tampered with"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise DataError(f"{self.source}: refusing persistent id {pid!r} in pickle")


def load_pickle(path: str | Path, source: str | None = None) -> Any:
    """Unpickle ``path`` with ``RestrictedUnpickler``; any failure is a DataError naming ``source``."""
    source = source or str(path)
    data = Path(path).read_bytes()
    try:
        return RestrictedUnpickler(io.BytesIO(data), source).load()
    except DataError:
        raise
    except Exception as e:  # truncated/garbled stream: EOFError, UnpicklingError, ValueError, ...
        raise DataError(f"{source}: not a valid pickle ({type(e).__name__}: {e})") from None
