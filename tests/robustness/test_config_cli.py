"""Malformed configs and command lines: a ConfigError (or DataError for the data a config points at) whose
message names the file and the key; on the command line, a non-zero exit with exactly one line on stderr,
and the traceback only with ``--debug``.

Cases marked xfail(strict) are bugs found by this suite (docs/robustness.md lists the fixes).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graphnet import cli
from graphnet.config import load_config
from graphnet.errors import ConfigError
from tests.robustness._support import REPO, child_env, raises_clear

GOOD = """\
[data]
name = "karate"

[model]
name = "gcn"

[task]
name = "node"

[train]
epochs = 2
device = "cpu"
"""


def bug(reason: str) -> pytest.MarkDecorator:
    return pytest.mark.xfail(strict=True, reason=f"BUG: {reason}")


def write(tmp_path: Path, text: str | bytes, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def edit(section: str, line: str) -> str:
    """GOOD with ``line`` added to ``[section]``."""
    return GOOD.replace(f"[{section}]\n", f"[{section}]\n{line}\n")


# ----------------------------------------------------------------------------- config files (load_config)
CONFIG_CASES = [
    pytest.param(b"[data]\nname = \"karate\"\n[model\nname = \"gcn\"\n", (), ("exp.toml", "line 3"),
                 id="toml-syntax-error"),
    pytest.param(b"\xff\xfe[data]\n", (), ("exp.toml", "cannot read"), id="toml-not-utf8"),
    pytest.param(GOOD.replace("[train]", "[trian]"), (), ("exp.toml", "'trian'", "valid keys"),
                 id="unknown-section"),
    pytest.param(edit("train", "lrr = 0.1"), (), ("exp.toml", "'train.lrr'", "lr"), id="unknown-train-key"),
    pytest.param(edit("model", "hidden = 8"), (), ("exp.toml", "'model.hidden'", "hidden_dim"),
                 id="unknown-model-key"),
    pytest.param(edit("task", "batchsize = 8"), (), ("exp.toml", "'task.batchsize'", "batch_size"),
                 id="unknown-task-key"),
    pytest.param(edit("data", "trian_frac = 0.5"), (), ("exp.toml", "trian_frac", "train_frac"),
                 id="unknown-data-option"),
    pytest.param(edit("model", 'hidden_dim = "big"'), (), ("exp.toml", "'model.hidden_dim'", "int"),
                 id="model-key-wrong-type"),
    pytest.param(GOOD.replace("epochs = 2", "epochs = true"), (), ("exp.toml", "'train.epochs'", "int"),
                 id="bool-for-int"),
    pytest.param(GOOD.replace("epochs = 2", "epochs = 0"), (), ("exp.toml", "'train.epochs'", ">= 1"),
                 id="zero-epochs"),
    pytest.param(edit("train", "lr = -0.01"), (), ("exp.toml", "'train.lr'"), id="negative-lr"),
    pytest.param(edit("train", "lr = nan"), (), ("exp.toml", "'train.lr'"), id="nan-lr"),
    pytest.param(edit("train", "lr = inf"), (), ("exp.toml", "'train.lr'"), id="inf-lr"),
    pytest.param(edit("train", 'optimizer = "adamm"'), (), ("exp.toml", "'train.optimizer'", "adam"),
                 id="unknown-optimizer"),
    pytest.param(GOOD.replace('"cpu"', '"tpu"'), (), ("exp.toml", "'train.device'", "tpu"),
                 id="unknown-device"),
    pytest.param(GOOD.replace('name = "gcn"', 'name = "gnc"'), (), ("exp.toml", "'gnc'", "gcn"),
                 id="unknown-model"),
    pytest.param(GOOD.replace('name = "node"', 'name = "nodes"'), (), ("exp.toml", "'nodes'", "node"),
                 id="unknown-task"),
    pytest.param(GOOD.replace('name = "karate"', 'name = "korate"'), (), ("exp.toml", "'korate'", "karate"),
                 id="unknown-dataset"),
    pytest.param(edit("data", "seed = 1.5"), (), ("exp.toml", "seed", "int"), id="data-option-wrong-type"),
    pytest.param(GOOD.replace('[model]\nname = "gcn"\n', "[model]\n"), (), ("exp.toml", "[model]", "'name'"),
                 id="section-without-name"),
    pytest.param('model = "gcn"\n' + GOOD.split("[model]")[0] + "[task]" + GOOD.split("[task]")[1], (),
                 ("exp.toml", "[model]", "table"), id="section-given-as-value"),
    pytest.param("seeds = 0\n" + GOOD, (), ("exp.toml", "'seeds'", ">= 1"), id="zero-seeds"),
    pytest.param('name = "../escape"\n' + GOOD, (), ("exp.toml", "'name'", "../escape"),
                 id="name-with-slash"),
    pytest.param(GOOD + "[sweep]\n\"train.lr\" = []\n", (), ("exp.toml", "train.lr", "non-empty list"),
                 id="empty-sweep-list"),
    pytest.param(GOOD + "[sweep]\n\"train.lrr\" = [0.1]\n", (), ("'train.lrr'",), id="sweep-unknown-key"),
    pytest.param(GOOD, ("train.epochs=ten",), ("'train.epochs'", "'ten'"), id="override-wrong-type"),
    pytest.param(GOOD, ("train.lr",), ("--set 'train.lr'", "section.key=value"), id="override-without-value"),
    pytest.param(GOOD, ("model.name.x=1",), ("--set 'model.name.x=1'", "model.name"),
                 id="override-into-a-value"),
    pytest.param(edit("train", "weight_decay = nan"), (), ("exp.toml", "'train.weight_decay'"),
                 id="nan-weight-decay"),
    pytest.param(edit("train", "grad_clip = nan"), (), ("exp.toml", "'train.grad_clip'"),
                 id="nan-grad-clip"),
    pytest.param(edit("train", "momentum = nan"), (), ("exp.toml", "'train.momentum'"), id="nan-momentum"),
]


@pytest.mark.parametrize(("text", "overrides", "fragments"), CONFIG_CASES)
def test_bad_config_gives_a_config_error_naming_file_and_key(tmp_path, text, overrides, fragments):
    path = write(tmp_path, text)
    with raises_clear(ConfigError, *fragments):
        load_config(path, overrides)


def test_missing_config_file_is_named(tmp_path):
    with raises_clear(ConfigError, "nope.toml", "not found"):
        load_config(tmp_path / "nope.toml")


# ----------------------------------------------------------------------------- the command line
def one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("graphnet: error: "), err
    assert "Traceback" not in err
    return lines[0]


CLI_CASES = [
    pytest.param(["run", "{tmp}/nope.toml"], "nope.toml: config file not found", id="run-missing-config"),
    pytest.param(["run"], "give a CONFIG.toml", id="run-without-config"),
    pytest.param(["run", "{cfg}", "--set", "train.lr=-1"], "'train.lr'", id="run-bad-override"),
    pytest.param(["run", "{cfg}", "--set", "data.name=korate"], "'korate'", id="run-unknown-dataset"),
    pytest.param(["run", "{cfg}", "--seeds", "0"], "--seeds", id="run-zero-seeds"),
    pytest.param(["run", "{cfg}", "--device", "cuda:9"], "cuda:9", id="run-missing-gpu"),
    pytest.param(["run", "{cfg}", "--set", "model.name=lightgcn"],
                 "'lightgcn' is not a model for task 'node'", id="run-model-wrong-for-task"),
    pytest.param(["run", "{cfg}", "--set", 'train.monitor="val_f1"'], "'val_f1'", id="run-unknown-monitor"),
    pytest.param(["run", "--resume", "{tmp}"], "not a run directory", id="run-resume-not-a-run"),
    pytest.param(["data", "info", "korate"], "'korate'", id="data-info-unknown"),
    pytest.param(["data", "info", "karate", "--set", "seed=x"], "'seed'", id="data-info-bad-option-type"),
    pytest.param(["data", "info", "karate", "--set", "=1"], "--set '=1'", id="data-info-option-without-key"),
    pytest.param(["run", "{cfg}", "--set", "task.batch_size=0"], "batch_size", id="run-zero-batch-size"),
    pytest.param(["run", "{cfg}", "--set", "model.hidden_dim=-3"], "hidden_dim",
                 id="run-negative-hidden-dim"),
    pytest.param(["run", "{cfg}", "--set", "model.hidden_dim=0"], "hidden_dim", id="run-zero-hidden-dim"),
]


@pytest.mark.parametrize(("args", "fragment"), CLI_CASES)
def test_cli_user_mistake_exits_2_with_one_line(tmp_path, capsys, args, fragment):
    cfg = write(tmp_path, GOOD)
    args = [a.replace("{cfg}", str(cfg)).replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "run":
        args += ["--out", str(tmp_path / "runs"), "--quiet"]
    code = cli.main(args)
    line = one_line(capsys)
    assert code == 2, line
    assert fragment in line, line


def test_cli_bad_user_file_names_file_and_line(tmp_path, capsys):
    """The data a config points at is checked like the config: exit 2, one line with file and line."""
    (tmp_path / "edges.csv").write_text("src,dst\n0,1\n1,two\n")
    data = f'name = "edgelist"\npath = "{tmp_path}/edges.csv"'
    cfg = write(tmp_path, GOOD.replace('name = "karate"', data))
    assert cli.main(["run", str(cfg), "--out", str(tmp_path / "runs"), "--quiet"]) == 2
    line = one_line(capsys)
    assert "edges.csv" in line and "line 3" in line and "'two'" in line


def test_cli_unknown_option_of_a_generic_loader(tmp_path, capsys):
    (tmp_path / "edges.csv").write_text("0,1\n1,2\n")
    cfg = write(tmp_path, GOOD.replace('name = "karate"',
                                       f'name = "edgelist"\npath = "{tmp_path}/edges.csv"\nweightd = true'))
    code = cli.main(["run", str(cfg), "--out", str(tmp_path / "runs"), "--quiet"])
    line = one_line(capsys)
    assert code == 2 and "weightd" in line and "weighted" in line, line


def test_cli_argparse_mistakes_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["list", "modles"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'modles'" in err and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    """One mistake, two runs of the real console entry point: one line without --debug, a traceback with."""
    cfg = write(tmp_path, b"[data\nname = 1\n")
    cmd = [sys.executable, "-m", "graphnet", "run", str(cfg), "--out", str(tmp_path / "runs")]
    plain = subprocess.run(cmd, env=child_env(), cwd=REPO, capture_output=True, text=True, timeout=120)
    debug = subprocess.run(cmd + ["--debug"], env=child_env(), cwd=REPO, capture_output=True, text=True,
                           timeout=120)
    assert plain.returncode == 2 and plain.stderr.count("\n") == 1 and "Traceback" not in plain.stderr
    assert plain.stderr.startswith("graphnet: error: ") and "exp.toml" in plain.stderr
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr
    assert "graphnet.errors.ConfigError" in debug.stderr and "config.py" in debug.stderr
