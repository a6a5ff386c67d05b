"""Shared test set-up: one torch thread per test process (pytest-xdist already runs one process per core), and a
fresh copy of the small demo book project for pipeline tests."""
import shutil
from pathlib import Path

import pytest
import torch

DEMO_PROJECT = Path(__file__).parent / "fixtures" / "demo_project"


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A fresh copy of tests/fixtures/demo_project (one analysis, a profile, a bibliography)."""
    root = tmp_path / "proj"
    shutil.copytree(DEMO_PROJECT, root)
    return root
