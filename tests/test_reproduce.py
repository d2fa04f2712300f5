"""Reproduction checks for experiments/reproduce (issue 5).

- Every reproduction config validates and has a row in run_all.ROWS and make_table.ROWS (and vice versa).
- CI smoke runs: one short run per task on real data from the offline mirror, asserting a floor well above
  chance (node: Cora GCN; link: Cora GCN + dot decoder; kg: Nations DistMult; rec: Gowalla LightGCN on 500
  users; rating: ml-100k GC-MC). Floors sit below what the short schedules reach here (numbers in each test).
- ``slow``: the committed configs, 10 seeds, against the published numbers for the rows that run their full
  schedule on 2 CPU cores and land within tolerance (max(1 point, the reported std)); see RESULTS.md.

Real data comes from $GRAPHNET_MIRROR (default ../shared/data); tests skip with a reason without it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from graphnet.config import from_dict, load_config
from graphnet.run import run
from tests._mirror import use_mirror

ROOT = Path(__file__).resolve().parent.parent
REPRO = ROOT / "experiments" / "reproduce"


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"repro_{name}", REPRO / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def real_data(monkeypatch, tmp_path_factory):
    use_mirror(monkeypatch)
    if not os.environ.get("GRAPHNET_DATA"):
        monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path_factory.getbasetemp() / "graphnet-data"))


# ------------------------------------------------------------------------------------- integrity
@pytest.mark.parametrize("path", sorted(REPRO.glob("*.toml")), ids=lambda p: p.stem)
def test_reproduction_config_validates(path):
    cfg = load_config(path)
    assert cfg.name == path.stem  # the table and the run directories are keyed by the file name


def test_every_config_has_a_row_and_every_row_a_config():
    configs = {p.stem for p in REPRO.glob("*.toml")}
    assert set(_module("run_all").ROWS) == configs
    assert {r["name"] for r in _module("make_table").ROWS} == configs


def test_table_statistics_are_unbiased_std():
    """make_table reads per-seed values and reports the sample (n - 1) std, as the issue asks."""
    fmt = _module("make_table").fmt
    assert fmt([0.80, 0.82, 0.84], 100.0) == "82.00 ± 2.00 (n=3)"  # sqrt(((2)^2 + 0 + 2^2) / 2) = 2
    assert fmt([0.5], 1.0) == "0.5000 (n=1)"


def test_ledger_ingests_runs_and_update_rewrites_only_their_rows(tmp_path):
    """A logged run becomes a ledger line with every seed's metrics; --update rewrites that row's table and
    command lines from the ledger and keeps every other row's line verbatim."""
    import json

    mt = _module("make_table")
    run_dir = tmp_path / "cora_gcn" / "run-1"
    for seed, acc, epochs in ((0, 0.80, 200), (1, 0.84, 150)):
        (run_dir / f"seed-{seed}").mkdir(parents=True)
        (run_dir / f"seed-{seed}" / "results.json").write_text(
            json.dumps({"metrics": {"test_accuracy": acc}, "epochs_run": epochs, "git_commit": "abc123",
                        "git_dirty": False}))
    machine = {"cpu": "test cpu", "cores": 2, "os": "linux"}
    log = tmp_path / "log.jsonl"
    recs = [{"row": "cora_gcn", "command": "python -m graphnet run x", "run_dir": str(run_dir),
             "wall_s": 90.0, "started": "2026-12-06T03:00:00+00:00", "threads": 1, "machine": machine,
             "returncode": 0},
            {"row": "cora_gat", "command": "y", "run_dir": None, "wall_s": 1.0, "returncode": 2}]
    log.write_text("".join(json.dumps(r) + "\n" for r in recs))
    ledger = tmp_path / "ledger.jsonl"
    assert mt.ingest(log, ledger) == ["cora_gcn"]
    assert mt.ingest(log, ledger) == []  # idempotent: the run is already there
    (entry,) = mt.read_jsonl(ledger)
    assert [r["metrics"]["test_accuracy"] for r in entry["runs"]] == [0.80, 0.84]
    assert {(r["git_commit"], r["git_dirty"]) for r in entry["runs"]} == {("abc123", False)}

    results = tmp_path / "RESULTS.md"
    old_gat = ("| Cora (public split) | GAT | test_accuracy | accuracy 83.03 ± 0.79 (n=10) | 83.0 (src) |"
               " – | 527–885 | 6.9 min |")
    results.write_text("\n".join([
        "# t", "", mt.TABLE_HEADER + " ours | ref | ex | epochs run | wall time |", "|---|", old_gat, "",
        "- `cora_gcn`: old gcn command", "- `cora_gat`: old gat command", "", "tail"]))
    lines, records = mt.build(ledger)
    mt.update(results, lines, records)
    text = results.read_text().split("\n")
    gcn = next(ln for ln in text if ln.startswith("| Cora (public split) | GCN |"))
    # mean 82.00, unbiased std sqrt((2^2 + 2^2) / 1) = 2.83; epochs 150-200; 90 s = 1.5 min
    assert "accuracy 82.00 ± 2.83 (n=2)" in gcn and "| 150–200 | 1.5 min |" in gcn
    assert old_gat in text  # no ledger entry: kept as it was
    assert sum("| not run |" in ln for ln in text) == len(mt.ROWS) - 2
    assert "- `cora_gat`: old gat command" in text
    new_cmd = next(ln for ln in text if ln.startswith("- `cora_gcn`:"))
    assert "python -m graphnet run x" in new_cmd and str(run_dir) in new_cmd and "test cpu" in new_cmd
    assert text[-1] == "tail"


