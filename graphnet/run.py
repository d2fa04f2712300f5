"""The runner: the one place that wires config -> data -> task/model -> Trainer -> result files.

Layout of one run (``run(cfg)``; every file written atomically, the directory created with
``mkdir(exist_ok=False)`` so concurrent runs never share one)::

    <out>/<name>/<run-id>/          run-id = UTC start time + 8 random hex digits
        config.toml                 the validated config; --resume reads it. [train] has every key
                                    (TrainConfig < MODEL_DEFAULTS[model] < file and --set < --device);
                                    [data], [model], [task] hold only the keys given (their defaults,
                                    the card's [options] and the constructors', are not written)
        seed-<s>/results.json       one per seed s = seed, seed+1, ...: metrics at the best epoch,
                                    history, timings, versions, git commit, device, config.toml's config
        seed-<s>/checkpoint.pt      while training (deleted once results.json exists)
        summary.json                per metric: mean, unbiased std (null for one seed), values, n
        results.md, results.csv     the same as a table
        curves.png                  training loss and monitored metric per epoch, one line per seed
        .lock                       flock held by the process running it (a second --resume is refused)

A config with a [sweep] gets one parent directory holding its config.toml (the config as written plus
seed, seeds, train.device, and the [sweep]), one ``point-<i>/`` per grid point laid out as above, and
summary.json/results.md/results.csv with one row per point (mean ± std of every metric).

Data-parallel runs (``graphnet run --nproc N`` -> ``run_distributed``, or ``torchrun -m graphnet run``):
every process executes ``run`` with the same config; rank 0 creates the run directory and broadcasts its
path, loads the data first (so a download happens once), and is the only process that writes files.
``run_seed`` trains one seed into one directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import functools
import json
import logging
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from graphnet import __version__, distributed
from graphnet.config import (
    ExperimentConfig,
    check_seed_range,
    dump_toml,
    expand_sweep,
    flatten,
    load_config,
    registry,
)
from graphnet.errors import ConfigError, DataError, GraphnetError
from graphnet.io import atomic_write_json, atomic_write_text, make_run_dir, remove_temporaries, run_lock
from graphnet.report import collect, plot_curves, summarize, table_rows, write_tables

log = logging.getLogger(__name__)
DEFAULT_OUT = "experiments/runs"
RESULT_KEYS = {"best_epoch", "device", "history", "metrics", "monitor", "seed", "times"}  # read by summaries


def run(cfg: ExperimentConfig | None, out: str | Path = DEFAULT_OUT, seeds: int | None = None,
        device: str | None = None, resume: str | Path | None = None,
        progress: bool | None = None) -> dict[str, Any]:
    """Run every seed (and sweep point) of ``cfg``; returns the summary written to summary.json.

    Args:
        cfg: the experiment; None with ``resume`` = the run's own config.toml.
        out: parent of ``<name>/<run-id>/``.
        seeds: number of seeds (overrides ``cfg.seeds``); seeds are cfg.seed, cfg.seed + 1, ...
        device: overrides ``cfg.train.device``.
        resume: an existing run directory: seeds with a results.json are kept, the others continue from
            their checkpoint (or start). ``cfg``, if given, must equal the stored config (device aside).
        progress: tqdm bars (None: only on a terminal).
    """
    git_state()  # cached now: results.json must name the code this process started with, not a later HEAD
    if seeds is not None:
        if cfg is None or seeds < 1:
            raise ConfigError(f"--seeds: expected N >= 1 with a config, got {seeds}")
        check_seed_range(cfg.seed, seeds, "--seeds")  # before a run directory exists
        cfg = dataclasses.replace(cfg, seeds=seeds)
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.toml").is_file():
            raise ConfigError(f"--resume {run_dir}: not a run directory (no config.toml in it)")
        stored = load_config(run_dir / "config.toml")
        if cfg is not None:
            _check_same(cfg, stored, run_dir)
        cfg = stored
    elif cfg is None:
        raise ConfigError("run: give a config or a run directory to resume")
    if device is not None:
        if "train.device" in cfg.sweep:
            raise ConfigError(f"--device {device}: the config sweeps train.device; drop --device")
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=device))
    from graphnet.train import resolve_device

    resolve_device(cfg.train.device)  # a missing GPU is a user mistake: fail before creating anything
    with contextlib.ExitStack() as held:
        if resume is not None and distributed.is_main():
            held.enter_context(run_lock(run_dir))  # refuses a run directory another process is running
            remove_temporaries(run_dir)  # a killed writer's leftovers: never read, but clutter
        if resume is None:
            run_dir = None
            if distributed.is_main():
                run_dir = make_run_dir(Path(out) / cfg.name)
                held.enter_context(run_lock(run_dir))
                atomic_write_text(run_dir / "config.toml", dump_toml(cfg.to_dict()))
            run_dir = distributed.broadcast_object(run_dir)  # one directory for all processes
        log.info("run directory: %s", run_dir)
        try:
            if cfg.sweep:
                return _run_sweep(cfg, run_dir, progress, resume is not None)
            return _run_point(cfg, run_dir, progress, resume is not None)
        except GraphnetError:
            # A user mistake found before any seed got far (bad model key, missing file): a directory with
            # only config.toml in it would look like a run and resume into the same error.
            if resume is None and distributed.is_main() and distributed.world_size() == 1:
                _remove_if_nothing_written(run_dir)
            raise


def _remove_if_nothing_written(run_dir: Path) -> None:
    """Delete ``run_dir`` if no seed wrote a checkpoint or results (config files, .lock, empty dirs only)."""
    if any(p.name in ("results.json", "checkpoint.pt") for p in run_dir.rglob("*")):
        return
    shutil.rmtree(run_dir, ignore_errors=True)
    log.info("removed %s: the run failed before writing any result", run_dir)


def _check_same(cfg: ExperimentConfig, stored: ExperimentConfig, run_dir: Path) -> None:
    a, b = flatten(cfg.to_dict()), flatten(stored.to_dict())
    diff = sorted(k for k in set(a) | set(b) if k != "train.device" and a.get(k) != b.get(k))
    if diff:
        raise ConfigError(f"--resume {run_dir}: the config differs from the run's config.toml in "
                          f"{', '.join(diff)}; resume with the run directory alone")


def _run_sweep(cfg: ExperimentConfig, run_dir: Path, progress: bool | None, resume: bool) -> dict[str, Any]:
    points = []
    for i, (settings, point_cfg) in enumerate(expand_sweep(cfg)):
        point_dir = run_dir / f"point-{i:03d}"
        point_dir.mkdir(exist_ok=True)
        if distributed.is_main() and not (point_dir / "config.toml").exists():
            atomic_write_text(point_dir / "config.toml", dump_toml(point_cfg.to_dict()))
        log.info("sweep point %d: %s", i, settings)
        summary = _run_point(point_cfg, point_dir, progress, resume)
        points.append({"index": i, "settings": settings, "dir": point_dir.name,
                       "metrics": summary["metrics"]})
    keys = sorted({k for p in points for k in p["metrics"]})
    setting_keys = sorted(cfg.sweep)
    rows = [["point", *setting_keys, *keys]]
    for p in points:
        cells = [_mean_std(p["metrics"].get(k)) for k in keys]
        rows.append([p["dir"], *(json.dumps(p["settings"][k]) for k in setting_keys), *cells])
    summary = {"name": cfg.name, "run_dir": str(run_dir), "sweep": cfg.sweep, "points": points}
    if distributed.is_main():
        atomic_write_json(run_dir / "summary.json", summary)
        write_tables(rows, run_dir, f"{cfg.name}: sweep over {', '.join(setting_keys)}")
    return summary


def _mean_std(s: dict[str, Any] | None) -> str:
    if not s or s["mean"] is None:
        return ""
    return f"{s['mean']:.4f}" + (f" ± {s['std']:.4f}" if s["std"] is not None else "")


def _run_point(cfg: ExperimentConfig, run_dir: Path, progress: bool | None, resume: bool) -> dict[str, Any]:
    graph, results = None, []
    for seed in range(cfg.seed, cfg.seed + cfg.seeds):
        seed_dir = run_dir / f"seed-{seed}"
        if resume and (seed_dir / "results.json").is_file():
            results.append(_read_results(seed_dir / "results.json", seed))
            continue
        seed_dir.mkdir(exist_ok=True)
        load_s = 0.0  # the seeds after the first reuse the loaded graph: no load time of their own
        if graph is None:
            t0 = time.perf_counter()
            graph = _load_main_first(cfg)
            load_s = time.perf_counter() - t0
        result = run_seed(cfg, graph, seed, seed_dir, progress=progress, resume=resume)
        result["times"]["load_s"] = load_s
        if distributed.is_main():
            atomic_write_json(seed_dir / "results.json", result)
            (seed_dir / "checkpoint.pt").unlink(missing_ok=True)
        log.info("seed %d: %s", seed, ", ".join(f"{k}={v:.4f}" for k, v in sorted(result["metrics"].items())))
        results.append(result)

    metrics = summarize(collect(results))
    times = summarize({k: [r["times"].get(k) for r in results] for k in ("train_s", "eval_s", "total_s")})
    summary = {"name": cfg.name, "run_dir": str(run_dir), "seeds": [r["seed"] for r in results],
               "monitor": results[0]["monitor"], "best_epoch": [r["best_epoch"] for r in results],
               "device": results[0]["device"], "metrics": metrics, "times": times}
    if distributed.is_main():
        atomic_write_json(run_dir / "summary.json", summary)
        title = (f"{cfg.name}: {cfg.model.name} on {cfg.data.name} ({cfg.task.name}), {len(results)} "
                 f"seed(s), best epoch by {summary['monitor']}"
                 + (" (selected on the test split: optimistic)" if summary["monitor"].startswith("test_")
                    else ""))
        write_tables(table_rows({**metrics, **{f"time_{k}": v for k, v in times.items()}}), run_dir, title)
        plot_curves(results, run_dir / "curves.png", summary["monitor"])
    distributed.barrier()  # no process returns (and exits) while rank 0 still writes
    return summary


def _read_results(path: Path, seed: int) -> dict[str, Any]:
    """A finished seed's results.json, kept by --resume; DataError naming the file if it is damaged."""
    hint = f"delete it to re-run seed {seed}"
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"--resume: {path} is not valid JSON ({e}); {hint}") from None
    missing = sorted(RESULT_KEYS - set(result)) if isinstance(result, dict) else ["(not a JSON object)"]
    if missing:
        raise DataError(f"--resume: {path} lacks {', '.join(missing)}; {hint}")
    return result


