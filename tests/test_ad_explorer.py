"""The AD explorer Streamlit app, run headless with streamlit.testing (AppTest)."""
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "lib" / "rlinterp" / "explore" / "ad.py")


def _probs(at):
    df = at.dataframe[0].value
    return dict(zip(df["action"], df["probability"]))


def test_explorer_builds_edits_and_walks():
    # the first run fits the probes on rollouts over every goal: ~100 s on a free CPU core, more on a loaded machine
    at = AppTest.from_file(APP, default_timeout=600).run()
    assert not at.exception, at.exception
    p = _probs(at)
    assert list(p) == ["left", "right", "up", "down", "noop"]
    assert abs(sum(p.values()) - 1) < 1e-4
    probes = at.dataframe[1].value
    assert len(probes) == 3 and (probes["found acc"] > 0.5).all()

    # expert context to the goal (1, 1): the model heads there (left or up from the centre) and the probe sees "found"
    at.selectbox(key="kind").set_value("expert").run()
    assert not at.exception
    p_exp = _probs(at)
    assert p_exp["left"] + p_exp["up"] > 0.5
    assert at.dataframe[1].value["P(found)"].iloc[-1] > 0.5

    # erasing the rewards of the same context makes it much less goal-directed
    at.radio(key="mode").set_value("erase").run()
    p_erased = _probs(at)
    assert p_erased["left"] + p_erased["up"] < p_exp["left"] + p_exp["up"]
    assert at.dataframe[1].value["P(found)"].iloc[-1] < 0.5

    # walking a step changes the query position and the probabilities
    at.button(key="act_left").click().run()
    assert at.session_state["path"] == [0]
    assert not np.allclose(list(_probs(at).values()), list(p_erased.values()))
    at.button(key="undo").click().run()
    assert at.session_state["path"] == []

    # a bad rewarded cell is reported, not raised
    at.radio(key="mode").set_value("cells").run()
    at.text_input(key="cells").input("12,3").run()
    assert not at.exception
    assert any("Cannot build this context" in e.value for e in at.error)
