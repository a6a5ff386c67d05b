"""Algorithm Distillation: the Dark Room env, source histories, the hooked AD transformer, shipped checkpoints."""
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

from rlinterp.learners import sources
from rlinterp.learners.ad import WindowSampler, fit_darkroom
from rlinterp.models.ad_transformer import ADConfig, ADTransformer, KVContext, pack_tokens, unpack_tokens
from rlinterp.studies import ad as ads
from rlinterp.studies.ad import rollout_darkroom
from rlinterp.envs import darkroom as dr

# ----------------------------------------------------------------------------------------------------------------
# Environments


def test_check_env_and_registration():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(gym.make("rlinterp/DarkRoom-v0").unwrapped)
        check_env(dr.DarkRoomEnv(goal=(1, 7)))
    spec = gym.spec("rlinterp/DarkRoom-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn ("Overriding environment")
        dr.register_envs()  # idempotent: the registered spec is kept
    assert gym.spec("rlinterp/DarkRoom-v0") is spec


@pytest.mark.parametrize("goal", [(4, 4), (0, 0), (8, 3), (5, 4)])
def test_darkroom_dynamics(goal):
    env = dr.DarkRoomEnv(goal=goal)
    obs, _ = env.reset(seed=0)
    assert obs == 4 * 9 + 4  # start at the centre
    rng = np.random.default_rng(0)
    total, steps, truncated = 0.0, 0, False
    while not truncated:
        obs, r, terminated, truncated, info = env.step(int(rng.integers(5)))
        assert not terminated
        assert r == float(tuple(info["pos"]) == goal)  # reward only on the goal
        assert obs == info["pos"][1] * 9 + info["pos"][0]
        total += r
        steps += 1
    assert steps == 20
    with pytest.raises(ValueError, match="reset"):
        env.step(0)


def test_oracle_is_optimal_and_matches_batched_env():
    tr, te = dr.darkroom_goal_split()
    assert len(tr) + len(te) == 81 and len({tuple(g) for g in np.concatenate([tr, te])}) == 81
    every = np.concatenate([tr, te])  # all 81 goals, the centre (return 20: every no-op pays) included
    hist = sources.darkroom_expert(every, n_episodes=2, seed=3)
    np.testing.assert_array_equal(hist["returns"][:, 0], dr.oracle_return(every))
    hist = sources.darkroom_expert(te, n_episodes=2, seed=3)
    env = dr.DarkRoomEnv(goal=tuple(te[0]))
    env.reset(seed=0)
    rewards = [env.step(int(a))[1] for a in hist["actions"][0, 0]]
    assert sum(rewards) == dr.oracle_return(te[:1])[0]


@pytest.mark.parametrize("kwargs", [dict(size=8), dict(size=1), dict(max_steps=0), dict(goal=(9, 0)),
                                    dict(goal=(1.5, 2)), dict(render_mode="human")])
def test_darkroom_invalid_config(kwargs):
    with pytest.raises(ValueError):
        dr.DarkRoomEnv(**kwargs)


def test_invalid_actions_and_split():
    env = dr.DarkRoomEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(5)
    with pytest.raises(ValueError):
        dr.darkroom_goal_split(n_test=81)


# ----------------------------------------------------------------------------------------------------------------
# Sources


def test_q_learning_histories_deterministic_and_improving():
    tr, _ = dr.darkroom_goal_split()
    goals = np.repeat(tr[:20], 2, 0)
    a = sources.darkroom_q_learning(goals, n_episodes=80, seed=7)
    b = sources.darkroom_q_learning(goals, n_episodes=80, seed=7)
    c = sources.darkroom_q_learning(goals, n_episodes=80, seed=8)
    for k in ("obs", "actions", "rewards"):
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["actions"], c["actions"])
    frac = a["returns"] / dr.oracle_return(goals)[:, None]  # (B, E)
    assert frac[:, :10].mean() < 0.3 < 0.6 < frac[:, -10:].mean()  # slow, real learning


