"""Command line: ``graphnet run|list|data|demo`` (also ``python -m graphnet``).

    graphnet run CONFIG.toml [--set section.key=value ...] [--seeds N] [--out DIR] [--device D]
                             [--resume RUN_DIR] [--nproc N] [--quiet] [--debug]
    graphnet list models|tasks|datasets
    graphnet data list
    graphnet data info NAME [--set option=value ...] [--json]
    graphnet demo [--seeds N] [--out DIR]

Exit codes: 0 success; 2 a user mistake (any GraphnetError: config, data, graph; or bad arguments),
reported as one line on stderr; 1 an unexpected error, one line plus a hint (``--debug`` re-raises it
with the traceback); 130 interrupted; 141 stdout closed by its reader (``| head``), silently. Only this
module prints. torch and dgl are imported only by the commands that train or load data, so ``--help`` and
``list`` answer at once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import select
import sys
from typing import Any

from graphnet import __version__
from graphnet.errors import ConfigError, GraphnetError

# The demo: a 2-layer GCN on Zachary's karate club using the networkx edge weights (interaction
# counts), node classification of the two factions, 5 seeds. experiments/configs/karate_demo.toml is
# the same config (a test keeps them equal).
DEMO_CONFIG = """\
# graphnet demo: a 2-layer GCN (hidden 16, dropout 0.5) on Zachary's karate club, edges weighted by the
# networkx interaction counts (A.val, normalised by weighted degrees), classifying the two factions from
# one-hot node ids on the loader's seeded stratified split; the best epoch is picked by validation loss.
name = "karate_demo"
seeds = 5

[data]
name = "karate"

[model]
name = "gcn"

[task]
name = "node"