def test_rows_picked_on_test_also_show_the_last_epoch(tmp_path):
    """A run that monitors a test metric (Gowalla, as the LightGCN paper) keeps its last evaluation in the
    ledger, and the table shows it next to the optimistic best-on-test number; other runs store nothing."""
    import json

    mt = _module("make_table")
    hist = [{"epoch": 0, "loss": 0.6, "test_recall@20": 0.10, "test_ndcg@20": 0.08},
            {"epoch": 1, "loss": 0.5, "test_recall@20": 0.14, "test_ndcg@20": 0.12},
            {"epoch": 2, "loss": 0.4, "test_recall@20": 0.13, "test_ndcg@20": 0.11}]
    res = {"metrics": {"test_recall@20": 0.14, "test_ndcg@20": 0.12}, "epochs_run": 3, "git_commit": "c1",
           "git_dirty": False, "monitor": "test_recall@20", "history": hist}
    assert mt.last_epoch(res) == {"last_metrics": {"test_recall@20": 0.13, "test_ndcg@20": 0.11}}
    assert mt.last_epoch({**res, "monitor": "val_recall@20"}) == {}  # selected on val: nothing to add
    run_dir = tmp_path / "gowalla_lightgcn" / "run-1"
    (run_dir / "seed-0").mkdir(parents=True)
    (run_dir / "seed-0" / "results.json").write_text(json.dumps(res))
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"row": "gowalla_lightgcn", "command": "c", "run_dir": str(run_dir),
                               "wall_s": 60.0, "machine": {}, "returncode": 0}) + "\n")
    ledger = tmp_path / "ledger.jsonl"
    mt.ingest(log, ledger)
    lines, _ = mt.build(ledger)
    assert ("| best epoch on test: recall@20 0.1400 (n=1); ndcg@20 0.1200 (n=1); last epoch (no selection):"
            " recall@20 0.1300 (n=1); ndcg@20 0.1100 (n=1) |") in lines["gowalla_lightgcn"]


def _ledger_line(run_dir: str, seed: int, hits: float, command: str = "python -m graphnet run ddi.toml",
                 commit: str = "c1", dirty: bool = False, row: str = "ogbl-ddi_gcn", **extra) -> dict:
    return {"row": row, "command": command, "run_dir": run_dir, "wall_s": 6000.0 + 60 * seed,
            "started": f"2026-12-0{seed + 1}T00:00:00+00:00", "threads": 1,
            "machine": {"cpu": "test cpu", "cores": 2, "os": "linux"},
            "runs": [{"path": f"seed-{seed}", "metrics": {"test_hits@20": hits}, "epochs_run": 200,
                      "git_commit": commit, "git_dirty": dirty}], **extra}


