"""Model stacks: dense references for whole models (preprocess included), the shared call contract,
zero-weight edges through the models' normalizations, paper defaults, and a few training steps each."""

from __future__ import annotations

import inspect

import pytest
import torch
import torch.nn.functional as F

from graphnet import ops
from graphnet.errors import ConfigError, GraphError
from graphnet.nn.models import APPNP, ENCODERS, GAT, GCN, MLP, RGCN, SGC, Cheb, EdgeFeat

IN, OUT = 5, 3


def build(name, seed=0, **kw):
    torch.manual_seed(seed)
    if name == "rgcn":
        kw.setdefault("num_relations", 3)
    if name == "edgefeat":
        kw.setdefault("edge_dim", 2)
    return ENCODERS[name](IN, OUT, **kw).double().eval()


def inputs(case, seed=1):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(case.shape[0], IN, generator=g, dtype=torch.float64)
    t = case.edge_types() if case.edge_type is not None else torch.arange(case.num_edges) % 3
    f = torch.randn(case.num_edges, 2, generator=g, dtype=torch.float64)
    return X, t, f


def call(model, A_raw, X, t, f):
    """What a task does: preprocess once, then forward with every optional argument."""
    return model(model.preprocess(A_raw, t), X, edge_type=t, edge_feat=f)


def dense_gcn_norm(D):
    """D_in^-1/2 (A + I) D_out^-1/2 densely, weighted degrees, 0 for empty rows."""
    D = D + torch.eye(D.shape[0], dtype=D.dtype)
    d_in, d_out = D.sum(1), D.sum(0)
    inv = lambda d: torch.where(d > 0, d.clamp(min=1e-300).rsqrt(), torch.zeros_like(d))  # noqa: E731
    return inv(d_in)[:, None] * D * inv(d_out)[None, :]


def dense(case, w):
    return torch.zeros(case.shape, dtype=w.dtype).index_put(
        (torch.tensor(case.dst), torch.tensor(case.src)), w, accumulate=True
    )


def test_encoders_registry_names():
    assert sorted(ENCODERS) == sorted(
        ["mlp", "gcn", "sage", "gat", "gin", "sgc", "appnp", "cheb", "edgefeat", "rgcn"]
    )


# ------------------------------------------------------------------------------------------ dense references
@pytest.mark.tiny_graphs(require=("square",))
def test_gcn_sgc_appnp_mlp_match_dense_models(tiny_graph):
    X, t, f = inputs(tiny_graph)
    w = tiny_graph.random_weights()
    A, S = tiny_graph.adjacency(w), dense_gcn_norm(dense(tiny_graph, w))

    gcn = build("gcn")
    l1, l2 = gcn.layers
    ref = S @ (F.relu(S @ (X @ l1.weight) + l1.bias) @ l2.weight) + l2.bias
    torch.testing.assert_close(call(gcn, A, X, t, f), ref)

    sgc = build("sgc")
    torch.testing.assert_close(call(sgc, A, X, t, f), S @ S @ X @ sgc.conv.lin.weight.T + sgc.conv.lin.bias)

    mlp = build("mlp")
    h = mlp.layers[1](F.relu(mlp.layers[0](X)))
    torch.testing.assert_close(call(mlp, A, X, t, f), h)

    appnp = build("appnp", K=4, alpha=0.2)
    H0 = appnp.mlp(A, X)
    torch.testing.assert_close(H0, appnp.mlp.layers[1](F.relu(appnp.mlp.layers[0](X))))
    H = H0
    for _ in range(4):
        H = 0.8 * S @ H + 0.2 * H0
    torch.testing.assert_close(call(appnp, A, X, t, f), H)


