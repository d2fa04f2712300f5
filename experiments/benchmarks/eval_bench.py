"""Evaluation throughput (issue 6, 4d): filtered KG ranking vs PyKEEN, recsys full-sort vs a reference loop.

KG: DistMult with the same entity/relation tables (graphnet's weights copied into ``pykeen.models.DistMult``)
on the test triples; both rank the true head AND tail among all entities, filtered by train + val + test,
realistic tie policy, ``batch_size`` queries at a time. Contenders:
- graphnet: ``KGCompletion.evaluate(model, graph, "test")`` (vectorized filter masks, graphnet.metrics);
- PyKEEN: ``RankBasedEvaluator(filtered=True).evaluate(model, test, batch_size=..,
  additional_filter_triples=[train, val])``.
Both return MRR; the agreement of the two MRRs is the correctness check.

Recsys: Gowalla, LightGCN (3 layers, d=64, random init: throughput does not depend on training), full
sort over all items with the user's training items excluded, recall@20 / ndcg@20. Contenders:
- graphnet: ``Recommendation.evaluate(model, graph, "test")`` (scores into one reused buffer, -inf at the
  training items by one ``index_put_`` from a CSR, ``metrics.topk_indices``, hits by binary search of
  (user, item) keys; no dense (B, I) masks);
- reference: the evaluation loop of LightGCN's reference code (gusye1234/LightGCN-PyTorch, Procedure.Test):
  per user batch, Python lists of positive items build the exclusion index, ``torch.topk``, then per-user
  Python/numpy ``getLabel`` / ``RecallPrecision_ATk`` / ``NDCGatK_r``. Same user batch size as graphnet.
Both compute the LightGCN propagation once per call (``model(graph)``), so the graph part is common.
Both sides' per-user indexes are built once, untimed: graphnet's CSR of training items and test keys in
``task.setup``, the reference's ``allPos`` / ``testDict`` Python dicts before timing (the reference code
builds them at dataset load too).

Throughput = ranked queries per second (KG: 2 x test triples; recsys: test users). Contenders run
round-robin in one process after one warm-up call each; the table reports medians and the ratio.

Run (about 5-10 minutes on 2 loaded cores; the Markdown goes to --out):
    DGLBACKEND=pytorch GRAPHNET_MIRROR=/work/shared/data GRAPHNET_DATA=/tmp/graphnet-data \
        .venv/bin/python experiments/benchmarks/eval_bench.py --out experiments/benchmarks/RESULTS-eval.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402

TARGET = 2.0  # graphnet throughput / PyKEEN throughput (issue 6)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="Markdown file to write the results to")
    p.add_argument("--kg", default="nations,fb15k-237", help="KG datasets")
    p.add_argument("--emb-dim", type=int, default=200, help="DistMult width (graphnet's kg default)")
    p.add_argument("--kg-batch", type=int, default=256, help="queries per batch (graphnet's default)")
    p.add_argument("--rec", default="gowalla", help="recsys dataset ('' to skip)")
    p.add_argument("--rec-batch", type=int, default=1024, help="users per batch (graphnet's default)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def kg_contenders(name: str, emb_dim: int, batch: int, seed: int):
    import torch
    from pykeen.evaluation import RankBasedEvaluator
    from pykeen.models import DistMult
    from pykeen.triples import CoreTriplesFactory

    from graphnet import data
    from graphnet.tasks.kg_completion import KGCompletion

    graph = data.load(name)
    task = KGCompletion(emb_dim=emb_dim, eval_batch_size=batch)
    model, g = task.setup(graph, "distmult", {}, seed)
    model.eval()
    sp = g.edge_splits
    tf = CoreTriplesFactory.create(
        sp["train"], num_entities=task.num_entities, num_relations=task.num_relations
    )
    pk = DistMult(triples_factory=tf, embedding_dim=emb_dim, random_seed=seed)
    with torch.no_grad():  # same parameters, so both must produce the same ranks
        pk.entity_representations[0]._embeddings.weight.copy_(model.encoder.model.entity)
        pk.relation_representations[0]._embeddings.weight.copy_(model.scorer.rel)
    pk.eval()
    evaluator = RankBasedEvaluator(filtered=True)
    out: dict[str, float] = {}

    def ours():
        with torch.no_grad():
            out["graphnet"] = task.evaluate(model, g, "test")["mrr"]

    def pykeen():
        res = evaluator.evaluate(
            pk,
            sp["test"],
            batch_size=batch,
            use_tqdm=False,
            additional_filter_triples=[sp["train"], sp["val"]],
        )
        out["PyKEEN"] = float(res.get_metric("both.realistic.inverse_harmonic_mean_rank"))

    noop = lambda: None  # noqa: E731
    stats = {
        "entities": task.num_entities,
        "relations": task.num_relations,
        "test": len(sp["test"]),
        "queries": 2 * len(sp["test"]),
    }
    return (
        [
            common.Contender("graphnet KGCompletion.evaluate", ours, noop),
            common.Contender(f"PyKEEN RankBasedEvaluator (pykeen {_pykeen_version()})", pykeen, noop),
        ],
        out,
        stats,
    )


def _pykeen_version() -> str:
    from importlib.metadata import version

    return version("pykeen")


def reference_rec_dicts(train, test) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """The reference code's per-user item lists (built once at dataset load there, as here: untimed)."""
    train_pos: dict[int, list[int]] = {}
    for u, i in train.tolist():
        train_pos.setdefault(u, []).append(i)
    test_dict: dict[int, list[int]] = {}
    for u, i in test.tolist():
        test_dict.setdefault(u, []).append(i)
    return train_pos, test_dict


