"""Independent check of the Planetoid MLP rows (issue 5): no graphnet code at all.

PyG's ``Planetoid`` loader (its own parser of the raw files, copied from the offline mirror) and a plain
PyTorch loop with the settings of ``experiments/reproduce/{cora,citeseer}_mlp.toml``: hidden 16, dropout 0.5
on the input and hidden layer, Adam lr 0.01, L2 5e-4, 200 epochs, row-normalized features; test accuracy
at the best val-accuracy epoch; seeds 0-9. If graphnet leaked labels, its MLP would beat this one.

    GRAPHNET_MIRROR=../shared/data .venv/bin/python experiments/reproduce/mlp_crosscheck.py cora
"""

import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch_geometric.datasets import Planetoid

torch.set_num_threads(1)
name = sys.argv[1]
pyg_name = {"cora": "Cora", "citeseer": "CiteSeer"}[name]
root = Path(tempfile.mkdtemp())
(root / pyg_name / "raw").mkdir(parents=True)
mirror = Path(os.environ.get("GRAPHNET_MIRROR", Path(__file__).resolve().parents[3] / "shared" / "data"))
for f in (mirror / name).iterdir():
    shutil.copy(f, root / pyg_name / "raw" / f.name)
d = Planetoid(str(root), pyg_name, transform=T.NormalizeFeatures())[0]
accs = []
for seed in range(10):
    torch.manual_seed(seed)
    mlp = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Linear(d.num_features, 16), torch.nn.ReLU(),
                              torch.nn.Dropout(0.5), torch.nn.Linear(16, int(d.y.max()) + 1))
    opt = torch.optim.Adam(mlp.parameters(), lr=0.01, weight_decay=5e-4)
    best_val, test_at_best = -1, None
    for _ in range(200):
        mlp.train()
        opt.zero_grad()
        F.cross_entropy(mlp(d.x)[d.train_mask], d.y[d.train_mask]).backward()
        opt.step()
        mlp.eval()
        with torch.no_grad():
            pred = mlp(d.x).argmax(1)
        val = (pred[d.val_mask] == d.y[d.val_mask]).float().mean().item()
        if val > best_val:
            best_val, test_at_best = val, (pred[d.test_mask] == d.y[d.test_mask]).float().mean().item()
    accs.append(test_at_best)
print(name, f"{100 * statistics.mean(accs):.2f} ± {100 * statistics.stdev(accs):.2f}",
      [round(a, 3) for a in accs])
