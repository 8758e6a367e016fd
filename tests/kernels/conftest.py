"""Kernel tests run with kernels enabled, also when the suite runs with ``MNEMONET_KERNELS=0``."""

import pytest

from mnemonet import kernels


@pytest.fixture(autouse=True)
def _kernels_on():
    with kernels.enabled(True):
        yield