def reference_rec_eval(
    H, num_users: int, train_pos: dict, test_dict: dict, batch: int, k: int = 20
) -> dict[str, float]:
    """LightGCN reference code's Procedure.Test (single process), written as there: Python lists per user."""
    import numpy as np
    import torch

    users = list(test_dict)
    users_emb, items_emb = H[:num_users], H[num_users:]
    recall = ndcg = 0.0
    for start in range(0, len(users), batch):
        batch_users = users[start : start + batch]
        all_pos = [train_pos.get(u, []) for u in batch_users]
        ground_true = [test_dict[u] for u in batch_users]
        rating = users_emb[torch.tensor(batch_users)] @ items_emb.T  # (B, I)
        exclude_index, exclude_items = [], []
        for range_i, items in enumerate(all_pos):
            exclude_index.extend([range_i] * len(items))
            exclude_items.extend(items)
        rating[exclude_index, exclude_items] = -(1 << 10)
        _, rating_k = torch.topk(rating, k=k)
        sorted_items = rating_k.numpy()
        r = []  # getLabel
        for i in range(len(ground_true)):
            gt, pred = ground_true[i], sorted_items[i]
            r.append(np.array(list(map(lambda x: x in gt, pred))).astype("float"))
        r = np.array(r)
        right_pred = r[:, :k].sum(1)  # RecallPrecision_ATk
        recall += np.sum(right_pred / np.array([len(gt) for gt in ground_true]))
        test_matrix = np.zeros((len(r), k))  # NDCGatK_r
        for i, items in enumerate(ground_true):
            test_matrix[i, : min(len(items), k)] = 1
        idcg = np.sum(test_matrix * 1.0 / np.log2(np.arange(2, k + 2)), axis=1)
        dcg = np.sum(r * (1.0 / np.log2(np.arange(2, k + 2))), axis=1)
        idcg[idcg == 0.0] = 1.0
        ndcg += np.sum(dcg / idcg)
    return {"recall@20": recall / len(users), "ndcg@20": ndcg / len(users)}


def rec_contenders(name: str, batch: int, seed: int):
    import torch

    from graphnet import data
    from graphnet.tasks.recommendation import Recommendation

    graph = data.load(name)
    task = Recommendation(ks=[20], emb_dim=64, eval_batch_size=batch)
    model, g = task.setup(graph, "lightgcn", {"num_layers": 3}, seed)
    model.eval()
    sp = g.edge_splits
    train_pos, test_dict = reference_rec_dicts(sp["train"], sp["test"])  # once, like graphnet's task.setup
    out: dict[str, tuple[float, float]] = {}

    def ours():
        with torch.no_grad():
            m = task.evaluate(model, g, "test")
        out["graphnet"] = (m["recall@20"], m["ndcg@20"])

    def ref():
        with torch.no_grad():
            m = reference_rec_eval(model(g), task.num_users, train_pos, test_dict, batch)
        out["reference"] = (m["recall@20"], m["ndcg@20"])

    noop = lambda: None  # noqa: E731
    stats = {
        "users": task.num_users,
        "items": task.num_items,
        "train": len(sp["train"]),
        "queries": int(torch.unique(sp["test"][:, 0]).numel()),
    }
    return (
        [
            common.Contender("graphnet Recommendation.evaluate", ours, noop),
            common.Contender("LightGCN reference-code loop (Procedure.Test style)", ref, noop),
        ],
        out,
        stats,
    )


