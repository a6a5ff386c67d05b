"""Context construction and editing for the AD explorer and the RL-or-imitation chapter (rlinterp.studies.ad)."""
import numpy as np
import pytest
from rlinterp.models import ad_transformer as adt
from rlinterp.studies import ad as ads
from rlinterp.learners import sources



@pytest.fixture(scope="module")
def model():
    from rlinterp import artifacts

    return artifacts.load("ad/darkroom_ad")


def _goal_cell(g):
    return g[1] * 9 + g[0]


def test_set_token_rewards_reproduces_true_rewards_and_erases():
    goals = np.array([[1, 1], [7, 3], [4, 6]])
    h = sources.darkroom_q_learning(goals, 30, seed=3)
    tok = adt.pack_tokens(h["obs"].reshape(3, -1), h["actions"].reshape(3, -1), h["rewards"].reshape(3, -1), 81, 5, 20)
    rewarded = np.zeros((3, 81), bool)
    rewarded[np.arange(3), [_goal_cell(g) for g in goals]] = True
    assert (tok % 2).sum() > 0  # the learners found their goals at least once
    np.testing.assert_array_equal(ads.set_token_rewards(tok, rewarded), tok)
    erased = ads.set_token_rewards(tok, np.zeros((3, 81), bool))
    assert (erased % 2).sum() == 0
    np.testing.assert_array_equal(erased // 2, tok // 2)  # cells and previous actions untouched
    with pytest.raises(ValueError, match="rewarded must be"):
        ads.set_token_rewards(tok, np.zeros((2, 81), bool))


def test_edit_rewards_cells_toggle_drop():
    ctx = ads.make_context((7, 3), "source", upto=60, n_episodes=3, stride=4, seed=1)
    assert ctx.obs.shape == (3, 20)
    same = ads.edit_rewards(ctx, "cells", [(7, 3)])
    np.testing.assert_array_equal(same.rewards, ctx.rewards)
    assert ads.edit_rewards(ctx, "erase").rewards.sum() == 0
    t = ads.edit_rewards(ctx, "erase", toggles=[(1, 5)])
    assert t.rewards.sum() == 1 and t.rewards[1, 5] == 1
    d = ads.edit_rewards(ctx, drop=[0])
    np.testing.assert_array_equal(d.obs, ctx.obs[1:])
    with pytest.raises(ValueError, match="mode"):
        ads.edit_rewards(ctx, "nonsense")
    with pytest.raises(ValueError, match="toggle"):
        ads.edit_rewards(ctx, toggles=[(5, 0)])
    with pytest.raises(ValueError, match="goal"):
        ads.make_context((9, 0))
    with pytest.raises(ValueError, match="upto"):
        ads.make_context((1, 1), "source", upto=3)


def test_context_tokens_match_rollout_tokens(model):
    goal = np.array([[2, 6]])
    h = ads.rollout_darkroom(model, goal, n_episodes=4, seeds=5)
    ctx = ads.Context(h["obs"][0, :3], h["actions"][0, :3], h["rewards"][0, :3], goal[0])
    for t in (0, 7):
        tok = ads.context_tokens(ctx, h["actions"][0, 3, :t], 4)
        np.testing.assert_array_equal(tok[0], h["tokens"][0, :60 + t + 1])


def test_play_after_deterministic_and_reward_driven(model):
    goals = np.array([[1, 1], [7, 2], [2, 7], [8, 8], [0, 4], [6, 0]])
    ex = sources.darkroom_expert(goals, 3, seed=0)
    tok = adt.pack_tokens(ex["obs"].reshape(6, -1), ex["actions"].reshape(6, -1), ex["rewards"].reshape(6, -1),
                          81, 5, 20)
    a = ads.play_after(model, tok, goals, n_plays=2, seed=1)
    b = ads.play_after(model, tok, goals, n_plays=2, seed=1)
    np.testing.assert_array_equal(a["cells"], b["cells"])
    assert a["cells"].shape == (6, 2, 20) and np.allclose(a["p0"].sum(-1), 1, atol=1e-5)
    gc = np.array([_goal_cell(g) for g in goals])
    np.testing.assert_array_equal(a["rewards"], (a["cells"] == gc[:, None, None]).astype(np.float32))
    erased = ads.play_after(model, ads.set_token_rewards(tok, np.zeros((6, 81), bool)), goals, n_plays=2, seed=1)
    # expert contexts with their rewards lead to the goal far more often than the same paths without rewards
    assert a["rewards"].sum() > erased["rewards"].sum()
    with pytest.raises(ValueError, match="prefix"):
        ads.play_after(model, tok[:, :30], goals)


def test_shipped_model_cached_rollout_matches_full_forward_across_window_slides(model):
    """The shipped model (10-episode context): the cached logits equal a full forward pass over the sliding window,
    checked in the first episode, at the last step before the first slide and across the slides."""
    import torch

    K, T = model.ad_cfg.n_ctx_episodes, model.ad_cfg.episode_len
    goals = np.array([[2, 6], [8, 1]])
    h = ads.rollout_darkroom(model, goals, n_episodes=K + 2, seeds=[3, 4])
    with torch.no_grad():
        for i in (0, 13, K * T - 1, K * T, K * T + 1, K * T + 17, (K + 1) * T, (K + 2) * T - 1):
            e, t = divmod(i, T)
            ref = model(torch.from_numpy(h["tokens"][:, max(0, e - K + 1) * T:i + 1]))[:, -1].numpy()
            np.testing.assert_allclose(h["logits"][:, e, t], ref, atol=1e-4, rtol=1e-5)