def _load_main_first(cfg: ExperimentConfig) -> Any:
    """``load_graph`` on rank 0 first, then on the other ranks, which then read the verified cache."""
    if not distributed.is_main():
        distributed.barrier()
    graph = load_graph(cfg)
    if distributed.is_main():
        distributed.barrier()
    return graph


def run_distributed(nproc: int, cfg: ExperimentConfig | None, **kwargs: Any) -> dict[str, Any]:
    """``run(cfg, **kwargs)`` in ``nproc`` local processes (gloo on CPU, nccl on GPU); rank 0's summary.

    Each process trains on its shard of every epoch's training items; see graphnet.distributed.
    """
    if nproc == 1:
        return run(cfg, **kwargs)
    return distributed.launch(_run_kwargs, nproc, cfg, kwargs)


def _run_kwargs(cfg: ExperimentConfig | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    return run(cfg, **kwargs)  # module-level, so spawned processes can unpickle it


def load_graph(cfg: ExperimentConfig) -> Any:
    """``graphnet.data.load_config(cfg.data)``: the dataset named in [data], with its options."""
    from graphnet import data

    return data.load_config(cfg.data.to_dict())


def run_seed(cfg: ExperimentConfig, graph: Any, seed: int, seed_dir: Path, progress: bool | None = None,
             resume: bool = False) -> dict[str, Any]:
    """Seed, build task and model, train; returns the results.json content (not written here)."""
    from graphnet.train import Trainer

    started, t0 = _now(), time.perf_counter()
    task, model, prepared = build_seed(cfg, graph, seed)
    setup_s = time.perf_counter() - t0
    trainer = Trainer(cfg.train, seed=seed, checkpoint=seed_dir / "checkpoint.pt", progress=progress)
    out = trainer.fit(model, task, prepared, resume=resume)
    times = out.pop("times")
    # total = this process's setup + the fit's wall time, which after --resume includes the earlier work
    times = {**times, "setup_s": setup_s, "total_s": setup_s + times.pop("wall_s")}
    return {**out, "seed": seed, "config": cfg.to_dict(), "times": times, "started_at": started,
            "finished_at": _now(), "num_parameters": sum(p.numel() for p in model.parameters()),
            "versions": versions(), "git_commit": git_state()[0], "git_dirty": git_state()[1]}


def build_seed(cfg: ExperimentConfig, graph: Any, seed: int) -> tuple[Any, Any, Any]:
    """Seed everything, then build (task, model, prepared graph) exactly as ``run_seed`` does for ``seed``
    (the same initial weights), for scripts that inspect a run's model without training it the same way."""
    from graphnet.train import seed_everything

    seed_everything(seed)
    task = registry("task")[cfg.task.name](**cfg.task.kwargs)
    model, prepared = task.setup(graph, cfg.model.name, dict(cfg.model.kwargs), seed)
    return task, model, prepared


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@functools.cache
def versions() -> dict[str, str | None]:
    """Versions of graphnet, torch, dgl, numpy and python (read from package metadata, no imports)."""
    import platform

    def ver(pkg: str) -> str | None:
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    return {"graphnet": __version__, "torch": ver("torch"), "dgl": ver("dgl"), "numpy": ver("numpy"),
            "python": platform.python_version()}


@functools.cache
def git_state() -> tuple[str | None, bool | None]:
    """(HEAD commit, any uncommitted changes) of graphnet's git checkout; (None, None) outside git.

    Cached: the first call (at the start of ``run``) fixes the answer for the process, so a commit made
    while a long run trains is not attributed to it.
    """
    here = Path(__file__).resolve().parent
    try:
        git = ["git", "-C", str(here)]
        head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None, None
    return head or None, bool(dirty)
