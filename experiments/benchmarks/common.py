"""Shared pieces of the layer benchmarks: environment header, bandwidth, random graphs, interleaved timing.

Import this only after the thread environment variables are set (``setup_threads`` does it before torch).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def setup_threads(threads: int) -> None:
    """Pin every thread pool (OpenMP, MKL, torch, DGL) to ``threads``; call before importing torch."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("DGLBACKEND", "pytorch")
    os.environ.setdefault("OUTDATED_IGNORE", "1")  # ogb/outdated would try the network at import
    import torch

    torch.set_num_threads(threads)
    import dgl

    dgl.utils.set_num_threads(threads)


def measure_bandwidth(n_bytes: int = 1 << 28, reps: int = 7) -> float:
    """Memory bandwidth in bytes/s: best of ``reps`` single-thread numpy copies, counting read + write."""
    import numpy as np

    a = np.ones(n_bytes // 8)
    b = np.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(b, a)
        best = min(best, time.perf_counter() - t0)
    return 2 * a.nbytes / best


def write_report(path: str, text: str) -> None:
    """Write a results table atomically (``graphnet.io.atomic_write_text``: a killed run never leaves half a
    table over the committed one), creating its folder, and say where it went."""
    from pathlib import Path

    from graphnet.io import atomic_write_text

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)
    print(f"wrote {path}")


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: {:.2f}, {:.2f}, {:.2f}".format(*os.getloadavg())


def machine_header(threads: int, bandwidth: float, load_before: str, load_after: str) -> list[str]:
    import dgl
    import numpy
    import torch

    try:
        import torch_geometric

        pyg = torch_geometric.__version__
    except ImportError:
        pyg = "not installed"
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [
        f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}",
        f"- machine: {cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}",
        f"- versions: Python {platform.python_version()}, torch {torch.__version__}, dgl {dgl.__version__}, "
        f"torch_geometric {pyg}, numpy {numpy.__version__}",
        f"- threads: {threads} (torch, MKL, OpenMP, DGL); float32",
        f"- memory bandwidth: {bandwidth / 1e9:.2f} GB/s (numpy 1-thread copy, read + write bytes)",
        f"- load before: `{load_before}`",
        f"- load after: `{load_after}`",
        f"- command: `{' '.join([os.path.basename(sys.executable)] + sys.argv)}`",
    ]


def random_graph(num_nodes: int, num_edges: int, seed: int):
    """Uniform random directed edges without duplicates or self-loops; weights U(0, 1).

    Returns (src, dst, weight) as torch tensors, about ``num_edges`` edges (duplicates removed).
    """
    import torch

    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, num_nodes, (num_edges,), generator=g)
    dst = torch.randint(0, num_nodes, (num_edges,), generator=g)
    keep = src != dst
    key = torch.unique(dst[keep] * num_nodes + src[keep])
    # Shuffle so that no contender gets a pre-sorted edge list for free.
    key = key[torch.randperm(key.numel(), generator=g)]
    src, dst = key % num_nodes, key // num_nodes
    return src, dst, torch.rand(src.numel(), generator=g)


@dataclass
class Contender:
    """One implementation: ``step()`` runs forward + backward; ``reset()`` clears gradients (not timed)."""

    name: str
    step: Callable[[], None]
    reset: Callable[[], None]
    note: str = ""
    times: list[float] = field(default_factory=list)

    def min_ms(self) -> float:
        return 1e3 * min(self.times)

    def median_ms(self) -> float:
        return 1e3 * statistics.median(self.times)

    def quartiles_ms(self) -> tuple[float, float]:
        if len(self.times) < 2:
            return 1e3 * self.times[0], 1e3 * self.times[0]
        q = statistics.quantiles(self.times, n=4, method="inclusive")
        return 1e3 * q[0], 1e3 * q[2]


def run_interleaved(contenders: list[Contender], warmup: int, rounds: int) -> None:
    """Warm up each contender, then time one step of each per round, round-robin, in one process."""
    import gc

    for c in contenders:
        for _ in range(warmup):
            c.reset()
            c.step()
    for _ in range(rounds):
        for c in contenders:
            c.reset()
            gc.collect()
            t0 = time.perf_counter()
            c.step()
            c.times.append(time.perf_counter() - t0)


def rel_diff(a, b) -> float:
    """max |a - b| / max |b| (0 when both are empty)."""
    if b.numel() == 0:
        return 0.0
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp_min(1e-30))
