"""Run the reproduction configs in experiments/reproduce/ with graphnet's CLI and log each command.

Usage (from the repository root)::

    DGLBACKEND=pytorch python experiments/reproduce/run_all.py                 # every row, in ROWS order
    DGLBACKEND=pytorch python experiments/reproduce/run_all.py cora_gcn cora_gat --jobs 2 --threads 1

Each row runs ``python -m graphnet run experiments/reproduce/<row>.toml --seeds N --out OUT --quiet`` plus the
row's own ``--set`` overrides (ROWS below: shorter schedules where the machine cannot run the full one).
One JSON line per finished command is appended to ``OUT/log.jsonl``: row, exact command, run directory,
wall time, exit code and the machine (each seed's results.json records the git commit and dirty flag).
``make_table.py --ingest --update experiments/RESULTS.md`` then copies each new run's per-seed metrics into
the committed ledger (experiments/reproduce/ledger.jsonl: run directories are gitignored) and rewrites the
table from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_OUT = "experiments/runs/reproduce"

# row -> (seeds, extra CLI arguments). Rows whose full schedule does not fit on 2 shared CPU cores carry
# a shorter schedule here; RESULTS.md states the epochs actually run.
ROWS: dict[str, tuple[int, list[str]]] = {
    "cora_gcn": (10, []),
    "cora_gat": (10, []),
    "cora_sgc": (10, []),
    "cora_appnp": (10, []),
    "cora_mlp": (10, []),
    "citeseer_gcn": (10, []),
    "citeseer_gat": (10, []),
    "citeseer_sgc": (10, []),
    "citeseer_appnp": (10, []),
    "citeseer_mlp": (10, []),
    "nations_distmult": (10, []),
    "nations_complex": (10, []),
    "nations_rgcn": (10, []),
    "umls_distmult": (10, []),
    "umls_complex": (10, []),
    "umls_rgcn": (10, []),
    "kinship_distmult": (10, []),
    "kinship_complex": (10, []),
    "kinship_rgcn": (10, []),
    "amazon-photo_gcn": (10, []),  # the config's [sweep] over 10 data splits; 10 inits per split
    "amazon-photo_mlp": (10, []),
    "facebook_gcn": (10, []),
    "facebook_mlp": (10, []),
    "ml-100k_gcmc": (10, []),
    "ogbl-ddi_gcn": (1, []),
    "ogbl-ddi_sage": (1, []),
    "fb15k-237_distmult": (1, []),
    "fb15k-237_rgcn": (1, []),
    "gowalla_mf": (1, []),
    "gowalla_lightgcn": (1, []),
}


def machine() -> dict[str, object]:
    """CPU model, logical cores and OS of this machine (for the table's "machine" column)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "os": platform.platform(terse=True)}


def command(row: str, seeds: int, out: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "graphnet",
        "run",
        f"experiments/reproduce/{row}.toml",
        "--seeds",
        str(seeds),
        "--out",
        out,
        "--quiet",
        *extra,
    ]


def run_row(row: str, seeds: int, out: str, extra: list[str], threads: int | None) -> dict[str, object]:
    cmd = command(row, seeds, out, extra)
    env = {**os.environ, "DGLBACKEND": "pytorch"}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    run_dir = next(
        (ln.split(":", 1)[1].strip() for ln in proc.stdout.splitlines() if ln.startswith("results:")), None
    )
    shown = ["python", *cmd[1:]]
    rec = {
        "row": row,
        "command": " ".join(shlex.quote(c) for c in shown),
        "run_dir": run_dir,
        "wall_s": wall,
        "returncode": proc.returncode,
        "started": started,
        # what the child got: --threads, else an inherited OMP_NUM_THREADS, else None (torch's default)
        "threads": threads or _int_or_none(env.get("OMP_NUM_THREADS")),
        "machine": machine(),
        "stderr_tail": proc.stderr[-2000:] if proc.returncode else "",
    }
    append_line(Path(ROOT, out, "log.jsonl"), json.dumps(rec))
    return rec


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() else None


def append_line(path: Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` with one write(2) on an O_APPEND descriptor, so rows
    finishing at the same time never interleave; a short write (full disk) raises OSError naming ``path``,
    and make_table's reader skips such a cut-off last line instead of refusing the whole log."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
    finally:
        os.close(fd)
    if written != len(data):
        raise OSError(f"{path}: wrote {written} of {len(data)} bytes of a log line (disk full?)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", nargs="*", help=f"rows to run (default: all): {', '.join(ROWS)}")
    p.add_argument("--seeds", type=int, help="override every row's number of seeds")
    p.add_argument("--out", default=DEFAULT_OUT)
    p.add_argument("--jobs", type=int, default=1, help="rows run at the same time")
    p.add_argument("--threads", type=int, help="torch threads per row (OMP_NUM_THREADS)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra --set for every row")
    args = p.parse_args(argv)
    rows = args.rows or list(ROWS)
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        p.error(f"unknown row(s) {', '.join(unknown)}; valid: {', '.join(ROWS)}")
    Path(ROOT, args.out).mkdir(parents=True, exist_ok=True)
    jobs = []
    for r in rows:
        seeds, extra = ROWS[r]
        extra = extra + [a for o in args.overrides for a in ("--set", o)]
        jobs.append((r, args.seeds or seeds, args.out, extra, args.threads))
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for rec in pool.map(lambda j: run_row(*j), jobs):
            status = "ok" if rec["returncode"] == 0 else f"FAILED ({rec['returncode']})"
            print(f"{rec['row']}: {status} in {rec['wall_s']:.0f} s -> {rec['run_dir']}", flush=True)
            if rec["returncode"]:
                print(rec["stderr_tail"], file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