def table(contenders, queries: int) -> list[str]:
    base = contenders[0]
    lines = [
        "| contender | median ms/eval | p25 | p75 | queries/s | time / graphnet's |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in contenders:
        q25, q75 = c.quartiles_ms()
        med = c.median_ms()
        lines.append(
            f"| {c.name} | {med:,.1f} | {q25:,.1f} | {q75:,.1f} | {queries / med * 1e3:,.0f} | "
            f"{c.median_ms() / base.median_ms():.2f}x |"
        )
    return lines


def main() -> None:
    args = parse_args()
    common.setup_threads(args.threads)
    load_before = common.uptime()
    bandwidth = common.measure_bandwidth()
    body: list[str] = []
    for name in [s for s in args.kg.split(",") if s]:
        cs, out, st = kg_contenders(name, args.emb_dim, args.kg_batch, args.seed)
        common.run_interleaved(cs, warmup=1, rounds=args.rounds)
        ratio = cs[1].median_ms() / cs[0].median_ms()
        body += [
            f"## KG filtered ranking: {name}, DistMult d={args.emb_dim}",
            "",
            f"{st['entities']} entities, {st['relations']} relations, {st['test']} test triples "
            f"-> {st['queries']} ranked queries (head + tail), filtered by train+val+test, realistic ties, "
            f"batch {args.kg_batch} queries. `{common.uptime()}`",
            "",
        ]
        body += table(cs, st["queries"])
        body += [
            "",
            f"MRR: graphnet {out['graphnet']:.6f}, PyKEEN {out['PyKEEN']:.6f} (same weights; "
            f"|diff| = {abs(out['graphnet'] - out['PyKEEN']):.1e}).",
            f"Throughput ratio graphnet / PyKEEN = **{ratio:.2f}x** (target >= {TARGET}x: "
            f"{'met' if ratio >= TARGET else 'NOT met'}).",
            "",
        ]
    if args.rec:
        cs, out, st = rec_contenders(args.rec, args.rec_batch, args.seed)
        common.run_interleaved(cs, warmup=1, rounds=args.rounds)
        ratio = cs[1].median_ms() / cs[0].median_ms()
        body += [
            f"## Recsys full-sort evaluation: {args.rec}, LightGCN 3 layers d=64",
            "",
            f"{st['users']} users, {st['items']} items, {st['train']} training interactions, "
            f"{st['queries']} test users ranked over all items (training items excluded), "
            f"batch {args.rec_batch} users. Both sides' per-user indexes (graphnet's CSR in task.setup, "
            "the reference's train/test dicts of Python lists) are built once, untimed, as in the reference "
            f"code's dataset load. `{common.uptime()}`",
            "",
        ]
        body += table(cs, st["queries"])
        g, r = out["graphnet"], out["reference"]
        body += [
            "",
            f"recall@20 / ndcg@20: graphnet {g[0]:.6f} / {g[1]:.6f}, reference {r[0]:.6f} / {r[1]:.6f} "
            f"(|diff| = {abs(g[0] - r[0]):.1e} / {abs(g[1] - r[1]):.1e}; random-init embeddings, so the "
            "values only check that both rank the same way).",
            f"Speed-up graphnet vs reference loop = **{ratio:.2f}x**.",
            "",
        ]
    head = ["# Evaluation throughput (issue 6, 4d)", ""]
    head += common.machine_header(args.threads, bandwidth, load_before, common.uptime())
    head += [
        f"- rounds: {args.rounds} timed calls per contender after 1 warm-up, round-robin in one process",
        "- this machine is shared with other jobs at times (load averages are recorded above and per table): "
        "compare ratios within a table, not absolute times",
        "",
    ]
    common.write_report(args.out, "\n".join(head + body) + "\n")


if __name__ == "__main__":
    main()