[train]
epochs = 200
monitor = "val_loss"
"""


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true", help="no progress bars or info logs")
    common.add_argument("--debug", action="store_true", help="debug logs; show tracebacks of errors")

    p = argparse.ArgumentParser(prog="graphnet", description="Edge-weighted GNNs on dgl.sparse: run "
                                "experiments from TOML configs.")
    p.add_argument("--version", action="version", version=f"graphnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="{run,list,data,demo}")

    r = sub.add_parser("run", parents=[common], help="run an experiment config (all seeds / sweep points)")
    r.add_argument("config", nargs="?", help="TOML config (optional with --resume)")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key (value parsed as TOML, else a string); repeatable")
    r.add_argument("--seeds", type=int, help="number of seeds (default: the config's `seeds`, 1)")
    r.add_argument("--out", default="experiments/runs", help="output root (default: %(default)s)")
    r.add_argument("--device", help="auto, cpu, cuda or cuda:<i> (overrides train.device)")
    r.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run in its directory")
    r.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel training in N local processes (gloo on CPU, nccl on GPU; each "
                        "takes a shard of the training items); or start under torchrun instead")
    r.set_defaults(func=cmd_run)

    ls = sub.add_parser("list", parents=[common], help="list models, tasks or datasets")
    ls.add_argument("what", choices=("models", "tasks", "datasets"))
    ls.set_defaults(func=cmd_list)

    d = sub.add_parser("data", parents=[common], help="dataset catalog: list, info")
    dsub = d.add_subparsers(dest="data_command", required=True, metavar="{list,info}")
    dl = dsub.add_parser("list", parents=[common], help="datasets in the catalog")
    dl.set_defaults(func=cmd_data_list)
    di = dsub.add_parser("info", parents=[common], help="load a dataset and print its statistics")
    di.add_argument("name")
    di.add_argument("--set", dest="overrides", action="append", default=[], metavar="OPTION=VALUE",
                    help="loader option (see the dataset card's [options]); repeatable")
    di.add_argument("--json", action="store_true", help="print JSON")
    di.set_defaults(func=cmd_data_info)

    demo = sub.add_parser("demo", parents=[common],
                          help="train a weighted GCN on the karate club (a few seeds)")
    demo.add_argument("--seeds", type=int, help="number of seeds (default 5)")
    demo.add_argument("--out", default="experiments/runs", help="output root (default: %(default)s)")
    demo.set_defaults(func=cmd_demo)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``graphnet`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    _setup_logging(args)
    try:
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's flush at exit
        return code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("graphnet: interrupted (a run continues with: graphnet run --resume RUN_DIR)", file=sys.stderr)
        return 130
    except GraphnetError as e:
        if args.debug:
            raise
        print(f"graphnet: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except BrokenPipeError as e:
        if not _stdout_closed():
            return _unexpected(e, args)
        # The reader of stdout went away (`graphnet list models | head -1`): not graphnet's error. stdout
        # goes to devnull so that the interpreter's last flush does not raise again (as Python's docs do).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE: what a shell reports for a command stopped by a closed pipe
    except Exception as e:
        return _unexpected(e, args)


def _unexpected(e: Exception, args: argparse.Namespace) -> int:
    """Exit code 1 and one line for an error that is not a GraphnetError (the traceback with --debug)."""
    if args.debug:
        raise e
    print(f"graphnet: error: {type(e).__name__}: {_one_line(e)} "
          "(run again with --debug for the traceback)", file=sys.stderr)
    return 1


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone: poll reports an error on its write end. (Another
    BrokenPipeError, e.g. from a --nproc worker's connection, stays an error.)"""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no file descriptor
        return False


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time (not the stream current when main() first ran)."""

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging(args: argparse.Namespace) -> None:
    logger = logging.getLogger("graphnet")
    logger.setLevel(logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def _parse_options(items: list[str]) -> dict[str, Any]:
    from graphnet.config import parse_value

    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected option=value")
        out[key.strip()] = parse_value(text.strip())
    return out


# ----------------------------------------------------------------------------------------- commands
def cmd_run(args: argparse.Namespace) -> int:
    import os

    from graphnet import distributed
    from graphnet.config import load_config
    from graphnet.run import run, run_distributed

    if args.nproc < 1:
        raise ConfigError(f"--nproc: expected a number of processes >= 1, got {args.nproc}")
    torchrun = "WORLD_SIZE" in os.environ
    if torchrun and args.nproc != 1:
        raise ConfigError(f"--nproc {args.nproc}: this process was started by torchrun "
                          f"(WORLD_SIZE={os.environ['WORLD_SIZE']}), which sets the processes; drop --nproc")
    if args.config is None and args.resume is None:
        raise ConfigError("run: give a CONFIG.toml, or --resume RUN_DIR")
    if args.resume is not None and (args.overrides or args.seeds is not None):
        raise ConfigError("--resume continues a run with its own config.toml; "
                          "--set and --seeds cannot change it")
    cfg = load_config(args.config, args.overrides) if args.config is not None else None
    kwargs = dict(out=args.out, seeds=args.seeds, device=args.device, resume=args.resume,
                  progress=False if args.quiet else None)
    if torchrun:  # one of WORLD_SIZE processes: join the group, run, print on rank 0 only
        distributed.init()
        main = distributed.is_main()
        try:
            summary = run(cfg, **kwargs)
        finally:
            distributed.cleanup()
        if not main:
            return 0
    else:
        summary = run_distributed(args.nproc, cfg, **kwargs)
    _print_summary(summary)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tomllib

    from graphnet.config import from_dict
    from graphnet.run import run

    cfg = from_dict(tomllib.loads(DEMO_CONFIG), source="graphnet demo")
    summary = run(cfg, out=args.out, seeds=args.seeds, progress=False if args.quiet else None)
    _print_summary(summary)
    return 0


def _print_summary(summary: dict[str, Any]) -> None:
    from pathlib import Path

    print((Path(summary["run_dir"]) / "results.md").read_text(encoding="utf-8"))
    print(f"results: {summary['run_dir']}")


def cmd_list(args: argparse.Namespace) -> int:
    from graphnet.config import MODEL_DEFAULTS, TASK_NAMES

    if args.what == "models":
        rows = [(name, paper) for name, (paper, _) in MODEL_DEFAULTS.items()]
    elif args.what == "tasks":
        rows = list(TASK_NAMES.items())
    else:
        return cmd_data_list(args)
    width = max(len(r[0]) for r in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0


# The end of a card description's first sentence: ". " before a capital, not after "et al" / "e.g" / "i.e"
# ("WN18RR (Dettmers et al. 2018): ..." is one sentence).
_SENTENCE_END = re.compile(r"(?<!\bal)(?<!\be\.g)(?<!\bi\.e)\. (?=[A-Z])")


def first_sentence(text: str, limit: int = 100) -> str:
    """The first sentence of ``text`` (whitespace collapsed, final period dropped), cut at ``limit`` chars."""
    return _SENTENCE_END.split(" ".join(text.split()), maxsplit=1)[0].rstrip(".")[:limit]


def cmd_data_list(args: argparse.Namespace) -> int:
    from graphnet import data

    names = data.list_datasets()
    rows = [(n, first_sentence(data.load_card(n).get("description", ""))) for n in names]
    rows += [(n, f'your own file: [data] name = "{n}", path = ...') for n in sorted(data.GENERIC)]
    width = max((len(r[0]) for r in rows), default=0)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    return 0


def cmd_data_info(args: argparse.Namespace) -> int:
    from graphnet import data

    options = _parse_options(args.overrides)
    # Only the card's [options] (DataError naming the valid ones otherwise): a key such as name, root or
    # mirror would reach load()'s own parameters.
    data.resolve_options(data.load_card(args.name), options)
    stats = data.info(args.name, **options)
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        width = max(len(k) for k in stats)
        for k, v in stats.items():
            print(f"{k:<{width}}  {v}")
    return 0
