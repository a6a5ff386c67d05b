"""Shared test set-up: one torch thread per test process (pytest-xdist already runs one process per core)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