def test_pooled_ledger_lines_give_mean_and_std_over_all_their_seeds(tmp_path):
    """Seeds run in separate sessions: the newest line's "pool_with" pools the named earlier lines; the table
    shows mean ± unbiased std over every run, both wall times and both commands."""
    import json

    mt = _module("make_table")
    lines = [{**_ledger_line("runs/a", 0, 0.38), "machine": {"cpu": "older cpu", "cores": 4, "os": "linux"}},
             _ledger_line("runs/other", 0, 0.10),  # not named: never pooled
             _ledger_line("runs/b", 1, 0.42, command="python -m graphnet run ddi.toml --set seed=1",
                          commit="c2", pool_with=["runs/a"])]
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(json.dumps(x) + "\n" for x in lines))
    asked = []
    table, records = mt.build(ledger, same_code=lambda row, a, b: asked.append((row, a, b)))
    # mean 40.00, unbiased std sqrt((2^2 + 2^2) / 1) = 2.83; walls 6000 s and 6060 s
    assert "| hits@20 40.00 ± 2.83 (n=2) |" in table["ogbl-ddi_gcn"]
    assert "| 200 | 100.0 + 101.0 min |" in table["ogbl-ddi_gcn"]
    assert ("ogbl-ddi_gcn", "c1", "c2") in asked  # the code of every pooled run was compared
    (rec,) = records
    assert rec["values"] == {"test_hits@20": [0.38, 0.42]}
    cmd = mt.command_line(rec)
    assert cmd.index("`runs/a`") < cmd.index("older cpu, 4 cores") < cmd.index("pooled with") \
        < cmd.index("`runs/b`") < cmd.index("test cpu, 2 cores")  # each run with its own machine
    assert "--set seed=1" in cmd


def test_gap_table_sets_each_difference_against_the_target_and_its_standard_error(tmp_path):
    """The gap table: ours - reference from the shown values, issue 5's target (one reported std, at least 1
    point for percentages), and where the reference's run count is known (OGB: 10) the difference over its
    Welch standard error; pooled rows also show the difference after each ledger line."""
    import json

    mt = _module("make_table")
    lines = [_ledger_line("runs/a", 0, 0.38),
             _ledger_line("runs/b", 1, 0.42, command="python -m graphnet run ddi.toml --set seed=1",
                          pool_with=["runs/a"])]
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(json.dumps(x) + "\n" for x in lines))
    table, records = mt.build(ledger, same_code=lambda row, a, b: None)
    results = tmp_path / "RESULTS.md"
    mlp = ("| Cora (public split) | MLP | test_accuracy | accuracy 57.77 ± 1.01 (n=10) | 55.1 (src) | – |"
           " 200 | 5.0 min |")
    results.write_text("\n".join(["# t", "", mt.TABLE_HEADER + " ours |", "|---|", mlp, "", mt.GAP_HEADER,
                                  "", "tail"]))
    mt.update(results, table, records)
    text = results.read_text().split("\n")
    start = text.index(next(ln for ln in text if ln.startswith(mt.GAP_HEADER)))
    gaps = {ln.split("`")[1]: ln for ln in text[start + 2:text.index("", start)]}
    assert set(gaps) == {"cora_mlp", "ogbl-ddi_gcn"}  # no line for a row without a table line or a number
    # 57.77 - 55.1 = +2.67 > max(no std, 1 point); no run count for Kipf & Welling: no SE
    assert "| +2.67 | no (±1.00) | – | – | – |" in gaps["cora_mlp"]
    # 38, 42: 40.00 ± 2.83 (n=2) vs 37.07 ± 5.07 (n=10): +2.93 within 5.07;
    # SE sqrt(2.83²/2 + 5.07²/10) = sqrt(4.0045 + 2.5705) = 2.56, 2.93 / 2.5642 = 1.14; after a: 38 - 37.07
    assert ("| hits@20 40.00 ± 2.83 (n=2) | 37.07 ± 5.07 | +2.93 | yes (±5.07) |"
            " sqrt(2.83²/2 + 5.07²/10) = 2.56 | +1.14 | +0.93, +2.93 |") in gaps["ogbl-ddi_gcn"]
    assert text[-1] == "tail"
    by_name = {r["name"]: r for r in mt.ROWS}
    # a fraction-scale reference with no std has no target; a text reference gives no line
    rmse = mt.gap(by_name["ml-100k_gcmc"], "| a | b | c | rmse 0.9078 ± 0.0011 (n=10) | x |")
    assert "| -0.0022 | – (no std given) | – | – | – |" in rmse
    kg_line = "| a | b | c | mrr 74.36 ± 1.07 (n=10); hits@10 99.58 ± 0.29 (n=10) |"
    assert mt.gap(by_name["nations_distmult"], kg_line) is None


