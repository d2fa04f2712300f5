"""graphnet: edge-weighted graph neural networks on dgl.sparse."""
__version__ = "0.1.0"
