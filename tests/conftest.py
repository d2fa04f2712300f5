"""Shared fixtures: a ``device`` fixture and a tagged catalog of tiny hand-written graphs (<= 10 nodes).

Use the catalog through the ``tiny_graph`` argument, parametrized over every catalog entry, or a subset
chosen with the ``tiny_graphs`` marker::

    @pytest.mark.tiny_graphs(require=("square",), exclude=("multi_edge",))
    def test_x(tiny_graph): A = tiny_graph.adjacency(); ...

    # pair each graph with each object of a list that accepts it (object.accepts(case) -> bool):
    @pytest.mark.tiny_graphs(pair=("spec", SPECS))
    def test_y(spec, tiny_graph): ...

The ``tiny_graph_catalog`` fixture returns the whole dict {name: TinyGraph}. Edges are listed src -> dst
(graphnet's A[dst, src] = weight). Tags: square / bipartite, directed / symmetric, weighted / unweighted,
self_loops, isolated (a node without in- or out-edges), zero_in (some node has no in-edge), multi_edge
(a (src, dst) pair listed twice), multi_relation (edge_type given).
"""

from __future__ import annotations

import os

# Tests use tiny tensors: with several processes sharing 2 cores, OpenMP thread pools spin and wait on
# each other (30 GAT training steps took 18 s with 2 threads under load, 0.2 s with 1). One thread unless
# GRAPHNET_TEST_THREADS says otherwise; set before torch/dgl load their OpenMP runtimes.
_THREADS = int(os.environ.get("GRAPHNET_TEST_THREADS", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(_THREADS))

from dataclasses import dataclass, field  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(_THREADS)

from graphnet.graph import Graph, adjacency  # noqa: E402


@dataclass(frozen=True)
class TinyGraph:
    """A hand-written test graph; edge e is src[e] -> dst[e] with weight[e] and relation edge_type[e]."""

    name: str
    num_nodes: int | tuple[int, int]  # N, or (N_dst, N_src) for a bipartite graph
    src: tuple[int, ...]
    dst: tuple[int, ...]
    weight: tuple[float, ...] | None = None
    edge_type: tuple[int, ...] | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def __str__(self) -> str:
        return self.name

    @property
    def shape(self) -> tuple[int, int]:
        n = self.num_nodes
        return (n, n) if isinstance(n, int) else n

    @property
    def num_edges(self) -> int:
        return len(self.src)

    @property
    def num_relations(self) -> int:
        return max(self.edge_type) + 1 if self.edge_type else 1

    def weights(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> torch.Tensor:
        """(E,) the graph's weights (ones when unweighted)."""
        w = self.weight if self.weight is not None else (1.0,) * self.num_edges
        return torch.tensor(w, dtype=dtype, device=device)

    def random_weights(
        self, seed: int = 0, dtype: torch.dtype = torch.float64, device: str = "cpu"
    ) -> torch.Tensor:
        """(E,) generic positive weights in [0.5, 2) (no accidental ties or cancellations)."""
        g = torch.Generator().manual_seed(seed)
        return (0.5 + 1.5 * torch.rand(self.num_edges, generator=g, dtype=dtype)).to(device)

    def adjacency(
        self,
        weight: torch.Tensor | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
    ):
        """dgl.sparse A (N_dst, N_src), nonzeros in listing order; ``weight`` overrides the stored weights."""
        w = self.weights(dtype, device) if weight is None else weight
        src, dst = torch.tensor(self.src, dtype=torch.long), torch.tensor(self.dst, dtype=torch.long)
        return adjacency(src.to(device), dst.to(device), self.shape, w)

    def edge_types(self, device: str | torch.device = "cpu") -> torch.Tensor | None:
        return (
            None if self.edge_type is None else torch.tensor(self.edge_type, dtype=torch.long, device=device)
        )

    def graph(self, dtype: torch.dtype = torch.float64, device: str | torch.device = "cpu") -> Graph:
        """graphnet.Graph of a square catalog graph (edge_type attached when present)."""
        return Graph(
            A=self.adjacency(dtype=dtype, device=device), edge_type=self.edge_types(device), name=self.name
        )

    def out_neighbours(self, j: int) -> set[int]:
        """Destinations of the edges leaving j."""
        return {d for s, d in zip(self.src, self.dst, strict=True) if s == j}


def _undirected(pairs):
    src = tuple(u for u, v in pairs) + tuple(v for u, v in pairs)
    dst = tuple(v for u, v in pairs) + tuple(u for u, v in pairs)
    return src, dst


_STAR = _undirected([(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)])
_WEIGHTED = _undirected([(0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5), (5, 3), (1, 6)])
_TWO_COMPONENTS = _undirected([(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (4, 5), (5, 6), (6, 7), (7, 4)])

TINY_GRAPHS: dict[str, TinyGraph] = {
    g.name: g
    for g in [
        TinyGraph(
            "path",
            5,
            (0, 1, 2, 3),
            (1, 2, 3, 4),
            tags=frozenset({"square", "directed", "unweighted", "zero_in"}),
        ),
        TinyGraph("star", 6, *_STAR, tags=frozenset({"square", "symmetric", "unweighted"})),
        TinyGraph(
            "isolated",
            6,
            (0, 1, 2, 3, 0),
            (1, 2, 0, 1, 3),
            tags=frozenset({"square", "directed", "unweighted", "isolated", "zero_in"}),
        ),
        TinyGraph(
            "self_loops",
            4,
            (0, 1, 0, 1, 2, 3, 2),
            (0, 1, 1, 2, 3, 0, 0),
            (2.0, 0.5, 1.0, 3.0, 0.25, 1.5, 0.75),
            tags=frozenset({"square", "directed", "weighted", "self_loops"}),
        ),
        TinyGraph(
            "bipartite",
            (3, 4),
            (0, 1, 1, 2, 3, 3),
            (0, 0, 1, 2, 1, 2),
            (1.0, 2.0, 0.5, 1.5, 3.0, 0.25),
            tags=frozenset({"bipartite", "directed", "weighted"}),
        ),
        TinyGraph(
            "weighted",
            7,
            *_WEIGHTED,
            (0.5, 2.0, 1.0, 4.0, 0.25, 1.5, 3.0, 0.75) * 2,
            tags=frozenset({"square", "symmetric", "weighted"}),
        ),
        TinyGraph(
            "multi_relation",
            6,
            (0, 0, 1, 2, 3, 4, 5, 2, 1),
            (1, 1, 2, 3, 4, 5, 0, 0, 4),
            (1.0, 2.0, 0.5, 1.5, 1.0, 3.0, 0.5, 2.5, 1.0),
            (0, 2, 1, 0, 2, 1, 0, 1, 0),
            tags=frozenset({"square", "directed", "weighted", "multi_edge", "multi_relation"}),
        ),
        TinyGraph(
            "two_components", 8, *_TWO_COMPONENTS, tags=frozenset({"square", "symmetric", "unweighted"})
        ),
    ]
}


def select_tiny_graphs(require=(), exclude=()) -> list[TinyGraph]:
    """Catalog entries having every tag in ``require`` and none in ``exclude``."""
    return [g for g in TINY_GRAPHS.values() if set(require) <= g.tags and not set(exclude) & g.tags]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "tiny_graphs(require=(), exclude=(), pair=None): select the catalog "
        "graphs a `tiny_graph` test runs on (see tests/conftest.py)",
    )


def pytest_generate_tests(metafunc):
    if "tiny_graph" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("tiny_graphs")
    kw = marker.kwargs if marker else {}
    cases = select_tiny_graphs(kw.get("require", ()), kw.get("exclude", ()))
    if kw.get("pair"):
        name, objects = kw["pair"]
        combos = [(o, g) for o in objects for g in cases if o.accepts(g)]
        metafunc.parametrize((name, "tiny_graph"), combos, ids=[f"{o}-{g}" for o, g in combos])
    else:
        metafunc.parametrize("tiny_graph", cases, ids=[g.name for g in cases])


@pytest.fixture(scope="session")
def tiny_graph_catalog() -> dict[str, TinyGraph]:
    return TINY_GRAPHS


@pytest.fixture(params=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def device(request) -> torch.device:
    return torch.device(request.param)