def test_a_diverged_seed_makes_the_row_nan_not_a_mean_of_the_survivors(tmp_path):
    """results.json writes a NaN metric as null: the row shows how many runs were NaN instead of the mean of
    the others (which would be biased towards the seeds that trained), and the gap table has no line."""
    import json

    mt = _module("make_table")
    assert mt.fmt([0.80, float("nan"), 0.82], 100.0) == "n/a (1 of 3 runs NaN)"
    line = _ledger_line("runs/a", 0, 0.38)
    line["runs"].append({**line["runs"][0], "path": "seed-1", "metrics": {"test_hits@20": None}})
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps(line) + "\n")
    table, records = mt.build(ledger)
    assert "| hits@20 n/a (1 of 2 runs NaN) |" in table["ogbl-ddi_gcn"]
    assert records[0]["values"] == {"test_hits@20": [0.38, None]}
    by_name = {r["name"]: r for r in mt.ROWS}
    assert mt.gap(by_name["ogbl-ddi_gcn"], table["ogbl-ddi_gcn"]) is None
    # a run whose metrics lack the key (a crashed seed's partial results) counts the same way
    line["runs"][1]["metrics"] = {}
    ledger.write_text(json.dumps(line) + "\n")
    table, records = mt.build(ledger)
    assert "| hits@20 n/a (1 of 2 runs NaN) |" in table["ogbl-ddi_gcn"]
    assert records[0]["values"] == {"test_hits@20": [0.38, None]}


def test_runs_of_uncommitted_code_are_marked_in_the_table(tmp_path):
    import json

    mt = _module("make_table")
    line = _ledger_line("runs/a", 0, 0.38, dirty=True)
    line["runs"].append({**line["runs"][0], "path": "seed-1", "metrics": {"test_hits@20": 0.42},
                         "git_dirty": False})
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps(line) + "\n")
    table, _ = mt.build(ledger)
    assert "| hits@20 40.00 ± 2.83 (n=2); 1 of 2 runs with uncommitted changes (git_dirty) |" \
        in table["ogbl-ddi_gcn"]
    # the headline is still read for the gap table
    by_name = {r["name"]: r for r in mt.ROWS}
    assert "| +2.93 |" in mt.gap(by_name["ogbl-ddi_gcn"], table["ogbl-ddi_gcn"])


def test_update_replaces_only_the_command_list_not_later_bullets_naming_a_row(tmp_path):
    import json

    mt = _module("make_table")
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps(_ledger_line("runs/a", 0, 0.38)) + "\n")
    results = tmp_path / "RESULTS.md"
    results.write_text("\n".join([
        "# t", "", mt.TABLE_HEADER + " ours |", "|---|", "", "- `cora_gcn`: old gcn command", "",
        "## Notes", "", "Discussion paragraph.", "", "- `cora_gcn`: a note about the Cora row", "tail"]))
    mt.update(results, *mt.build(ledger))
    text = results.read_text().split("\n")
    assert text[-6:] == ["## Notes", "", "Discussion paragraph.", "",
                         "- `cora_gcn`: a note about the Cora row", "tail"]
    cmds = [ln for ln in text if ln.startswith("- `")]
    assert cmds[0] == "- `cora_gcn`: old gcn command" and cmds[1].startswith("- `ogbl-ddi_gcn`: `DGLBACKEND")
    assert len(cmds) == 3


def test_a_cut_off_last_log_line_is_skipped_but_a_bad_middle_line_is_an_error(tmp_path, capsys):
    import json

    mt = _module("make_table")
    log = tmp_path / "log.jsonl"
    good = json.dumps({"row": "cora_gcn", "returncode": 0, "run_dir": "r"})
    log.write_text(good + "\n" + good[:20])
    assert mt.read_jsonl(log) == [json.loads(good)]
    assert f"{log}:2: skipping a cut-off last line" in capsys.readouterr().err
    log.write_text(good[:20] + "\n" + good + "\n")
    with pytest.raises(SystemExit, match=r"log.jsonl:1: not a JSON line"):
        mt.read_jsonl(log)


