"""Property tests of the Culture quiz world (rlinterp.envs.quizzes): every task, shapes, seeds, tokens, splits."""
import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlinterp.envs.quizzes import (FORWARD, STRUCTS, TASK_NAMES, TASKS, NotApplicable, Quizzes, QuizWorld,
                                   draw_quizzes, quiz_split)

WORLD = QuizWorld()
task_st = st.sampled_from(TASK_NAMES)
seed_st = st.integers(0, 2**31 - 1)


@settings(max_examples=30, deadline=None)
@given(task=task_st, seed=seed_st, size=st.sampled_from([(6, 6), (7, 8)]), n_colors=st.sampled_from([7, 11]))
def test_quiz_shapes_and_colours(task, seed, size, n_colors):
    w = QuizWorld(height=size[0], width=size[1], n_colors=n_colors)
    q = w.generate(3, seed, tasks=[task])
    assert q.grids.shape == (3, 4, *size)
    assert q.grids.min() >= 0 and q.grids.max() < n_colors
    assert (q.task == TASK_NAMES.index(task)).all()
    # no trivial pair: f changes both A and B
    assert not (q.grids[:, 0] == q.grids[:, 1]).all(axis=(1, 2)).any()
    assert not (q.grids[:, 2] == q.grids[:, 3]).all(axis=(1, 2)).any()


@settings(max_examples=10, deadline=None)
@given(seed=seed_st, split=st.sampled_from(["train", "heldout"]))
def test_generation_is_deterministic_under_a_seed(seed, split):
    a = WORLD.generate(8, np.random.default_rng(seed), split=split)
    b = WORLD.generate(8, seed, split=split)
    assert np.array_equal(a.grids, b.grids) and np.array_equal(a.task, b.task)
    c = WORLD.generate(8, seed + 1, split=split)
    assert not np.array_equal(a.grids, c.grids)


@settings(max_examples=40, deadline=None)
@given(task=task_st, seed=seed_st)
def test_task_is_a_function_and_fB_is_determined_by_the_quiz(task, seed):
    """f(A) = apply(theta, A), f(B) = apply(theta, B) (same input -> same output), and every theta' of the task
    that maps A to f(A) and applies to B maps B to the same f(B): the quiz determines the answer."""
    t = TASKS[task]
    rng = np.random.default_rng(seed)
    g, theta = WORLD.sample_quiz(rng, task)
    A, fA, B, fB = g
    assert np.array_equal(t.apply(theta, A), fA) and np.array_equal(t.apply(theta, B), fB)
    assert np.array_equal(t.apply(theta, A.copy()), fA)  # deterministic, input untouched
    assert np.array_equal(g[0], A)
    answers = set()
    for th in t.space(WORLD.n_colors):
        try:
            if np.array_equal(t.apply(th, A), fA):
                answers.add(t.apply(th, B).tobytes())
        except NotApplicable:
            continue
    assert answers == {fB.tobytes()}


@settings(max_examples=20, deadline=None)
@given(seed=seed_st, struct_idx=st.integers(0, len(STRUCTS) - 1))
def test_tokens_round_trip(seed, struct_idx):
    struct, parts = STRUCTS[struct_idx]
    q = WORLD.generate(4, seed)
    tok = WORLD.to_tokens(q, struct)
    assert tok.shape == (4, WORLD.seq_len) and WORLD.seq_len == 4 * (1 + 36)
    assert tok.max() < WORLD.vocab_size
    grids, s = WORLD.from_tokens(tok)
    assert s == struct and np.array_equal(grids, q.grids)
    mask = WORLD.answer_mask(struct, parts)
    assert mask.sum() == sum(parts) * WORLD.grid_len
    assert (tok[:, mask] < WORLD.n_colors).all()  # answers are colour cells, never markers


def test_forward_answer_mask_is_fB():
    q = WORLD.generate(2, 0)
    tok = WORLD.to_tokens(q, FORWARD)
    m = WORLD.answer_mask()
    assert np.array_equal(tok[:, m].reshape(2, 6, 6), q.grids[:, 3])
    assert tok[0, 3 * 37] == WORLD.marker("f_B") and not m[3 * 37]


def test_train_and_heldout_are_disjoint_by_construction():
    tr = WORLD.generate(300, 1, split="train")
    ho = WORLD.generate(100, 1, split="heldout")
    assert (quiz_split(tr.grids, WORLD.heldout_frac) == "train").all()
    assert (quiz_split(ho.grids, WORLD.heldout_frac) == "heldout").all()
    assert not {g.tobytes() for g in tr.grids} & {g.tobytes() for g in ho.grids}
    # the split is a property of the quiz: about heldout_frac of unfiltered quizzes are held out
    rng = np.random.default_rng(2)
    raw = np.stack([WORLD.sample_quiz(rng, TASK_NAMES[k % 10])[0] for k in range(500)])
    share = (quiz_split(raw, WORLD.heldout_frac) == "heldout").mean()
    assert 0.05 < share < 0.16


def test_every_task_draws_on_every_seed_quickly():
    for task in TASK_NAMES:
        q = WORLD.generate(20, 3, tasks=[task])
        assert len(q) == 20


def test_bad_parameters_fail_early():
    with pytest.raises(ValueError, match="height"):
        QuizWorld(height=2)
    with pytest.raises(ValueError, match="n_colors"):
        QuizWorld(n_colors=4)
    with pytest.raises(ValueError, match="task"):
        QuizWorld(tasks=("nope",))
    with pytest.raises(ValueError, match="split"):
        WORLD.generate(2, 0, split="test")
    with pytest.raises(ValueError, match="struct"):
        WORLD.to_tokens(WORLD.generate(1, 0), ("A", "A", "B", "f_B"))
    with pytest.raises(ValueError, match="structure"):
        bad = WORLD.to_tokens(WORLD.generate(1, 0))
        bad[0, 0] = 0
        WORLD.from_tokens(bad)


def test_draw_quizzes_returns_a_figure_with_answers_framed():
    q = WORLD.generate(3, 0)
    ans = q.grids[:, 3].copy()
    ans[1, 0, 0] = (ans[1, 0, 0] + 1) % WORLD.n_colors
    fig = draw_quizzes(q, answers=ans)
    edges = [p.get_edgecolor() for p in fig.axes[0].patches if p.get_linewidth() == 2]
    assert len(edges) == 3
    greens = sum(np.allclose(e[:3], matplotlib.colors.to_rgb("tab:green")) for e in edges)
    assert greens == 2
    assert len(fig.axes[0].texts) == 3  # task names
    with pytest.raises(ValueError, match="answers"):
        draw_quizzes(q, answers=ans[:2])
    assert isinstance(q[0:2], Quizzes) and len(q[0:2]) == 2
