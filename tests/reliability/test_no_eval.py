"""No code path evaluates strings or unpickles files; config paths cannot leave the run folder.

The scan is AST-based over every module of ``opflow/`` (comments and
docstrings that mention ``torch.load`` do not count; calls do).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

from opflow.cli import main

SOURCES = sorted((ROOT / "opflow").rglob("*.py"))
BANNED_NAMES = {"eval", "exec", "compile", "execfile", "input"}
BANNED_ATTRS = {("pickle", "load"), ("pickle", "loads"), ("cPickle", "load"),
                ("marshal", "load"), ("marshal", "loads"), ("yaml", "load"),
                ("yaml", "unsafe_load"), ("dill", "load"), ("dill", "loads"),
                ("shelve", "open"), ("os", "system"), ("os", "popen")}
# (module path, callee) pairs reviewed and allowed, with the reason.
ALLOWED = {
    # the module name is f"{__package__}.{name}" with `name` from opflow's own constants
    ("opflow/kernels/backend.py", "importlib.import_module"),
}


def _callee(node: ast.Call) -> str:
    parts, f = [], node.func
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    rel = path.relative_to(root).as_posix()
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if not isinstance(node, ast.Call):
            continue
        name = _callee(node)
        where = f"{rel}:{node.lineno} {name}"
        if (rel, name) in ALLOWED:
            continue
        head = tuple(name.split(".")[-2:])
        if name in BANNED_NAMES or head in BANNED_ATTRS:
            found.append(where)
        elif name.endswith("torch.load"):
            weights_only = {k.arg: k.value for k in node.keywords}.get("weights_only")
            if not (isinstance(weights_only, ast.Constant) and weights_only.value is True):
                found.append(where + " without weights_only=True")
        elif name in ("__import__", "importlib.import_module"):
            if not (node.args and isinstance(node.args[0], ast.Constant)):
                found.append(where + " with a computed module name")
        elif name.endswith("subprocess.run") or name.endswith("subprocess.Popen"):
            shell = {k.arg: k.value for k in node.keywords}.get("shell")
            if isinstance(shell, ast.Constant) and shell.value:
                found.append(where + " with shell=True")
    return found


def test_the_scan_sees_the_whole_package():
    assert len(SOURCES) > 50
    assert any(p.name == "checkpoint.py" for p in SOURCES)


@pytest.mark.parametrize("path", SOURCES, ids=[p.relative_to(ROOT).as_posix() for p in SOURCES])
def test_no_string_evaluation_or_unsafe_loading(path):
    assert _problems(path) == []


def test_the_detector_reports_every_banned_form(tmp_path):
    (tmp_path / "opflow").mkdir()
    bad = tmp_path / "opflow" / "bad.py"
    bad.write_text("import pickle, torch, yaml, importlib\n"
                   "eval('1')\nexec('x = 1')\npickle.loads(b'')\nyaml.load('a')\n"
                   "torch.load('f.pt')\ntorch.load('f.pt', weights_only=False)\n"
                   "torch.load('f.pt', weights_only=True)\n"
                   "importlib.import_module(name)\n__import__('sys')\n")
    lines = [f.split(" ", 1)[0].rsplit(":", 1)[1] for f in _problems(bad, tmp_path)]
    assert lines == ["2", "3", "4", "5", "6", "7", "9"], lines


# -------------------------------------------------- paths from configs
@pytest.mark.parametrize("toml, key", [
    ('[train]\nout_dir = "../escape"\n', "out_dir"),
    ('[data]\nout = "../escape.nc"\n', "out"),
    ('[train]\ncheckpoint = "/tmp/evil.pt"\n', "checkpoint"),
    ('[model]\nname = "../../evil"\n', "evil"),
], ids=["train-out_dir", "data-out", "train-checkpoint", "model-name"])
def test_config_values_cannot_choose_output_paths(toml, key, tmp_path, data_file, capsys):
    run = tmp_path / "runs" / "r1"
    run.parent.mkdir()
    config = tmp_path / "run.toml"
    config.write_text(toml + f'[data]\npath = "{data_file}"\ninput = "a"\noutput = "u"\n'
                      if "[data]" not in toml else toml.replace(
                          "[data]\n", f'[data]\npath = "{data_file}"\ninput = "a"\n'
                          'output = "u"\n'))
    if "[model]" not in toml:
        argv = ["train", "--model", "fno", "--config", str(config), "--out", str(run),
                "--epochs", "1", "--quiet"]
    else:
        argv = ["train", "--config", str(config), "--out", str(run), "--epochs", "1", "--quiet"]
    before = sorted(p for p in tmp_path.rglob("*"))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert key in err and "error:" in err, err
    assert sorted(p for p in tmp_path.rglob("*")) == before
    assert not (tmp_path / "escape").exists() and not Path("/tmp/evil.pt").exists()


def test_a_training_run_writes_only_inside_its_out_folder(tmp_path, data_file, capsys):
    config = tmp_path / "run.toml"
    config.write_text(f'[data]\npath = "{data_file}"\ninput = "a"\noutput = "u"\n'
                      '[train]\nepochs = 1\nbatch_size = 4\n'
                      '[model]\nname = "fno"\nwidth = 4\nmodes = 2\nlayers = 1\n')
    before = {p for p in tmp_path.rglob("*")}
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--quiet"]) == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all(p == run or run in p.parents for p in new), sorted(new)


@pytest.mark.parametrize("family", ["../../evil", "/tmp/evil"])
def test_pretrain_family_names_are_a_closed_list(family, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["pretrain", "--families", family, "--out", str(tmp_path / "pt")])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "pt").exists()
