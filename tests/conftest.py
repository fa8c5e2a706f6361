"""Shared test settings."""
import contextlib

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Run each test on one torch thread.

    The test machines have 2 cores shared with other work; a second OpenMP thread then waits on a busy core and
    small operations become up to 10x slower.  Results do not depend on the thread count.
    """
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@contextlib.contextmanager
def tiny_arch(name: str, **cfg):
    """Register a tiny VGG-style architecture under ``name`` and keep the LIF loop eager (no torch.compile start-up
    cost) for the duration; both are restored afterwards."""
    from snnlib import neurons
    from snnlib.models import ARCHS
    ARCHS[name] = dict(cfg, dataset="cifar10")
    old = neurons.set_lif_backend("eager")
    try:
        yield name
    finally:
        neurons.set_lif_backend(old)
        ARCHS.pop(name, None)