def test_psrl_histories_follow_the_posterior():
    tr, _ = dr.darkroom_goal_split()
    goals = np.repeat(tr, 3, 0)
    a = sources.darkroom_psrl(goals, n_episodes=10, seed=3)
    np.testing.assert_array_equal(a["actions"], sources.darkroom_psrl(goals, n_episodes=10, seed=3)["actions"])
    assert not np.array_equal(a["actions"], sources.darkroom_psrl(goals, n_episodes=10, seed=4)["actions"])
    B, E, T = a["obs"].shape
    oracle = dr.oracle_return(goals)
    flat_r = a["rewards"].reshape(B, E * T)
    first = np.where(flat_r.any(1), flat_r.argmax(1), E * T)  # step index of the first reward
    assert (first < E * T).all()  # every goal is found within 10 episodes, the centre included
    for i in range(B):
        ep, t = divmod(int(first[i]), T)
        # every episode after the first reward is optimal: the posterior has collapsed onto the goal
        np.testing.assert_array_equal(a["returns"][i, ep + 1:], oracle[i])
        # and within the episode it was found the learner stays: it never leaves the goal
        assert a["rewards"][i, ep, t:].all()
        # before it, the sampled goal is never a ruled-out cell, so the learner waits (no-op) at most once: to test
        # the start cell, the only cell it can stand on without having stepped onto it
        assert (a["actions"][i].reshape(-1)[:first[i]] == sources.NOOP).sum() <= 1
    # directed exploration: more distinct cells per episode than a random walk (16.6 against 10.3 here)
    rnd = sources.darkroom_random(goals, n_episodes=1, seed=3)
    assert np.mean([len(np.unique(o)) for o in a["obs"][:, 0]]) > \
        1.4 * np.mean([len(np.unique(o)) for o in rnd["obs"][:, 0]])
    frac = a["returns"] / oracle[:, None]
    assert frac[:, 0].mean() < 0.25 and frac[:, -1].mean() > 0.95  # learns within a few episodes
    slow = sources.darkroom_psrl(goals, n_episodes=10, seed=3, resample="episode")
    assert slow["returns"][:, -1].mean() < 0.6 * a["returns"][:, -1].mean()  # per-episode PSRL learns more slowly
    with pytest.raises(ValueError, match="resample"):
        sources.darkroom_psrl(goals, 2, resample="never")


# ----------------------------------------------------------------------------------------------------------------
# Model


def _tiny_model(seed=0):
    return ADTransformer(ADConfig(n_ctx_episodes=2, d_model=32, n_layers=2, n_heads=2, d_mlp=64, seed=seed))


def test_tokens_round_trip():
    rng = np.random.default_rng(0)
    obs, act, rew = rng.integers(0, 81, (3, 40)), rng.integers(0, 5, (3, 40)), rng.integers(0, 2, (3, 40))
    tok = torch.from_numpy(pack_tokens(obs, act, rew, 81, 5, 20))
    o, pa, pr = unpack_tokens(tok, 5)
    np.testing.assert_array_equal(o.numpy(), obs)
    np.testing.assert_array_equal(pa[:, 1:20].numpy(), act[:, :19])
    assert (pa[:, [0, 20]] == 5).all() and (pr[:, [0, 20]] == 0).all()
    np.testing.assert_array_equal(pr[:, 21:].numpy(), rew[:, 20:-1])


def test_model_hooks_and_causality():
    model = _tiny_model()
    tr, _ = dr.darkroom_goal_split()
    hist = sources.darkroom_q_learning(tr[:4], n_episodes=4, seed=0)
    tok, _ = WindowSampler(hist, model.ad_cfg, stride=1).sample(3)
    logits, cache = model.run_with_cache(tok)
    assert logits.shape == (3, 40, 5)
    for name in ("embed.hook_obs", "embed.hook_reward", "hook_embed", "hook_pos_embed", "blocks.0.attn.hook_pattern",
                 "blocks.1.hook_resid_post", "blocks.0.mlp.hook_post"):
        assert name in cache, name
    assert cache["blocks.0.attn.hook_pattern"].shape == (3, 2, 40, 40)
    tok2 = tok.clone()
    tok2[:, 25:] = (tok2[:, 25:] + 2) % model.cfg.d_vocab
    logits2 = model(tok2)
    torch.testing.assert_close(logits[:, :25], logits2[:, :25])
    assert not torch.allclose(logits[:, 25:], logits2[:, 25:])
    # a hook that zeroes the reward embedding changes the output (hooks are live)
    zeroed = model.run_with_hooks(tok, fwd_hooks=[("embed.hook_obs", lambda x, hook: torch.zeros_like(x))])
    assert not torch.allclose(zeroed, logits)