@pytest.mark.parametrize("threads, omp, logged, shown", [
    (1, None, 1, "DGLBACKEND=pytorch OMP_NUM_THREADS=1 python"),
    (None, "3", 3, "DGLBACKEND=pytorch OMP_NUM_THREADS=3 python"),
    (None, None, None, "DGLBACKEND=pytorch python"),  # torch's default: no OMP_NUM_THREADS to claim
])
def test_run_all_logs_the_thread_count_the_row_ran_with(tmp_path, monkeypatch, threads, omp, logged, shown):
    import json
    import subprocess

    ra, mt = _module("run_all"), _module("make_table")
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    seen, real_run = {}, subprocess.run

    def fake_run(cmd, **kw):  # the row's graphnet run; anything else (machine()'s probes) runs for real
        if "graphnet" not in cmd:
            return real_run(cmd, **kw)
        seen["omp"] = kw["env"].get("OMP_NUM_THREADS")
        return subprocess.CompletedProcess(cmd, 0, stdout="results: runs/x\n", stderr="")

    monkeypatch.setattr(ra.subprocess, "run", fake_run)
    rec = ra.run_row("cora_gcn", 1, str(tmp_path), [], threads)
    assert rec["threads"] == logged and seen["omp"] == (str(logged) if logged else None)
    assert json.loads((tmp_path / "log.jsonl").read_text()) == rec
    assert f"`{shown} -m graphnet run" in mt.command_line({"name": "cora_gcn", **rec})


def test_last_epoch_is_the_last_evaluation_not_the_last_history_entry():
    mt = _module("make_table")
    hist = [{"epoch": 0, "loss": 0.6, "test_recall@20": 0.10}, {"epoch": 1, "loss": 0.5}]
    res = {"monitor": "test_recall@20", "history": hist}
    assert mt.last_epoch(res) == {"last_metrics": {"test_recall@20": 0.10}}
    assert mt.last_epoch({**res, "history": hist[1:]}) == {}


def test_plot_curve_leaves_the_old_png_when_saving_fails(tmp_path, monkeypatch):
    import json

    from matplotlib.figure import Figure

    run_dir = tmp_path / "gowalla_mf" / "run-1"
    (run_dir / "seed-0").mkdir(parents=True)
    hist = [{"epoch": e, "loss": 1.0, "test_recall@20": 0.05 * e} for e in range(3)]
    (run_dir / "seed-0" / "results.json").write_text(json.dumps({"seed": 0, "history": hist}))
    (tmp_path / "log.jsonl").write_text(json.dumps({"row": "gowalla_mf", "run_dir": str(run_dir),
                                                    "returncode": 0}) + "\n")
    out = tmp_path / "curve.png"
    out.write_bytes(b"OLD PNG")

    def failing_savefig(self, f, **kw):
        (open(f, "wb") if isinstance(f, (str, Path)) else f).write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", failing_savefig)
    with pytest.raises(OSError):
        _module("plot_curve").main(["--runs", str(tmp_path), "--rows", "gowalla_mf", "--out", str(out)])
    assert out.read_bytes() == b"OLD PNG"


@pytest.mark.parametrize("change, message", [
    ({"seed": 0}, "repeat seed-0"),
    ({"dirty": True}, "uncommitted code"),
    ({"command": "python -m graphnet run ddi.toml --set train.epochs=5"}, "different commands"),
    ({"row": "ogbl-ddi_sage"}, "mixes rows"),
    ({"pool_with": ["runs/nowhere"]}, "names no ledger line 'runs/nowhere'"),
    ({"commit": "c3"}, "cannot pool runs/b with runs/a: config differs"),
])
def test_pool_refuses_lines_that_are_not_one_experiment(tmp_path, change, message):
    import json

    mt = _module("make_table")
    kw = {"seed": 1, "pool_with": ["runs/a"], **change}
    seed = kw.pop("seed")
    second = _ledger_line("runs/b", seed, 0.42, **kw)
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text(json.dumps(_ledger_line("runs/a", 0, 0.38)) + "\n" + json.dumps(second) + "\n")
    with pytest.raises(SystemExit, match=message):
        mt.build(ledger, same_code=lambda row, a, b: "config differs" if "c3" in (a, b) else None)


def _logged_run(tmp_path: Path, run_dir: str, seed: int, hits: float, row: str = "ogbl-ddi_gcn",
                dirty: bool = False) -> dict:
    """A run_all.py log record of a finished one-seed run, with its results.json under tmp_path."""
    import json

    (tmp_path / run_dir / f"seed-{seed}").mkdir(parents=True)
    (tmp_path / run_dir / f"seed-{seed}" / "results.json").write_text(json.dumps(
        {"metrics": {"test_hits@20": hits}, "epochs_run": 200, "git_commit": "c1", "git_dirty": dirty}))
    return {"row": row, "command": f"python -m graphnet run ddi.toml --set seed={seed}",
            "run_dir": str(tmp_path / run_dir), "wall_s": 6000.0, "started": "2026-12-06T00:00:00+00:00",
            "threads": 1, "machine": {"cpu": "test cpu", "cores": 2, "os": "linux"}, "returncode": 0}


