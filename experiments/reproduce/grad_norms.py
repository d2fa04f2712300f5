"""Per-component gradient norms of a link-prediction config, as the OGB ddi example would clip them.

The OGB example (snap-stanford/ogb examples/linkproppred/ddi/gnn.py) calls ``clip_grad_norm_(., 1.0)``
separately on the input embedding, the GNN and the link predictor before every Adam step; graphnet's
ogbl-ddi configs do not clip. This script measures whether that clipping would ever act: it trains with
graphnet's own Trainer and records, before every optimizer step, the L2 norm of each component's gradient

    ||g_c|| = sqrt(sum over parameters p of component c of sum(p.grad ** 2)),
    c in {embedding: model.encoder.emb, gnn: model.encoder.model, predictor: model.decoder}.

Clipping to norm 1 changes a step only where ||g_c|| > 1. With ``--checkpoint`` it resumes from a copy of a
checkpoint written by a run in progress (``seed-N/checkpoint.pt``, written every ``train.checkpoint_every``
epochs and removed when the run finishes), so the steps measured are the ones that run takes next.

Usage (from the repository root)::

    DGLBACKEND=pytorch PYTHONPATH=. python experiments/reproduce/grad_norms.py \\
        experiments/reproduce/ogbl-ddi_gcn.toml --seed 6 --epochs 1 [--checkpoint COPY_OF_checkpoint.pt]

Prints one line per epoch: the mean training loss (to compare with the run's results.json history) and, for
each component, the largest and the mean norm over the epoch's steps and how many steps exceed
``--max-norm`` (default 1.0, the example's).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import shutil
import tempfile
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from graphnet.config import load_config
from graphnet.run import build_seed, load_graph
from graphnet.train import Trainer


def component_norms(model: torch.nn.Module) -> dict[str, float]:
    """L2 norm of the current gradient of each component of a LinkModel (absent grads count as 0)."""
    parts = {"embedding": model.encoder.emb, "gnn": model.encoder.model, "predictor": model.decoder}
    out = {}
    for name, module in parts.items():
        sq = sum(float(p.grad.double().pow(2).sum()) for p in module.parameters() if p.grad is not None) \
            if module is not None else 0.0
        out[name] = math.sqrt(sq)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=1, help="epochs to train (after the checkpoint's)")
    ap.add_argument("--checkpoint", type=Path, help="a copy of seed-N/checkpoint.pt of the same config/seed")
    ap.add_argument("--max-norm", type=float, default=1.0)
    args = ap.parse_args(argv)

    cfg = load_config(args.config)
    graph = load_graph(cfg)
    task, model, prepared = build_seed(cfg, graph, args.seed)  # the run's initial weights for this seed

    steps: list[dict[str, float]] = []
    handle = register_optimizer_step_pre_hook(lambda opt, a, kw: steps.append(component_norms(model)))
    with tempfile.TemporaryDirectory() as tmp:
        start = 0
        ck = Path(tmp) / "checkpoint.pt"
        if args.checkpoint is not None:
            shutil.copyfile(args.checkpoint, ck)  # the Trainer rewrites its checkpoint: never the run's own
            start = torch.load(ck, weights_only=True)["state"]["epoch"]
        # evaluate only after the last epoch (the run's evaluations fall on its epochs 5, 10, ...: a resumed
        # measurement of epochs 51-52 or 131 crosses none, so it takes exactly the run's steps)
        train = dataclasses.replace(cfg.train, epochs=start + args.epochs, eval_every=start + args.epochs,
                                    checkpoint_every=0)
        trainer = Trainer(train, seed=args.seed, checkpoint=ck, progress=False)
        out = trainer.fit(model, task, prepared, resume=args.checkpoint is not None)
    handle.remove()
    n = len(steps) // max(1, out["epochs_run"] - start)  # every epoch has the same number of batches
    per_epoch = [steps[e * n:(e + 1) * n] for e in range(out["epochs_run"] - start)]
    print(f"{args.config} seed {args.seed}: epochs {start + 1}-{out['epochs_run']} (1-based), {n} steps each;"
          f" norm per component: max / mean / steps above {args.max_norm}")
    for e, rows in enumerate(per_epoch):
        cells = []
        for c in ("embedding", "gnn", "predictor"):
            v = [r[c] for r in rows]
            cells.append(f"{c} {max(v):.3f} / {sum(v) / len(v):.3f} / {sum(x > args.max_norm for x in v)}")
        loss = out["history"][start + e]["loss"]  # = the run's own history when resumed from its checkpoint
        print(f"epoch {start + e + 1:3d}: loss {loss:.6f}; " + "; ".join(cells))


if __name__ == "__main__":
    main()
