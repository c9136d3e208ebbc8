import os

import pytest
import torch

os.environ.setdefault("MPLBACKEND", "Agg")
# Small tensors run fastest single-threaded; two OpenMP threads on a busy
# 2-core machine made FFTs and convolutions 10-80x slower in these tests.
# This one setting serves every test module (none changes it).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
