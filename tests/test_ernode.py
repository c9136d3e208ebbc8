"""ERNODE / SRNODE on the rings classification (examples/ernode_nfe.py).

Measured (one thread, Tsit5 rtol 1e-5 atol 1e-7, 256 training points):
* fast test (seed 0, 128 training points, 100 Adam steps, ~25 s on a busy machine):
  unregularized prediction NFE 98, ERNODE (weight 1e5) 32, test accuracy 1.000 for both
  (asserted: >= 1.5x fewer NFE, accuracy within 0.02);
* benchmark setting (256 points, 200 steps, seeds 0-2, benchmarks/bench_ernode.py):
  NFE 88.0 +- 9.2 -> 26.0 +- 0.0 (3.4x), accuracy 0.998 +- 0.003 -> 1.000 +- 0.000;
  asserted per seed in the slow test.
"""

import importlib.util
from pathlib import Path

import pytest
import torch

from opflow.errors import InvalidArgumentError

_PATH = Path(__file__).resolve().parents[1] / "examples" / "ernode_nfe.py"


def _example():
    spec = importlib.util.spec_from_file_location("ernode_nfe", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rings_data_match_their_labels():
    x, labels = _example().make_rings(500, torch.Generator().manual_seed(0))
    r = x.norm(dim=1)
    assert x.shape == (500, 2) and labels.shape == (500,)
    assert bool((r[labels == 0] < 1).all())
    assert bool(((r[labels == 1] >= 1.5) & (r[labels == 1] < 2.5)).all())


def test_bad_arguments_name_the_argument():
    ex = _example()
    with pytest.raises(InvalidArgumentError, match="`regularizer`"):
        ex.train_rings("ridge", 1.0)
    with pytest.raises(InvalidArgumentError, match="`steps`"):
        ex.train_rings("none", steps=0)
    with pytest.raises(InvalidArgumentError, match="`n`"):
        ex.make_rings(0, torch.Generator())


def test_ernode_cuts_prediction_nfe_at_equal_accuracy():
    ex = _example()
    kw = dict(seed=0, steps=100, n_train=128, n_test=1000)
    plain = ex.train_rings("none", **kw)
    ernode = ex.train_rings("error", 1e5, **kw)
    assert plain["test_accuracy"] >= 0.97
    assert ernode["test_accuracy"] >= plain["test_accuracy"] - 0.02
    assert ernode["predict_nfe"] * 1.5 <= plain["predict_nfe"]


@pytest.mark.slow
def test_ernode_claim_over_three_seeds():
    ex = _example()
    for seed in range(3):
        plain = ex.train_rings("none", seed=seed)
        ernode = ex.train_rings("error", 1e5, seed=seed)
        assert ernode["test_accuracy"] >= plain["test_accuracy"] - 0.01
        assert ernode["predict_nfe"] * 1.5 <= plain["predict_nfe"]
