"""claim() and config_table(): the guards of the book's prose and its hyper-parameter tables."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from rlinterp.pipeline.report import ClaimError, claim, config_table, config_table_text, field_docs, fmt


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


@pytest.mark.parametrize("value, digits, text", [
    (0.3, 4, "0.3"),                 # no padding zeros: one rule for the whole book
    (14.00704, 4, "14.007"),
    (2.0, 4, "2.0"),                 # a float never reads as an integer
    (-0.3, 2, "-0.3"),
    (0.99999, 4, "1.0"),
    (5.628e-05, 4, "5.628 × 10⁻⁵"),  # never "5.628e-05"
    (-1e-05, 4, "-1 × 10⁻⁵"),
    (1.5e8, 4, "1.5 × 10⁸"),
    (123456.0, 4, "123456.0"),
    (0.0, 4, "0.0"),
    (-0.00001, 2, "-1 × 10⁻⁵"),
    (float("nan"), 4, "–"),
    (float("inf"), 4, "∞"),
    (7, 4, "7"),
    (True, 4, "True"),
])
def test_fmt_is_the_books_one_number_rule(value, digits, text):
    assert fmt(value, digits) == text


def test_fmt_numpy_scalars_like_python_numbers():
    import numpy as np

    assert fmt(np.float32(0.25)) == "0.25" and fmt(np.int64(3)) == "3" and fmt(np.float64(5.628e-05)) == "5.628 × 10⁻⁵"


# ------------------------------------------------------------------------------------- animations and table widths
def _gif_and_png():
    import io

    from PIL import Image

    frames = [Image.new("RGB", (8, 6), c) for c in ("red", "blue")]
    gif, png = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    frames[0].save(png, format="PNG")
    return gif.getvalue(), png.getvalue()


def test_animation_is_one_bundle_html_gif_png_still_and_alt_text():
    from IPython.core.formatters import DisplayFormatter

    from rlinterp.pipeline.report import animation

    gif, png = _gif_and_png()
    data, _ = DisplayFormatter().format(animation(gif, png, alt="an <episode>"))
    assert set(data) == {"text/html", "image/png", "text/plain"}  # no image/gif: Quarto has no such output
    assert data["text/html"].startswith('<img src="data:image/gif;base64,')
    assert 'alt="an &lt;episode&gt;"' in data["text/html"]
    import base64

    assert base64.b64decode(data["image/png"]) == png
    assert data["text/plain"] == "an <episode>"
    still_only, _ = DisplayFormatter().format(animation(None, png, alt="a still"))
    assert set(still_only) == {"image/png", "text/plain"}


@pytest.mark.parametrize("gif, png, alt, err", [(b"GIF89a", b"not a png", "x", ValueError),
                                                (b"PNG", None, "x", ValueError),
                                                (None, b"\x89PNG\r\n\x1a\n", "", TypeError),
                                                (None, b"\x89PNG\r\n\x1a\n", None, TypeError)])
def test_animation_refuses_bad_arguments(gif, png, alt, err):
    from rlinterp.pipeline.report import animation

    with pytest.raises(err):
        animation(gif, png, alt)


def test_table_columns_are_sized_by_content_so_short_columns_do_not_wrap_word_by_word():
    """Pandoc (and Quarto) size a long pipe table's columns by its separator dashes: equal dashes gave every column
    the same width, so a column of prose squeezed into a seventh of the page."""
    import pypandoc

    from rlinterp.pipeline.report import column_weights, md_table_text

    rows = [{"policy": "Ego-attention DQN", "mean return": 6.5, "95% CI": 0.45, "arrival rate": 0.585, "steps": 13,
             "note": "the agent of this chapter, trained with the paper's budget of 4000 episodes"}] * 2
    text = md_table_text(rows)
    sep = text.splitlines()[1]
    dashes = [len(c) for c in sep.strip("|").split("|")]  # colons count as dashes for pandoc
    assert dashes == column_weights(list(rows[0]), [[c.strip() for c in text.splitlines()[2].strip("|").split(" | ")]])
    assert dashes[-1] == max(dashes) and dashes[0] > dashes[2]  # the prose column is widest, the CI narrow
    for name, d in zip(rows[0], dashes):  # never narrower than the longest word of the header (+ padding)
        assert d >= max(len(w) for w in name.split()) + 3
    typ = pypandoc.convert_text(text, "typst", format="markdown")
    widths = [float(w) for w in re.search(r"columns: \(([^)]*)\)", typ).group(1).replace("%", "").split(",")]
    assert widths[-1] > 30 and min(widths) > 4  # not 6 x 16.67%
    cells = sep.strip("|").split("|")  # alignment kept: text left, numbers right
    assert [c.startswith(":") for c in cells] == [True, False, False, False, False, True]
    assert [c.endswith(":") for c in cells] == [False, True, True, True, True, False]


def test_column_weights_keep_every_word_whole_when_the_table_is_wider_than_a_line():
    from rlinterp.pipeline.report import column_weights

    columns = ["chapter", "profile", "seconds", "executed", "cache key", "parameters (≠ default)"]
    cells = [["highway/03_attributions", "smoke", "not built", "2026-12-01 17:58", "ca3c4bc014c9",
              "mc_games=2000, n_coins=3, n_flips=8, sweep_flips=[4, 8], sweep_sigmas=[0.1, 0.3, 1.0]"]]
    w = column_weights(columns, cells)
    assert abs(sum(w) - 100) <= 3  # the line is shared out
    assert w[0] >= len("highway/03_attributions") + 3 and w[1] >= len("profile") + 3  # needs kept
    assert 3 + len("sweep_sigmas=[0.1,") < w[-1] < 40 + 3  # the long text column takes a share of the rest
    assert column_weights(["a", "b"], [["x", "yy"]]) == [6, 6]  # a small table: what it wants

