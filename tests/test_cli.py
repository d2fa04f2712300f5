"""The CLI: exit codes, one-line errors on stderr, --debug tracebacks, list/data/demo output, and that
--help and list never import torch or dgl."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from graphnet import cli
from graphnet.config import MODEL_DEFAULTS, TASK_NAMES, from_dict, load_config
from graphnet.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
ENV = {"DGLBACKEND": "pytorch", "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}


@pytest.fixture(autouse=True)
def data_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRAPHNET_DATA", str(tmp_path_factory.getbasetemp() / "graphnet-data"))


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("graphnet: error:")]
    assert len(lines) == 1 and len([ln for ln in err.splitlines() if ln.strip()]) == 1, err
    return lines[0]


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "exp.toml"
    p.write_text(text)
    return str(p)


GOOD = ('data.name = "karate"\nmodel.name = "gcn"\ntask.name = "node"\n'
        'train.epochs = 3\ntrain.device = "cpu"\n')


@pytest.mark.parametrize("args,fragment", [
    (["run", "missing.toml"], "missing.toml: config file not found"),
    (["run"], "give a CONFIG.toml, or --resume RUN_DIR"),
    (["run", "{cfg}", "--set", "train.lrr=1"], "unknown key 'train.lrr'; valid keys in [train]: epochs"),
    (["run", "{cfg}", "--set", "train.epochs=ten"], "'train.epochs' expects int, got 'ten'"),
    (["run", "{cfg}", "--set", "model.name=gnc"], "unknown model.name 'gnc'; valid names: appnp"),
    (["run", "{cfg}", "--set", "oops"], "--set 'oops': expected section.key=value"),
    (["run", "{cfg}", "--nproc", "-1"], "--nproc: expected a number of processes >= 1, got -1"),
    (["run", "{cfg}", "--device", "cuda:7"], "no such CUDA device"),
    (["run", "{cfg}", "--device", "cuda:7", "--nproc", "2"], "no such CUDA device"),  # raised in a child
    (["run", "--resume", "{tmp}"], "not a run directory (no config.toml in it)"),
    (["run", "--resume", "{tmp}", "--seeds", "3"], "--set and --seeds cannot change it"),
    (["data", "info", "karate", "--set", "sed=1"], "unknown option(s) sed; valid options:"),
    (["data", "info", "nope"], "dataset 'nope': no such card in the catalog; valid names:"),
])
def test_user_mistakes_exit_2_with_one_line(args, fragment, tmp_path, capsys):
    if "cuda:7" in args and __import__("torch").cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    args = [a.replace("{cfg}", write(tmp_path, GOOD)).replace("{tmp}", str(tmp_path)) for a in args]
    assert cli.main(args + ["--out", str(tmp_path / "runs")] if args[0] == "run" else args) == 2
    assert fragment in one_line_error(capsys)


def test_graph_errors_exit_2(tmp_path, capsys, monkeypatch):
    # a task rejecting its data (here: KG completion on a graph without triples) is a user mistake too
    cfg = write(tmp_path, GOOD.replace('task.name = "node"', 'task.name = "kg"'))
    assert cli.main(["run", cfg, "--out", str(tmp_path), "--quiet"]) == 2
    assert "task 'kg'" in one_line_error(capsys)


def test_unexpected_errors_exit_1_with_a_hint_and_debug_shows_them(tmp_path, capsys, monkeypatch):
    import graphnet.run

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(graphnet.run, "run", boom)
    cfg = write(tmp_path, GOOD)
    assert cli.main(["run", cfg]) == 1
    line = one_line_error(capsys)
    assert "RuntimeError: disk on fire second line" in line and "--debug" in line
    with pytest.raises(RuntimeError, match="disk on fire"):
        cli.main(["run", cfg, "--debug"])
    def bad_data(*args, **kwargs):
        raise DataError("bad file x.csv")

    monkeypatch.setattr(graphnet.run, "run", bad_data)
    with pytest.raises(DataError):
        cli.main(["run", cfg, "--debug"])
    monkeypatch.setattr(graphnet.run, "run", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt()))
    assert cli.main(["run", cfg]) == 130
    assert "--resume" in capsys.readouterr().err
    # a broken pipe that is not stdout's (a --nproc worker's connection) stays an unexpected error
    broken = BrokenPipeError(32, "Broken pipe")
    monkeypatch.setattr(graphnet.run, "run", lambda *a, **k: (_ for _ in ()).throw(broken))
    assert cli.main(["run", cfg]) == 1
    assert "BrokenPipeError" in one_line_error(capsys)


def test_run_prints_the_table_and_the_run_directory(tmp_path, capsys):
    assert cli.main(["run", write(tmp_path, GOOD), "--out", str(tmp_path), "--seeds", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    (run_dir,) = (tmp_path / "exp").iterdir()
    assert out.strip().endswith(f"results: {run_dir}") and "| test_accuracy |" in out
    assert load_config(run_dir / "config.toml").seeds == 2


def test_list_commands(capsys):
    assert cli.main(["list", "models"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(MODEL_DEFAULTS)
    assert cli.main(["list", "tasks"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == list(TASK_NAMES)
    from graphnet import data

    assert cli.main(["list", "datasets"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert cli.main(["data", "list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == listed
    assert set(data.list_datasets()) | {"edgelist"} <= set(listed)
    lines = {ln.split()[0]: ln for ln in listed_lines(capsys)}
    # one sentence per dataset: "et al. 2018" does not end it, "... removed. Entities" does
    wn18rr = "WN18RR (Dettmers et al. 2018): WordNet triples with the inverse relations of WN18 removed"
    assert lines["wn18rr"].endswith(wn18rr)
    assert lines["triples"].endswith('your own file: [data] name = "triples", path = ...')
    assert cli.first_sentence("A b. C d.") == "A b"
    assert cli.first_sentence("x e.g. Y, i.e. Z. W") == "x e.g. Y, i.e. Z"


def listed_lines(capsys) -> list[str]:
    assert cli.main(["data", "list"]) == 0
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize("key", ["name", "root", "mirror"])
def test_data_info_takes_only_the_cards_options(key, tmp_path, capsys):
    """`--set name=x` used to be a TypeError (exit 1) and `--set root=DIR` silently moved the data root."""
    assert cli.main(["data", "info", "karate", "--set", f"{key}={tmp_path / 'elsewhere'}"]) == 2
    assert f"dataset 'karate': unknown option(s) {key}; valid options:" in one_line_error(capsys)
    assert not (tmp_path / "elsewhere").exists()


def test_data_info_json(capsys):
    assert cli.main(["data", "info", "karate", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"num_nodes", "num_edges", "num_features", "num_classes", "train", "val", "test"} <= set(info)
    assert (info["num_nodes"], info["num_edges"], info["num_classes"]) == (34, 156, 2)
    assert cli.main(["data", "info", "karate"]) == 0
    assert re.search(r"^num_nodes +34$", capsys.readouterr().out, re.M)


def test_demo_runs_the_embedded_config(tmp_path, capsys):
    assert cli.main(["demo", "--out", str(tmp_path), "--seeds", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "karate_demo: gcn on karate (node), 2 seed(s)" in out and "| test_accuracy |" in out
    (run_dir,) = (tmp_path / "karate_demo").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test_accuracy"]["mean"] >= 0.8  # the two factions are easy to separate
    result = json.loads((run_dir / "seed-0" / "results.json").read_text())
    assert result["config"]["model"]["name"] == "gcn" and result["epochs_run"] == 200


def test_demo_config_equals_the_shipped_karate_config():
    shipped = load_config(ROOT / "experiments" / "configs" / "karate_demo.toml")
    assert from_dict(tomllib.loads(cli.DEMO_CONFIG)) == shipped


def test_help_and_list_do_not_import_torch_or_dgl():
    code = ("import sys\nfrom graphnet.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['list', 'models'], ['list', 'tasks'],\n"
            "             ['data', 'list']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('HEAVY', sorted(m for m in ('torch', 'dgl', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "HEAVY []" in out.stdout


def test_a_reader_closing_stdout_is_a_quiet_exit_141():
    """`graphnet list models | head -1`: the pipe closes under the writer; no error line, 128 + SIGPIPE."""
    p = subprocess.Popen([sys.executable, "-m", "graphnet", "list", "models"], env=ENV,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.close()  # before the child writes anything: its output meets a pipe without a reader
    err = p.stderr.read()
    assert p.wait(timeout=120) == 141 and err == b""


def test_python_m_graphnet_is_the_console_script():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["graphnet"] == "graphnet.cli:main"
    out = subprocess.run([sys.executable, "-m", "graphnet", "--version"], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"graphnet {__import__('graphnet').__version__}"
    bad = subprocess.run([sys.executable, "-m", "graphnet", "run", "nope.toml"], env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.strip() == "graphnet: error: nope.toml: config file not found"
