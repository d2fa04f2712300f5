"""graphnet: edge-weighted graph neural networks on dgl.sparse.

The public API is re-exported here explicitly but imported lazily: ``import dgl`` costs ~7 s, and
``graphnet --help`` or ``graphnet list`` must not pay for it.

    from graphnet import Graph, ops, load, run
"""

import importlib
import os

# `import dgl` imports ogb, whose `outdated` dependency starts a network version check on import (it fails
# offline with an OutdatedCheckFailedWarning). The one side effect of importing graphnet: opt out of it,
# unless the user set the variable.
os.environ.setdefault("OUTDATED_IGNORE", "1")

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_EXPORTS = {
    "Graph": ("graphnet.graph", "Graph"),
    "ops": ("graphnet.ops", None),
    "nn": ("graphnet.nn", None),
    "metrics": ("graphnet.metrics", None),
    "load": ("graphnet.data", "load"),
    "load_config": ("graphnet.config", "load_config"),
    "run": ("graphnet.run", "run"),
    "Trainer": ("graphnet.train", "Trainer"),
    "TASKS": ("graphnet.tasks", "TASKS"),
    "MODELS": ("graphnet.nn", "MODELS"),
    "GraphnetError": ("graphnet.errors", "GraphnetError"),
    "GraphError": ("graphnet.errors", "GraphError"),
    "ConfigError": ("graphnet.errors", "ConfigError"),
    "DataError": ("graphnet.errors", "DataError"),
    "ReducedPrecisionFallback": ("graphnet._spmm", "ReducedPrecisionFallback"),
    "NeighborSampler": ("graphnet.sampling", "NeighborSampler"),
    "layerwise_inference": ("graphnet.sampling", "layerwise_inference"),
    "distributed": ("graphnet.distributed", None),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'graphnet' has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    obj = importlib.import_module(module)
    return obj if attr is None else getattr(obj, attr)
