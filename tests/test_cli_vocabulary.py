"""One CLI vocabulary: ``--data FILE`` and ``--vars VAR ...`` on every subcommand, old
spellings as hidden deprecated aliases, errors naming the flag typed, ``--model``
names, ``generate``'s help, and ``--quiet`` everywhere."""

from __future__ import annotations

import pytest
import torch

from opflow import _argparse
from opflow.cli import build_parser, main
from opflow.data import generate
from opflow.io import save


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocabulary")
    ds = generate("grf", n=6, resolution=8, seed=0, progress=False)
    ds["u"] = 2 * ds["g"]
    ds["line"] = ds["g"].isel(y=0)
    save(ds, d / "d.nc")
    return d


@pytest.fixture(scope="module")
def run(data):
    out = data / "run"
    assert main(["train", "--model", "fno", "--data", str(data / "d.nc"), "--vars", "g",
                 "--targets", "u", "--epochs", "1", "--out", str(out), "-q"]) == 0
    return out


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    return err.splitlines()[-1] if err else ""


def _parse(argv):
    return build_parser().parse_args(argv)


def test_one_vocabulary_across_subcommands():
    t = _parse(["train", "--model", "fno", "--data", "f.nc", "--vars", "a", "b", "--targets",
                "u", "--out", "r"])
    p = _parse(["predict", "--checkpoint", "c.pt", "--data", "f.nc", "--vars", "a", "--out",
                "p.nc"])
    s = _parse(["solve", "darcy", "--data", "f.nc", "--vars", "a", "--out", "s.nc"])
    assert (t.data, t.vars, t.targets) == ("f.nc", ["a", "b"], ["u"])
    assert (p.data, p.vars) == ("f.nc", ["a"])
    assert (s.data, s.vars) == ("f.nc", ["a"])
    for command in ("train", "predict", "solve"):
        text = build_parser()._subparsers._group_actions[0].choices[command].format_help()
        assert "--data" in text and "--vars" in text and "--quiet" in text
        assert "--input" not in text and "--var " not in text  # aliases are hidden


@pytest.mark.parametrize("argv, dest, value, old", [
    (["train", "--model", "fno", "--input", "a", "--output", "u", "--out", "r"], "vars", ["a"],
     "--input"),
    (["predict", "--checkpoint", "c", "--input", "f.nc", "--input-vars", "a", "--out", "p"],
     "data", "f.nc", "--input"),
    (["solve", "darcy", "--input", "f.nc", "--var", "a", "--out", "s"], "vars", ["a"], "--var"),
])
def test_old_flags_still_work_and_warn_once(argv, dest, value, old, capsys, monkeypatch):
    monkeypatch.setattr(_argparse, "_WARNED", set())
    args = _parse(argv)
    assert getattr(args, dest) == value
    _parse(argv)  # a second time: no second warning
    err = capsys.readouterr().err
    assert err.count(f"warning: {old} is deprecated") == 1, err


def test_errors_name_the_flag_typed(data, run, capsys, monkeypatch):
    monkeypatch.setattr(_argparse, "_WARNED", set())
    d = str(data / "d.nc")
    # train: an unknown variable, new and old spelling
    assert main(["train", "--model", "fno", "--data", d, "--vars", "q", "--targets", "u",
                 "--out", str(data / "r1"), "-q"]) == 1
    assert "argument `--vars`: unknown name 'q'" in _error(capsys)
    assert main(["train", "--model", "fno", "--data", d, "--input", "q", "--output", "u",
                 "--out", str(data / "r1"), "-q"]) == 1
    assert "argument `--input`: unknown name 'q'" in _error(capsys)
    # an option the model does not take
    assert main(["train", "--model", "fno", "--data", d, "--vars", "g", "--targets", "u",
                 "--out", str(data / "r1"), "-q", "--option", "bogus=1"]) == 1
    err = _error(capsys)
    assert "argument `--option`: unknown name 'bogus'" in err and "'width'" in err
    # predict: a variable on a grid the model does not take, and no --data
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--data", d, "--vars",
                 "line", "--out", str(data / "p.nc"), "-q"]) == 1
    assert "argument `--vars`: expected a Field on a 2-D grid" in _error(capsys)
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--input", d,
                 "--input-vars", "zz", "--out", str(data / "p.nc"), "-q"]) == 1
    assert "argument `--input-vars`: unknown name 'zz'" in _error(capsys)
    assert main(["predict", "--checkpoint", str(run / "best.pt"), "--out",
                 str(data / "p.nc")]) == 1
    assert "argument `--data`" in _error(capsys)
    # solve: an option of the problem, more than one variable, no --data
    assert main(["solve", "darcy", "--data", d, "--vars", "g", "--out", str(data / "s.nc"),
                 "--option", "zz=1", "-q"]) == 1
    assert "argument `--option`: unknown name 'zz'" in _error(capsys)
    assert main(["solve", "darcy", "--data", d, "--vars", "g", "u", "--out",
                 str(data / "s.nc"), "-q"]) == 1
    assert "argument `--vars`: expected one input variable" in _error(capsys)
    assert main(["solve", "darcy", "--vars", "g", "--out", str(data / "s.nc"), "-q"]) == 1
    assert "argument `--data`" in _error(capsys)
    assert not (data / "s.nc").exists() and not (data / "p.nc").exists()


def test_model_names(data, tmp_path, capsys):
    from opflow.train.model_setup import model_choices, model_name

    assert list(model_choices())[:4] == ["fno", "mgno", "deeponet", "pod-deeponet"]
    assert model_name("FNO") == "fno" and model_name("POD_DeepONet") == "pod-deeponet"
    assert model_name("Pod-DeepONet") == "pod-deeponet" and model_name("nope") == "nope"
    parser = build_parser()
    assert _parse(["train", "--model", "MgNO", "--out", "r"]).model == "mgno"
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "{fno,mgno,deeponet,pod-deeponet" in help_text
    with pytest.raises(SystemExit):
        _parse(["train", "--model", "transformer", "--out", "r"])
    assert "argument --model: invalid choice: 'transformer'" in capsys.readouterr().err
    # the name in a TOML file is checked the same way, before any data are read
    toml = tmp_path / "run.toml"
    toml.write_text('[model]\nname = "Transformer"\n')
    assert main(["train", "--config", str(toml), "--data", str(data / "d.nc"), "--vars", "g",
                 "--targets", "u", "--out", str(tmp_path / "r"), "-q"]) == 1
    err = _error(capsys)
    assert "argument `--model`: unknown name 'Transformer'" in err and "'fno'" in err


def test_generate_help_lists_recipes_defaults_and_options():
    text = build_parser()._subparsers._group_actions[0].choices["generate"].format_help()
    assert "darcy: Darcy flow" in text and "--resolution 65" in text
    assert "--option rtol=1e-08; a positive finite number" in text
    assert "--option n_saves=20" in text and "--option periodic=false; true or false" in text
    assert "--option dt=null" in text


def test_every_subcommand_takes_quiet():
    sub = build_parser()._subparsers._group_actions[0].choices
    for name, parser in sub.items():
        assert any("--quiet" in a.option_strings and "-q" in a.option_strings
                   for a in parser._actions), name


def test_generate_quiet_prints_only_the_result(tmp_path, capsys):
    torch.manual_seed(0)
    assert main(["generate", "grf", "--n", "2", "--resolution", "8", "--out",
                 str(tmp_path / "g.nc"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("wrote ")