def test_ingest_pool_with_previous_names_every_earlier_line_of_the_row(tmp_path):
    """--pool-with-previous: the new line pools the row's previous line and all that line pooled (written out
    whole, pooling is not transitive); other rows are untouched; --note lands on the new line."""
    import json

    mt = _module("make_table")
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_text("".join(json.dumps(x) + "\n" for x in [
        _ledger_line("runs/a", 0, 0.38),
        _ledger_line("runs/sage", 0, 0.50, row="ogbl-ddi_sage"),
        _ledger_line("runs/b", 1, 0.42, command="python -m graphnet run ddi.toml --set seed=1",
                     pool_with=["runs/a"])]))
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(_logged_run(tmp_path, "runs/c", 2, 0.46)) + "\n")
    added = mt.ingest(log, ledger, pool_with_previous=True, note="seed 2", same_code=lambda row, a, b: None)
    assert added == ["ogbl-ddi_gcn"]
    new = mt.read_jsonl(ledger)[-1]
    assert new["pool_with"] == ["runs/a", "runs/b"] and new["note"] == "seed 2"
    table, records = mt.build(ledger, same_code=lambda row, a, b: None)
    # 38, 42, 46: mean 42.00, unbiased std sqrt((4^2 + 0 + 4^2) / 2) = 4.00
    assert "| hits@20 42.00 ± 4.00 (n=3) |" in table["ogbl-ddi_gcn"]
    assert "| hits@20 50.00 (n=1) |" in table["ogbl-ddi_sage"]


@pytest.mark.parametrize("run, message", [
    ({"seed": 1}, "repeat seed-1"),  # seed 1 is already in the pool
    ({"dirty": True}, "uncommitted code"),
    ({"row": "cora_gcn"}, "no earlier line of cora_gcn"),
])
def test_ingest_pool_with_previous_refuses_before_writing(tmp_path, run, message):
    import json

    mt = _module("make_table")
    ledger = tmp_path / "ledger.jsonl"
    before = json.dumps(_ledger_line("runs/a", 0, 0.38)) + "\n" + json.dumps(
        _ledger_line("runs/b", 1, 0.42, pool_with=["runs/a"])) + "\n"
    ledger.write_text(before)
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps(_logged_run(tmp_path, "runs/c", **{"seed": 2, "hits": 0.46, **run})) + "\n")
    with pytest.raises(SystemExit, match=message):
        mt.ingest(log, ledger, pool_with_previous=True, same_code=lambda row, a, b: None)
    assert ledger.read_text() == before


def _has_commit(rev: str) -> bool:
    """Whether this checkout has git and the history holding ``rev`` (not a shallow or exported copy)."""
    import shutil
    import subprocess

    if shutil.which("git") is None:
        return False
    probe = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=ROOT, capture_output=True)
    return probe.returncode == 0


def test_committed_table_is_what_the_committed_ledger_gives(tmp_path):
    """experiments/RESULTS.md's table and command list are make_table's output for the committed ledger (no
    hand edits, no ledger line left out); pooled rows need this repository's git history."""
    import shutil

    if not _has_commit("5f85a84"):
        pytest.skip("git history of this repository not available (shallow or exported checkout)")
    mt = _module("make_table")
    results = tmp_path / "RESULTS.md"
    shutil.copy(ROOT / "experiments" / "RESULTS.md", results)
    mt.update(results, *mt.build())
    assert results.read_text() == (ROOT / "experiments" / "RESULTS.md").read_text()


def test_git_same_code_on_this_repository():
    """Real commits: comments-only config edits pool; a changed config value or a library change do not."""
    if not _has_commit("099d10b^"):
        pytest.skip("git history of this repository not available (shallow or exported checkout)")
    same = _module("make_table").git_same_code
    # 5f85a84 -> 4297866: only the comments of the ddi configs changed, graphnet/ did not
    assert same("ogbl-ddi_gcn", "5f85a84", "4297866") is None
    # 099d10b changed model.mlp_num_layers 3 -> 2
    assert "ogbl-ddi_gcn.toml differs" in same("ogbl-ddi_gcn", "099d10b^", "5f85a84")
    # 3a13c77 touched graphnet/ only (cora_gcn.toml unchanged)
    assert "graphnet/ or requirements.lock changed" in same("cora_gcn", "3a13c77^", "3a13c77")


