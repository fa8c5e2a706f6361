"""Test helpers shared by several test folders (a module, not ``conftest``: each test folder may have its own
conftest.py, and ``from conftest import ...`` would pick whichever was imported first)."""
import contextlib


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