def test_coordinate_only_embedding_has_no_per_cell_parameters():
    cfg = ADConfig(n_ctx_episodes=2, d_model=32, n_layers=1, n_heads=2, d_mlp=64, cell_embedding=False)
    model = ADTransformer(cfg)
    names = {n for n, _ in model.named_parameters()}
    assert "embed.W_obs" not in names and {"embed.W_x", "embed.W_y"} <= names
    cells = torch.arange(40) * 2  # n_ctx = 40 tokens: every other cell
    tok = torch.from_numpy(pack_tokens(cells[None].numpy(), np.zeros((1, 40), np.int64), np.zeros((1, 40)), 81, 5,
                                       None))
    _, cache = model.run_with_cache(tok)
    e = model.embed
    torch.testing.assert_close(cache["embed.hook_obs"][0], e.W_x[cells % 9] + e.W_y[cells // 9])
    # the checkpoint round trip keeps the flag (the zero buffer is not a free parameter)
    again = ADTransformer.from_checkpoint(model.checkpoint())
    assert again.ad_cfg.cell_embedding is False
    torch.testing.assert_close(again(tok), model(tok))
    with pytest.raises(ValueError, match="grid_size"):
        ADTransformer(ADConfig(grid_size=None, cell_embedding=False))
    with pytest.raises(ValueError, match="source"):
        fit_darkroom("ad", source="a3c", n_steps=1)


def test_model_config_errors():
    with pytest.raises(ValueError):
        ADTransformer(ADConfig(d_model=30, n_heads=4))
    with pytest.raises(ValueError):
        WindowSampler(sources.darkroom_expert(np.array([[0, 0]]), 3), ADConfig(n_ctx_episodes=4))


# ----------------------------------------------------------------------------------------------------------------
# Incremental inference (key-value cache) and batched rollouts


def test_kv_context_equals_full_forward_at_every_position():
    model = _tiny_model(seed=3).eval()
    torch.manual_seed(0)
    tok = torch.randint(0, model.cfg.d_vocab, (4, model.cfg.n_ctx))
    with torch.no_grad():
        full = model(tok)  # (4, 40, 5)
    ctx = KVContext(model)
    got = [ctx.start(tok[:, :7])]
    assert ctx.length == 7
    for i in range(7, 40, 3):  # chunks of up to 3 new tokens
        got.append(ctx.extend(tok[:, i:i + 3]))
        assert ctx.length == min(i + 3, 40)
    ends = [6] + [min(i + 3, 40) - 1 for i in range(7, 40, 3)]
    torch.testing.assert_close(torch.stack(got, 1), full[:, ends], atol=1e-5, rtol=1e-5)
    # a second start() drops the old cache: positions restart at 0 (what a sliding window needs)
    with torch.no_grad():
        torch.testing.assert_close(ctx.start(tok[:, 20:30]), model(tok[:, 20:30])[:, -1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="n_ctx"):
        ctx.extend(tok[:, :31])
    with pytest.raises(ValueError, match="batch"):
        ctx.extend(tok[:2, :1])
    with pytest.raises(ValueError, match="before start"):
        KVContext(model).extend(tok[:, :1])


def _uncached_window_logits(model, tokens: np.ndarray, n_episodes: int) -> np.ndarray:
    """The logits of the old rollout loop: a full forward pass over the sliding window at every step."""
    K, T = model.ad_cfg.n_ctx_episodes, model.ad_cfg.episode_len
    out = np.zeros((len(tokens), n_episodes, T, model.ad_cfg.n_actions), np.float32)
    with torch.no_grad():
        for e in range(n_episodes):
            for t in range(T):
                window = torch.from_numpy(tokens[:, max(0, e - K + 1) * T:e * T + t + 1])
                out[:, e, t] = model(window)[:, -1].numpy()
    return out


@pytest.mark.parametrize("temperature", [1.0, 0.0])
def test_cached_rollout_equals_uncached_past_the_context_window(temperature):
    model = _tiny_model(seed=1).eval()  # K = 2 episodes: the window slides at episodes 2, 3, 4, 5
    goals = np.array([[1, 1], [7, 2], [4, 4]])
    h = rollout_darkroom(model, goals, n_episodes=6, temperature=temperature, seeds=[5, 6, 7])
    assert h["logits"].shape == (3, 6, 20, 5)
    np.testing.assert_allclose(h["logits"], _uncached_window_logits(model, h["tokens"], 6), atol=1e-5, rtol=1e-5)
    # the tokens are the history's own (obs, previous action, previous reward), episode starts reset
    flat = {k: h[k].reshape(3, -1) for k in ("obs", "actions", "rewards")}
    np.testing.assert_array_equal(h["tokens"], pack_tokens(flat["obs"], flat["actions"], flat["rewards"], 81, 5, 20))


def test_rollouts_are_deterministic_and_independent_of_the_batch():
    model = _tiny_model(seed=2).eval()
    goals = np.array([[0, 0], [8, 8], [3, 5], [3, 5]])
    seeds = np.array([11, 12, 13, 14])
    batch = rollout_darkroom(model, goals, n_episodes=3, seeds=seeds)
    again = rollout_darkroom(model, goals, n_episodes=3, seeds=seeds)
    np.testing.assert_array_equal(batch["actions"], again["actions"])
    for b in range(len(goals)):  # each rollout alone is the same rollout
        alone = rollout_darkroom(model, goals[b:b + 1], n_episodes=3, seeds=seeds[b:b + 1])
        np.testing.assert_array_equal(alone["actions"][0], batch["actions"][b])
    assert not np.array_equal(batch["actions"][2], batch["actions"][3])  # same goal, other seed
    # evaluate_darkroom: goals x seeds, goal-major; greedy curves are played once per goal and repeated
    ev = ads.evaluate_darkroom(model, goals[:2], 3, seeds=[11, 12])
    np.testing.assert_array_equal(ev[0], rollout_darkroom(model, goals[:1], 3, seeds=[11])["returns"][0])
    np.testing.assert_array_equal(ev[3], rollout_darkroom(model, goals[1:2], 3, seeds=[12])["returns"][0])
    greedy = ads.evaluate_darkroom(model, goals[:2], 3, seeds=[1, 2, 3], temperature=0.0)
    full = rollout_darkroom(model, np.repeat(goals[:2], 3, 0), 3, temperature=0.0, seeds=np.arange(6))["returns"]
    np.testing.assert_array_equal(greedy, full)
    with pytest.raises(ValueError, match="seeds"):
        rollout_darkroom(model, goals, 2, seeds=[1, 2])
    with pytest.raises(ValueError, match="seeds"):
        ads.evaluate_darkroom(model, goals, 2, seeds=[])


def test_sampling_draws_from_the_softmax():
    logits = torch.log(torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.0]])).repeat(20_000, 1)
    u = ads.sampling_uniforms(np.arange(20_000)[:, None], 1)[:, 0]
    a = ads._choose(logits, 1.0, u)
    freq = np.bincount(a, minlength=5) / len(a)
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4, 0.0], atol=0.01)
    hot = ads._choose(logits[:1000], 0.25, u[:1000])  # a low temperature sharpens towards the argmax
    assert (hot == 3).mean() > 0.6 and (ads._choose(logits[:5], 0.0, u[:5]) == 3).all()

