"""``OPFLOW_SMOKE=1``: toy sizes for every command that takes sizes, one line saying so."""

from __future__ import annotations

import xarray as xr

from opflow._smoke import CAPS, GENERATE_CAPS, apply_smoke, smoke_enabled
from opflow.cli import build_parser, main
from opflow.data.generation import RECIPES


def _parse(line: str):
    return build_parser().parse_args(line.split())


def test_the_variable_is_off_unless_set_to_a_true_value():
    assert not smoke_enabled({}) and not smoke_enabled({"OPFLOW_SMOKE": "0"})
    assert not smoke_enabled({"OPFLOW_SMOKE": "false"}) and not smoke_enabled({"OPFLOW_SMOKE": ""})
    assert smoke_enabled({"OPFLOW_SMOKE": "1"}) and smoke_enabled({"OPFLOW_SMOKE": "yes"})


def test_unset_changes_nothing(capsys):
    args = _parse("generate darcy --n 1000 --resolution 85 --out d.nc")
    assert apply_smoke(args, {}) == []
    assert (args.n, args.resolution, args.option) == (1000, 85, None)
    assert capsys.readouterr().err == ""


def test_sizes_are_capped_and_one_line_says_so(capsys):
    args = _parse("generate navier-stokes --n 100 --resolution 64 --out ns.nc "
                  "--option n_saves=20 --option nu=0.001")
    changed = apply_smoke(args, {"OPFLOW_SMOKE": "1"})
    assert (args.n, args.resolution) == (8, 16)
    assert dict(args.option) == {"nu": 0.001, "n_saves": 2}
    assert "--n 8 (was 100)" in changed and "--option n_saves=2 (was 20)" in changed
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "OPFLOW_SMOKE=1" in err[0] and "--resolution 16 (was 64)" in err[0]


def test_defaults_and_small_values(capsys):
    env = {"OPFLOW_SMOKE": "1"}
    train = _parse("train --model fno --data d.nc --vars a --targets u --out r")
    apply_smoke(train, env)
    assert train.epochs == CAPS["train"]["epochs"]  # --epochs left at its default of 100
    small = _parse("generate darcy --n 3 --resolution 9 --out d.nc")
    apply_smoke(small, env)
    assert (small.n, small.resolution) == (3, 9)  # already small: kept
    ks = _parse("generate kuramoto-sivashinsky --n 1200 --out ks.nc")
    apply_smoke(ks, env)
    assert ks.resolution == 64 and dict(ks.option)["t_start"] == 5.0
    demo = _parse("demo heat --out o")
    apply_smoke(demo, env)
    assert (demo.resolution, demo.batch, demo.n_train) == (16, 2, 200)  # darcy's flags kept
    capsys.readouterr()
    assert apply_smoke(_parse("info"), env) == [] and capsys.readouterr().err == ""


def test_every_cap_names_a_flag_of_its_command():
    sub = build_parser()._subparsers._group_actions[0].choices
    for key, caps in CAPS.items():
        dests = {a.dest for a in sub[key.split()[0]]._actions}
        assert set(caps) <= dests, key
    assert set(GENERATE_CAPS) - {"*"} <= set(RECIPES)
    for name, caps in GENERATE_CAPS.items():
        if name != "*":
            options = set(caps) - {"resolution"}
            params = RECIPES[name].make.__code__.co_varnames
            assert options <= set(params), name


def test_generate_under_smoke_writes_the_toy_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPFLOW_SMOKE", "1")
    out = tmp_path / "d.nc"
    assert main(["generate", "darcy", "--n", "1000", "--resolution", "85", "--out", str(out),
                 "--quiet"]) == 0
    ds = xr.open_dataset(out)
    assert dict(ds.sizes) == {"sample": 8, "x": 33, "y": 33}
    assert "OPFLOW_SMOKE=1" in capsys.readouterr().err


def test_every_subcommand_help_says_how_long_it_takes():
    sub = build_parser()._subparsers._group_actions[0].choices
    for name, parser in sub.items():
        text = " ".join(parser.format_help().split())
        assert "2-core laptop CPU" in text, name
