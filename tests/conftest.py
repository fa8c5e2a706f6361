"""Shared test settings."""
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
