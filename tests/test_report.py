"""claim() and config_table(): the guards of the book's prose and its hyper-parameter tables."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from rlinterp.pipeline.report import ClaimError, claim, config_table, config_table_text, field_docs


def test_claim_true_returns_none_for_python_numpy_and_torch_bools():
    assert claim(True, "holds") is None
    assert claim(np.float64(1e-4) < 1e-3, "numpy comparison") is None
    assert claim(np.array([2.0]) > 1.0, "one-element boolean array") is None
    assert claim(torch.tensor(3.0) > 2.0, "0-d boolean tensor") is None
    assert claim(bool(np.all(np.arange(3) >= 0)), "all") is None


def test_claim_false_raises_naming_the_claim():
    with pytest.raises(ClaimError, match="below the 1e-3 tolerance"):
        claim(np.float32(2e-3) < 1e-3, "completeness error below the 1e-3 tolerance")
    with pytest.raises(AssertionError):  # a ClaimError is an AssertionError: papermill fails the chapter
        claim(False, "18,432 edges")
    with pytest.raises(ClaimError):
        claim(torch.tensor([False]), "tensor")


@pytest.mark.parametrize("cond", [0.3, 1, 0, np.float64(0.3), np.int64(1), "yes", None, [True],
                                  np.array([True, True]), torch.tensor([1.0])])
def test_claim_refuses_non_bool_conditions(cond):
    with pytest.raises(TypeError, match="condition must be a bool"):
        claim(cond, "a forgotten comparison")


@pytest.mark.parametrize("msg", ["", "   ", None, 3])
def test_claim_needs_a_message(msg):
    with pytest.raises(TypeError, match="message"):
        claim(True, msg)


@dataclass
class _Cfg:
    """A toy config.

    lr: learning rate of Adam (from the docstring)
    """

    width: int = 128  # width of the hidden layer
    lr: float = 1e-3  # overridden by the docstring line
    gamma: float = field(default=0.95, metadata={"help": "discount factor"})
    name: str = "mlp"
    buffer_size: int = 1_000_000
    extra: dict = field(default_factory=dict)


def test_field_docs_reads_comments_docstring_and_metadata():
    docs = field_docs(_Cfg)
    assert docs == {"width": "width of the hidden layer", "lr": "learning rate of Adam (from the docstring)",
                    "gamma": "discount factor"}


def test_config_table_renders_every_field_with_value_and_meaning():
    text = config_table_text(_Cfg(width=64))
    lines = text.splitlines()
    assert lines[0] == "| field | value | meaning |"
    assert "| width | 64 | width of the hidden layer |" in lines
    assert "| lr | 0.001 | learning rate of Adam (from the docstring) |" in lines
    assert "| gamma | 0.95 | discount factor |" in lines
    assert "| name | `mlp` |  |" in lines
    assert "| buffer_size | 1,000,000 |  |" in lines
    assert len(lines) == 2 + 6
    assert config_table(_Cfg()).data == config_table_text(_Cfg())


def test_config_table_include_exclude_and_errors():
    text = config_table_text(_Cfg(), include=["gamma", "width"], exclude=["width"])
    assert [line.split(" | ")[0] for line in text.splitlines()[2:]] == ["| gamma"]
    with pytest.raises(ValueError, match="no field"):
        config_table_text(_Cfg(), include=["depth"])
    with pytest.raises(TypeError, match="dataclass instance"):
        config_table_text(_Cfg)
    with pytest.raises(TypeError, match="dataclass instance"):
        config_table_text({"lr": 1e-3})


def test_config_table_of_the_agents_configs_reads_their_comments():
    from rlinterp.learners.dqn import DQNConfig

    text = config_table_text(DQNConfig())
    assert "| d_hidden | 128 | width of both hidden layers |" in text