# ----------------------------------------------------------------------------------------------------------------
# Shipped checkpoints


def test_shipped_ad_beats_random_on_held_out_goals():
    from rlinterp.pipeline.manifest import load_checkpoint, read_manifest

    if "ad/darkroom_ad.pt" not in read_manifest():
        pytest.skip("data/ad/darkroom_ad.pt not shipped yet (rli run ad/01_incontext -p retrain=True -p save=True)")
    model = ADTransformer.from_checkpoint(load_checkpoint("ad/darkroom_ad.pt"))
    load_checkpoint("ad/darkroom_ed.pt")  # hash verified
    _, te = dr.darkroom_goal_split()
    ad = rollout_darkroom(model, np.repeat(te, 2, 0), n_episodes=6, temperature=1.0, seeds=0)["returns"]
    rnd = sources.darkroom_random(np.repeat(te, 5, 0), n_episodes=6, seed=0)["returns"]
    assert ad[:, -2:].mean() > rnd.mean() + 1.5  # random earns ~0.2 per episode, AD several


# ----------------------------------------------------------------------------------------------------------------
# Other rooms: a model is trained for one room and refuses any other


def test_room_size_is_checked_before_anything_runs():
    from rlinterp import artifacts

    for bad in (2, 8, 9.0, True):
        with pytest.raises(ValueError, match="size"):
            dr.check_size(bad)
        with pytest.raises(ValueError, match="room_size"):
            artifacts.DarkroomFit(room_size=bad)
        with pytest.raises(ValueError, match="room_size"):
            artifacts.AblationGrid(room_size=bad)
    assert artifacts.DarkroomFit().room_size == artifacts.AblationGrid().room_size == dr.DEFAULT_SIZE == 9
    assert [dr.n_held_out(s) for s in (3, 5, 7, 9, 11)] == [2, 5, 10, 16, 24]  # 16/81 of the goals, 16 of 81
    tr, te = dr.darkroom_goal_split(7)
    cells = {tuple(c) for c in np.concatenate([tr, te])}
    assert (len(tr), len(te), len(cells)) == (39, 10, 49) and max(max(c) for c in cells) == 6
    np.testing.assert_array_equal(dr.darkroom_goal_split()[1], dr.darkroom_goal_split(9, 16)[1])  # the shipped split
    with pytest.raises(ValueError, match="pass the room as size"):
        fit_darkroom("ad", source="psrl", n_steps=1, grid_size=5)