def test_plot_curve_draws_the_logged_runs(tmp_path):
    """plot_curve.py finds a row's newest run through run_all.py's log and plots one line per seed."""
    import json

    run_dir = tmp_path / "gowalla_mf" / "run-1"
    (run_dir / "seed-0").mkdir(parents=True)
    hist = [{"epoch": e, "loss": 1.0 / (e + 1), "test_recall@20": 0.05 * e} for e in range(4)]
    (run_dir / "seed-0" / "results.json").write_text(json.dumps({"seed": 0, "history": hist}))
    (tmp_path / "log.jsonl").write_text(json.dumps({"row": "gowalla_mf", "run_dir": str(run_dir),
                                                    "returncode": 0}) + "\n")
    out = tmp_path / "curve.png"
    argv = ["--runs", str(tmp_path), "--rows", "gowalla_mf", "--out", str(out)]
    assert _module("plot_curve").main(argv) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_grad_norms_measures_each_component_of_a_link_model():
    """grad_norms.py's per-component norm, hand-computed: every gradient entry set to a known constant c
    gives c * sqrt(number of entries) per component (the embedding, the GNN, the MLP predictor)."""
    import math

    import torch

    from graphnet.graph import Graph
    from graphnet.tasks.link_pred import LinkPrediction

    src = torch.arange(24) % 12  # a ring plus its 2-hop chords
    g = Graph.from_edges(src, (src + 1 + torch.arange(24) // 12) % 12, 12)  # no X: the task adds an embedding
    task = LinkPrediction(decoder="mlp", out_dim=4, emb_dim=3, mlp_hidden_dim=5, mlp_num_layers=2)
    model, _ = task.setup(g, "gcn", {"hidden_dim": 7}, seed=0)
    consts = {"emb": 2.0, "model": -0.5, "decoder": 3.0}
    for name, p in model.named_parameters():
        p.grad = torch.full_like(p, consts[name.split(".")[1] if name.startswith("encoder.") else "decoder"])
    # entries: embedding 12*3; GCN 3*7 + 7 + 7*4 + 4; predictor 4*5 + 5 + 5*1 + 1
    want = {"embedding": 2.0 * math.sqrt(36), "gnn": 0.5 * math.sqrt(60), "predictor": 3.0 * math.sqrt(31)}
    norms = _module("grad_norms").component_norms(model)
    assert norms == pytest.approx(want, rel=1e-12)
    model.decoder.lins[0].weight.grad = None  # a parameter without a gradient counts as 0
    assert _module("grad_norms").component_norms(model)["predictor"] == pytest.approx(3.0 * math.sqrt(11))


# ------------------------------------------------------------------------------------- smoke runs
def _run(raw: dict, tmp_path: Path, seeds: int = 1) -> dict:
    summary = run(
        from_dict({"name": "smoke", **raw}), out=tmp_path, seeds=seeds, device="cpu", progress=False
    )
    return {k: v["mean"] for k, v in summary["metrics"].items()}


@pytest.mark.download
def test_smoke_node_cora_gcn(real_data, tmp_path):
    """Cora GCN, the paper protocol cut to 100 epochs: >= 0.78 test accuracy (0.801 measured here; the
    full 200 epochs give 0.818 ± 0.007 over 10 seeds)."""
    cfg = load_config(REPRO / "cora_gcn.toml", ["train.epochs=100"])
    summary = run(cfg, out=tmp_path, seeds=1, device="cpu", progress=False)
    acc = summary["metrics"]["test_accuracy"]["mean"]
    assert acc >= 0.78, acc


@pytest.mark.download
def test_smoke_link_cora_gcn(real_data, tmp_path):
    """GAE-style link prediction on Cora (seeded 5/10% edge split): ROC-AUC >= 0.85 after 100 epochs (0.886
    measured here; a random scorer gives 0.5)."""
    m = _run(
        {
            "data": {"name": "cora", "normalize_features": True},
            "model": {"name": "gcn", "hidden_dim": 32},
            "task": {"name": "link", "decoder": "dot", "out_dim": 16},
            "train": {"epochs": 100, "lr": 0.01, "weight_decay": 0.0},
        },
        tmp_path,
    )
    assert m["test_roc_auc"] >= 0.85, m


@pytest.mark.download
def test_smoke_kg_nations_distmult(real_data, tmp_path):
    """Nations DistMult (ConvE protocol) for 40 epochs: filtered MRR >= 0.55, Hits@10 >= 0.95 (0.759 / 0.998
    measured here; the full config gives 0.740 / 0.997 over 10 seeds)."""
    cfg = load_config(REPRO / "nations_distmult.toml", ["train.epochs=40", "train.patience=0"])
    summary = run(cfg, out=tmp_path, seeds=1, device="cpu", progress=False)
    mrr, h10 = (summary["metrics"][k]["mean"] for k in ("test_mrr", "test_hits@10"))
    assert mrr >= 0.55 and h10 >= 0.95, (mrr, h10)


@pytest.mark.download
def test_smoke_rec_gowalla_lightgcn(real_data, tmp_path):
    """LightGCN on 500 Gowalla users (12,359 items), 5 epochs at lr 0.01: Recall@20 >= 0.03 (0.047 measured
    here; a uniform ranking gives ~20 / 12,359 = 0.0016; MF-BPR needs far more steps, 0.004-0.012)."""
    m = _run(
        {
            "data": {"name": "gowalla", "max_users": 500},
            "model": {"name": "lightgcn"},
            "task": {"name": "rec"},
            "train": {"epochs": 5, "lr": 0.01, "eval_every": 1, "monitor": "test_recall@20"},
        },
        tmp_path,
    )
    assert m["test_recall@20"] >= 0.03, m


@pytest.mark.download
def test_smoke_rating_ml100k_gcmc(real_data, tmp_path):
    """GC-MC on ml-100k u1 for 40 epochs: test RMSE <= 1.05 (1.015 measured here with the paper's protocol,
    ~20 s next to another run; predicting the training mean gives 1.154; 1000 epochs reach ~0.908)."""
    cfg = load_config(REPRO / "ml-100k_gcmc.toml", ["train.epochs=40"])
    summary = run(cfg, out=tmp_path, seeds=1, device="cpu", progress=False)
    rmse = summary["metrics"]["test_rmse"]["mean"]
    assert rmse <= 1.05, rmse


# ------------------------------------------------------------------------------------- published numbers
# (config, metric, reference, tolerance = max(1 point, the reported std)): the rows whose full schedule runs
# here and matched in RESULTS.md (10 seeds; Amazon Photo: 10 random splits x 10 seeds).
PUBLISHED = [
    ("cora_gcn", "test_accuracy", 0.815, 0.010),
    ("citeseer_gcn", "test_accuracy", 0.703, 0.010),
    ("cora_gat", "test_accuracy", 0.830, 0.010),
    ("citeseer_gat", "test_accuracy", 0.725, 0.010),
    ("cora_sgc", "test_accuracy", 0.810, 0.010),
    ("citeseer_sgc", "test_accuracy", 0.719, 0.010),
    ("cora_appnp", "test_accuracy", 0.837, 0.010),
    ("citeseer_appnp", "test_accuracy", 0.715, 0.010),
    ("amazon-photo_gcn", "test_accuracy", 0.912, 0.012),
    # ml-100k's RMSE has no reported std and no "point": its tolerance, 0.003, is three units of the paper's
    # last digit (0.910), about 3x our seed std (0.0011), and tight enough to fail the first table's protocol
    # (0.9138, RESULTS.md).
    ("ml-100k_gcmc", "test_rmse", 0.910, 0.003),
]


def _values(summary: dict, metric: str) -> list[float]:
    """Per-run values of ``metric``: over seeds, or over every seed of every point of a [sweep]."""
    if "points" in summary:
        return [v for p in summary["points"] for v in p["metrics"][metric]["values"]]
    return summary["metrics"][metric]["values"]


@pytest.mark.slow
@pytest.mark.download
@pytest.mark.parametrize("name,metric,ref,tol", PUBLISHED, ids=[p[0] for p in PUBLISHED])
def test_published_number_is_reproduced(name, metric, ref, tol, real_data, tmp_path):
    cfg = load_config(REPRO / f"{name}.toml")
    summary = run(cfg, out=tmp_path, seeds=10, device="cpu", progress=False)
    vals = _values(summary, metric)
    mean = sum(vals) / len(vals)
    assert len(vals) == 10 * len(summary.get("points", [None])) and abs(mean - ref) <= tol, (mean, vals, ref)
