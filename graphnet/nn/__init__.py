"""Layers, model stacks, decoders and dense baselines.

``MODELS`` maps every model name (the public contract of the config's ``model.name``) to its class:
GNN stacks from ``models.ENCODERS`` and dense baselines from ``baselines.BASELINES``.
"""

from graphnet.nn.baselines import BASELINES, GCMC, MF, ComplExKGE, DistMultKGE, LightGCN, RotatEKGE
from graphnet.nn.conv import (
    APPNPConv,
    ChebConv,
    EdgeFeatConv,
    GATConv,
    GINConv,
    GraphConv,
    LightGCNProp,
    SAGEConv,
    SGConv,
)
from graphnet.nn.conv_rel import RelGraphConv
from graphnet.nn.heads import BilinearDecoder, ComplEx, DistMult, DotProduct, MLPScorer, RotatE
from graphnet.nn.models import APPNP, ENCODERS, GAT, GCN, GIN, MLP, RGCN, SAGE, SGC, Cheb, EdgeFeat

MODELS = {**ENCODERS, **BASELINES}

__all__ = [
    "APPNP", "APPNPConv", "BASELINES", "BilinearDecoder", "Cheb", "ChebConv", "ComplEx", "ComplExKGE",
    "DistMult", "DistMultKGE", "DotProduct", "ENCODERS", "EdgeFeat", "EdgeFeatConv", "GAT", "GATConv",
    "GCMC", "GCN", "GIN", "GINConv", "GraphConv", "LightGCN", "LightGCNProp", "MF", "MLP", "MLPScorer",
    "MODELS", "RGCN", "RelGraphConv", "RotatE", "RotatEKGE", "SAGE", "SAGEConv", "SGC", "SGConv",
]