TINY_FIT = dict(histories_per_goal=1, n_source_episodes=3, n_ctx_episodes=2, n_steps=3, batch_size=4, d_model=16,
                n_layers=1, d_mlp=32)


def test_another_room_trains_at_that_size_and_a_model_refuses_other_rooms():
    from rlinterp import artifacts

    model = artifacts.build("ad/darkroom_ad", config=artifacts.DarkroomFit(room_size=5, **TINY_FIT), progress=False)
    assert ads.room_size(model) == 5 and (model.ad_cfg.grid_size, model.ad_cfg.n_obs) == (5, 25)
    assert tuple(model.embed.W_x.shape) == (5, 16) and int(model.train_log["n_train_goals"]) == 25 - 5
    _, te = dr.darkroom_goal_split(5)
    curves = ads.evaluate_darkroom(model, te, 2, [0, 1], 1.0)
    assert curves.shape == (2 * len(te), 2) and (curves <= dr.oracle_return(te, 5).max()).all()
    np.testing.assert_array_equal(curves, ads.evaluate_darkroom(model, te, 2, [0, 1], 1.0, size=5))
    with pytest.raises(ValueError, match=r"trained for a 5x5 Dark Room .* cannot be evaluated in a 9x9 room"):
        ads.evaluate_darkroom(model, dr.darkroom_goal_split()[1], 2, [0], 1.0, size=9)
    with pytest.raises(ValueError, match=r"trained for a 5x5"):
        ads.rollout_darkroom(model, te, n_episodes=1, size=7)
    with pytest.raises(ValueError, match=r"trained for a 5x5"):
        ads.fit_probes(model)  # the probes are for the 9 x 9 room
    [m] = artifacts.metrics_darkroom(model)  # measured in the model's own room
    assert m["oracle"] == float(dr.oracle_return(te, 5).mean())
    shipped = artifacts.load("ad/darkroom_ad")
    assert ads.room_size(shipped) == artifacts.get("ad/darkroom_ad").config.room_size == 9
    with pytest.raises(ValueError, match=r"trained for a 9x9 Dark Room .* in a 7x7 room"):
        ads.evaluate_darkroom(shipped, dr.darkroom_goal_split(7)[1], 2, [0], 1.0, size=7)
    ed = artifacts.build("ad/darkroom_ed", config=artifacts.DarkroomFit(kind="ed", room_size=3, **TINY_FIT),
                         progress=False)
    assert ads.room_size(ed) == 3


def test_ablation_in_another_room():
    from rlinterp import artifacts

    grid = dict(d_models=(8,), n_steps=2, seeds=1, histories_per_goal=1, n_source_episodes=3, n_ctx_episodes=2,
                batch_size=4, n_eval_episodes=2, n_eval_seeds=1, room_size=5)
    with pytest.raises(ValueError, match=r"must lie in \[1, 20\] in a 5x5 room, got 65"):
        artifacts.build("ad/ablation", config=artifacts.AblationGrid(goals=(65,), **grid), progress=False)
    out = artifacts.build("ad/ablation", config=artifacts.AblationGrid(goals=(2, 20), **grid), progress=False)
    assert [v["train goals"] for v in out["variants"]] == [2, 20]
    assert tuple(out["curves"].shape) == (2, dr.n_held_out(5), 2)
