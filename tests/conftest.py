"""Test-wide settings: one intra-op thread (small models run fastest so on shared 2-core machines), Agg plots."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
