"""The one argument-validation helper: numpy numbers accepted, bools and nan refused, ranges and clear messages."""
import math

import numpy as np
import pytest

from rlinterp.validation import check_choice, check_float, check_int, check_prob


def test_check_int():
    assert check_int("n", 3, 1) == 3 and type(check_int("n", np.int64(3), 1)) is int
    assert check_int("n", np.int32(5), 1, 5) == 5
    for bad in (True, np.bool_(True), 2.0, "3", None, np.float64(2.0)):
        with pytest.raises(ValueError, match="n must be an integer"):
            check_int("n", bad, 1)
    with pytest.raises(ValueError, match=r"n_coins must be an integer >= 2, got 1"):
        check_int("n_coins", 1, 2)
    with pytest.raises(ValueError, match=r"in \[0, 4\]"):
        check_int("slot", 5, 0, 4)


def test_check_float():
    assert check_float("sigma", 0.3, 0.0) == 0.3
    assert type(check_float("sigma", np.float32(0.5), 0.0)) is float and check_float("x", np.int64(2)) == 2.0
    for bad in (True, "0.3", None, math.nan, np.nan, math.inf):
        with pytest.raises(ValueError, match="sigma must be"):
            check_float("sigma", bad, 0.0)
    assert check_float("t", math.inf, allow_inf=True) == math.inf
    with pytest.raises(ValueError, match=r"sigma must be a finite number >= 0.0, got -0.1"):
        check_float("sigma", -0.1, 0.0)
    with pytest.raises(ValueError, match=r"<= 1"):
        check_float("x", 2, maximum=1)


def test_check_prob_and_choice():
    assert check_prob("eps", 0.0) == 0.0 and check_prob("gamma", 0.5, 0.0, 0.9999) == 0.5
    with pytest.raises(ValueError, match=r"gamma must be a finite number in \[0.0, 0.9999\]"):
        check_prob("gamma", 1.0, 0.0, 0.9999)
    assert check_choice("mode", "keep", ("keep", "drop")) == "keep"
    with pytest.raises(ValueError, match=r"mode must be one of \['keep', 'drop'\], got 'x'"):
        check_choice("mode", "x", ("keep", "drop"))


def test_check_resume_config_refuses_only_the_fields_that_may_not_change():
    from rlinterp.validation import check_resume_config

    check_resume_config("run", {"lr": 1e-3, "steps": 10}, {"lr": 1e-3, "steps": 20}, ("steps",))
    with pytest.raises(ValueError, match=r"different config \{'lr': \(0\.001, 0\.002\)\}.*only steps may change"):
        check_resume_config("run", {"lr": 1e-3, "steps": 10}, {"lr": 2e-3, "steps": 20}, ("steps",))
    with pytest.raises(ValueError, match="'seed': \\(None, 1\\)"):  # a field the saved run did not have
        check_resume_config("run", {}, {"seed": 1})