@pytest.mark.tiny_graphs(require=("square",), exclude=("multi_edge",))
def test_sage_gin_cheb_edgefeat_match_dense_two_layer_models(tiny_graph):
    """Whole models, preprocess included, against two dense layers with ReLU between (eval: no dropout)."""
    X, t, f = inputs(tiny_graph)
    w = tiny_graph.random_weights()
    A, D = tiny_graph.adjacency(w), dense(tiny_graph, w)
    deg = D.sum(1, keepdim=True)
    M = D / torch.where(deg == 0, 1.0, deg)  # weighted mean: sum_j w_ij h_j / sum_j w_ij (0 if no in-edge)
    inv = lambda d: torch.where(d > 0, d.clamp(min=1e-300).rsqrt(), torch.zeros_like(d))  # noqa: E731
    L = -(inv(D.sum(1))[:, None] * D * inv(D.sum(0))[None, :])  # lambda_max 2: L~ = -D^-1/2 A D^-1/2
    E = torch.zeros(D.shape + (2,), dtype=D.dtype).index_put(
        (torch.tensor(tiny_graph.dst), torch.tensor(tiny_graph.src)), f)  # (N, N, 2) edge features

    def cheb_layer(c, H):
        T = [H, L @ H]
        while len(T) < c.K:
            T.append(2 * L @ T[-1] - T[-2])
        return torch.cat(T, 1) @ c.lin.weight.T + c.lin.bias

    def edgefeat_layer(c, H):
        gate = (M[..., None] * E) @ c.gate.weight.T  # (N, N, out): per-edge, per-channel gate
        return torch.einsum("ijo,jo->io", gate, H @ c.lin.weight.T) + H @ c.lin_root.weight.T + c.bias

    layers = {
        "sage": lambda c, H: H @ c.lin_self.weight.T + (M @ H) @ c.lin_neigh.weight.T + c.bias,
        "gin": lambda c, H: c.mlp((1 + c.eps) * H + D @ H),
        "cheb": cheb_layer,
        "edgefeat": edgefeat_layer,
    }
    for name, layer in layers.items():
        model = build(name)
        ref = layer(model.layers[1], F.relu(layer(model.layers[0], X)))
        torch.testing.assert_close(call(model, A, X, t, f), ref, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.tiny_graphs(require=("square",), exclude=("multi_edge",))
def test_gat_model_matches_dense_two_layer_gat(tiny_graph):
    X, t, _ = inputs(tiny_graph)
    w = tiny_graph.random_weights()
    gat = build("gat", hidden_dim=2, num_heads=3, out_heads=2)
    n = tiny_graph.shape[0]
    D = dense(tiny_graph, w) + torch.diag((dense(tiny_graph, torch.ones_like(w)).diag() == 0).double())
    mask = D != 0

    def layer(conv, H):
        Z = conv.lin(H).view(n, conv.num_heads, -1)
        logits = F.leaky_relu((Z * conv.attn_src).sum(-1)[None] + (Z * conv.attn_dst).sum(-1)[:, None], 0.2)
        alpha = torch.softmax(logits.masked_fill(~mask[..., None], float("-inf")), 1)
        return torch.einsum("ijh,ij,jhf->ihf", alpha, D, Z) + conv.bias

    ref = layer(gat.layers[1], F.elu(layer(gat.layers[0], X).flatten(1))).mean(1)
    torch.testing.assert_close(call(gat, tiny_graph.adjacency(w), X, t, None), ref)


@pytest.mark.tiny_graphs(require=("square",))
def test_rgcn_model_matches_dense_relational_stack(tiny_graph):
    X, t, _ = inputs(tiny_graph)
    w = tiny_graph.random_weights()
    model = build("rgcn", num_bases=2, hidden_dim=4)
    Dr = [dense(tiny_graph, torch.where(t == r, w, torch.zeros_like(w))) for r in range(3)]
    Dr = [D / torch.where(D.sum(1, keepdim=True) == 0, 1.0, D.sum(1, keepdim=True)) for D in Dr]

    def layer(conv, H):
        W = torch.einsum("rb,bio->rio", conv.coeff, conv.weight)
        return sum(Dr[r] @ H @ W[r] for r in range(3)) + H @ conv.loop_weight + conv.bias

    ref = layer(model.layers[1], F.relu(layer(model.layers[0], X)))
    torch.testing.assert_close(call(model, tiny_graph.adjacency(w), X, t, None), ref)


# ------------------------------------------------------------------------------------------ contract
@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.tiny_graphs(require=("square",))
def test_every_model_maps_to_node_representations(name, tiny_graph):
    X, t, f = inputs(tiny_graph)
    model = build(name)
    A = tiny_graph.adjacency(tiny_graph.random_weights())
    out = call(model, A, X, t, f)
    assert out.shape == (tiny_graph.shape[0], OUT) and out.dtype == torch.float64
    assert torch.isfinite(out).all()
    torch.testing.assert_close(call(model, A, X, t, f), out)  # eval mode is deterministic


@pytest.mark.parametrize("name", sorted(set(ENCODERS) - {"gat"}))
@pytest.mark.tiny_graphs(require=("square",))
def test_zero_weight_edge_equals_removed_edge_through_preprocess(name, tiny_graph):
    """Normalizations use weighted degrees, so a zero-weight edge leaves every degree unchanged.
    (GAT is excluded: its zero-weight edge still takes part in the softmax; see conv.py.)"""
    X, t, f = inputs(tiny_graph)
    model = build(name)
    w = tiny_graph.random_weights()
    e = tiny_graph.num_edges // 2
    keep = torch.arange(tiny_graph.num_edges) != e
    w0 = w.clone()
    w0[e] = 0.0
    from graphnet.graph import adjacency

    src, dst = torch.tensor(tiny_graph.src), torch.tensor(tiny_graph.dst)
    A_removed = adjacency(src[keep], dst[keep], tiny_graph.shape, w[keep])
    out_zero = call(model, tiny_graph.adjacency(w0), X, t, f)
    torch.testing.assert_close(out_zero, call(model, A_removed, X, t[keep], f[keep]))


def test_mlp_ignores_the_graph(tiny_graph_catalog):
    mlp = build("mlp")
    X, t, f = inputs(tiny_graph_catalog["star"])
    A1 = tiny_graph_catalog["star"].adjacency()
    A2 = ops.add_self_loops(A1)
    torch.testing.assert_close(mlp(A1, X), mlp(A2, X))
    assert MLP.preprocess(A1) is A1


def test_preprocess_functions(tiny_graph_catalog):
    case = tiny_graph_catalog["multi_relation"]
    A, t = case.adjacency(case.random_weights()), case.edge_types()
    torch.testing.assert_close(GCN.preprocess(A).to_dense(), ops.gcn_norm(A).to_dense())
    torch.testing.assert_close(SGC.preprocess(A).val, ops.gcn_norm(A).val)
    torch.testing.assert_close(APPNP.preprocess(A).val, ops.gcn_norm(A).val)
    torch.testing.assert_close(Cheb.preprocess(A).val, ops.scaled_laplacian(A).val)
    for name in ("sage", "gin", "mlp"):
        assert ENCODERS[name].preprocess(A) is A
    # preprocessors that keep the edge list keep its order, so edge_type / edge_feat stay aligned
    for P in (EdgeFeat.preprocess(A), RGCN.preprocess(A, t)):
        assert torch.equal(P.row, A.row) and torch.equal(P.col, A.col)
    torch.testing.assert_close(EdgeFeat.preprocess(A).val, ops.row_norm(A).val)
    G = GAT.preprocess(A)  # self-loops appended after the original edges
    assert torch.equal(G.row[: A.nnz], A.row) and torch.equal(G.col[: A.nnz], A.col)
    assert torch.equal(G.row[A.nnz :], G.col[A.nnz :]) and G.nnz == A.nnz + case.shape[0]
    with pytest.raises(GraphError, match="edge_type"):
        RGCN.preprocess(A)


def test_gat_pads_edge_features_of_appended_self_loops(tiny_graph_catalog):
    case = tiny_graph_catalog["path"]
    X, _, f = inputs(case)
    model = build("gat", edge_dim=2)
    A = GAT.preprocess(case.adjacency())
    padded = torch.cat([f, torch.zeros(A.nnz - case.num_edges, 2, dtype=torch.float64)])
    torch.testing.assert_close(model(A, X, edge_feat=f), model(A, X, edge_feat=padded))
    assert not torch.allclose(model(A, X, edge_feat=f), model(A, X, edge_feat=torch.ones_like(padded)))


def test_edgefeat_model_uses_edge_features_and_scalar_weights(tiny_graph_catalog):
    case = tiny_graph_catalog["weighted"]
    X, t, f = inputs(case)
    A = EdgeFeat.preprocess(case.adjacency())
    vec = build("edgefeat")
    assert not torch.allclose(vec(A, X, edge_feat=f), vec(A, X, edge_feat=2 * f))
    with pytest.raises(GraphError, match=r"edge_feat of shape \(nnz=16, 2\), got None"):
        vec(A, X)
    scalar = build("edgefeat", edge_dim=1)
    assert scalar(A, X).shape == (case.shape[0], OUT)


@pytest.mark.parametrize("num_layers", [1, 3])
def test_depth(num_layers, tiny_graph_catalog):
    case = tiny_graph_catalog["weighted"]
    X, t, f = inputs(case)
    for name in ("mlp", "gcn", "sage", "gat", "gin", "cheb", "edgefeat", "rgcn", "appnp"):
        model = build(name, num_layers=num_layers)
        n_layers = len(model.mlp.layers) if name == "appnp" else len(model.layers)
        assert n_layers == num_layers
        assert call(model, case.adjacency(), X, t, f).shape == (case.shape[0], OUT)


def test_paper_defaults():
    def defaults(cls):
        return {
            k: p.default
            for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty
        }

    assert {k: defaults(GCN)[k] for k in ("hidden_dim", "num_layers", "dropout")} == {
        "hidden_dim": 16,
        "num_layers": 2,
        "dropout": 0.5,
    }
    assert {
        k: defaults(GAT)[k] for k in ("hidden_dim", "num_heads", "out_heads", "dropout", "attn_dropout")
    } == {"hidden_dim": 8, "num_heads": 8, "out_heads": 1, "dropout": 0.6, "attn_dropout": 0.6}
    assert defaults(SGC)["K"] == 2
    assert {k: defaults(APPNP)[k] for k in ("hidden_dim", "K", "alpha", "dropout")} == {
        "hidden_dim": 64,
        "K": 10,
        "alpha": 0.1,
        "dropout": 0.5,
    }
    assert list(inspect.signature(RGCN).parameters)[:4] == ["in_dim", "out_dim", "num_relations", "num_bases"]


def test_dropout_only_in_training(tiny_graph_catalog):
    case = tiny_graph_catalog["weighted"]
    X, t, f = inputs(case)
    model = build("gat")
    A = GAT.preprocess(case.adjacency())
    model.train()
    torch.manual_seed(0)
    a = model(A, X)
    torch.manual_seed(1)
    assert not torch.allclose(a, model(A, X))
    model.eval()
    torch.testing.assert_close(model(A, X), model(A, X))


@pytest.mark.parametrize("input_dropout", [None, 0.0, 0.25])
def test_input_dropout_is_the_rate_on_the_first_layer_input_only(input_dropout, tiny_graph_catalog):
    """Train-mode GCN against a dense reference drawing the same masks in the same order:
    H = S relu(S drop_in(X) W1 + b1); out = S drop(H) W2 + b2, with drop_in = drop when None (Kipf),
    no mask when 0 (the OGB link examples)."""
    case = tiny_graph_catalog["weighted"]
    X, t, f = inputs(case)
    gcn = build("gcn", dropout=0.5, input_dropout=input_dropout).train()
    w = case.random_weights()
    A, S = case.adjacency(w), dense_gcn_norm(dense(case, w))
    l1, l2 = gcn.layers
    torch.manual_seed(3)
    out = call(gcn, A, X, t, f)
    torch.manual_seed(3)
    p_in = 0.5 if input_dropout is None else input_dropout
    X_in = F.dropout(X, p_in, True) if p_in > 0 else X
    H = F.dropout(F.relu(S @ (X_in @ l1.weight) + l1.bias), 0.5, True)
    torch.testing.assert_close(out, S @ (H @ l2.weight) + l2.bias)
    with pytest.raises(ConfigError, match=r"GCN: expected 0 <= input_dropout < 1 \(or None = dropout\)"):
        build("gcn", input_dropout=1.0)

@pytest.mark.parametrize("input_dropout", [None, 0.0, 0.25])
def test_gat_takes_input_dropout_on_its_first_layer(input_dropout, tiny_graph_catalog):
    """GAT overrides the shared layer loop; its first layer must still use input_dropout (it used dropout)."""
    case = tiny_graph_catalog["weighted"]
    X, _, _ = inputs(case)
    gat = build("gat", dropout=0.5, attn_dropout=0.0, input_dropout=input_dropout).train()
    A = GAT.preprocess(case.adjacency(case.random_weights()))
    p_in = 0.5 if input_dropout is None else input_dropout
    torch.manual_seed(3)
    got = gat.forward_layer(0, A, X)
    torch.manual_seed(3)  # the same mask: F.dropout draws it first, as nn.Dropout does
    ref = F.elu(gat.layers[0](A, F.dropout(X, p_in, training=True)).flatten(1))
    torch.testing.assert_close(got, ref)



@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_a_few_training_steps_fit_component_labels(name, tiny_graph_catalog):
    """Every model learns: 30 Adam steps lower the cross-entropy on a two-component graph."""
    case = tiny_graph_catalog["two_components"]
    X, t, f = inputs(case)
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    kw = (
        {"dropout": 0.0}
        | ({"attn_dropout": 0.0} if name == "gat" else {})
        | ({"K": 3} if name == "appnp" else {})
    )
    model = build(name, **kw).train()
    A = model.preprocess(case.adjacency(), t)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(A, X, edge_type=t, edge_feat=f)[:, :2], y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.reset_parameters()  # and reset brings back an untrained model
    with torch.no_grad():
        assert F.cross_entropy(model(A, X, edge_type=t, edge_feat=f)[:, :2], y).item() > losses[-1]


def test_bad_configuration_raises_config_error():
    with pytest.raises(ConfigError, match="num_layers to be an integer >= 1, got 0"):
        GCN(IN, OUT, num_layers=0)
    with pytest.raises(ConfigError, match="0 <= dropout < 1, got 1.0"):
        GAT(IN, OUT, dropout=1.0)
    with pytest.raises(ConfigError, match="in_dim to be an integer >= 1"):
        MLP(0, OUT)
    with pytest.raises(ConfigError, match="num_relations"):
        RGCN(IN, OUT, 0)
    with pytest.raises(ConfigError, match="aggregator must be one of"):
        ENCODERS["sage"](IN, OUT, aggregator="max")


def test_bad_inputs_raise_graph_error(tiny_graph_catalog):
    case = tiny_graph_catalog["weighted"]
    A = case.adjacency()
    with pytest.raises(GraphError, match=r"expected X of shape \(N_src=7, in_dim=5\), got \(7, 4\)"):
        build("gcn")(GCN.preprocess(A), torch.randn(7, 4, dtype=torch.float64))
    with pytest.raises(GraphError, match=r"MLP: expected X of shape \(N, in_dim=5\), got \(7, 4\)"):
        build("mlp")(A, torch.randn(7, 4, dtype=torch.float64))
    with pytest.raises(GraphError, match="edge_type"):
        build("rgcn")(A, torch.randn(7, IN, dtype=torch.float64))
