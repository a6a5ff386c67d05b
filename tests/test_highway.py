"""Tests for the intersection-v0 environment, the ego-attention / MLP Q-networks and the Double-DQN trainer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rlinterp.learners import ddqn
from rlinterp.models.ego_attention import EgoAttentionNetwork, MLPNetwork, build_network, n_params
from rlinterp.envs import highway as hw
from rlinterp.learners.replay import ReplayBuffer
from rlinterp.studies import highway as hws
from rlinterp.studies import highway_plots as hwp


@pytest.fixture(scope="module")
def env():
    e = hw.make_env(0)
    yield e
    e.close()


@pytest.fixture(scope="module")
def observations(env) -> np.ndarray:
    """A few real observations (random play), [T, 15, 7]."""
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=123)
    out = [obs]
    for _ in range(8):
        obs, _, term, trunc, _ = env.step(int(rng.integers(3)))
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
    return np.stack(out)


# ---------------------------------------------------------------- environment
def test_env_config_is_rl_agents(env):
    cfg = env.unwrapped.config
    assert env.observation_space.shape == (15, 7)
    assert env.action_space.n == 3
    assert cfg["observation"]["absolute"] is True and cfg["observation"]["order"] == "shuffled"
    assert cfg["observation"]["features"] == ["presence", "x", "y", "vx", "vy", "cos_h", "sin_h"]
    assert cfg["observation"]["vehicles_count"] == 15
    assert cfg["destination"] == "o1" and cfg["duration"] == 13 and cfg["policy_frequency"] == 1
    assert cfg["action"]["type"] == "DiscreteMetaAction" and cfg["action"]["lateral"] is False
    assert env.unwrapped.ACTIONS == {0: "SLOWER", 1: "IDLE", 2: "FASTER"}


def test_env_observation_and_determinism(observations):
    obs = observations
    assert obs.dtype == np.float32 and np.all(np.abs(obs) <= 1)
    assert np.all(obs[:, 0, 0] == 1)  # the ego vehicle is always present, row 0
    assert np.all(obs[obs[..., 0] == 0] == 0)  # absent vehicles are zero rows
    e1, e2 = hw.make_env(5), hw.make_env(5)
    o1, o2 = e1.reset(seed=7)[0], e2.reset(seed=7)[0]
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(e1.step(2)[0], e2.step(2)[0])


def test_env_overrides_validated():
    with pytest.raises(ValueError, match="valid keys are.*duration"):
        hw.make_env(0, not_a_key=1)
    with pytest.raises(ValueError, match="render_mode"):
        hw.make_env(0, render_mode="human")
    assert hw.make_env(0, duration=4).unwrapped.config["duration"] == 4
    # nested dicts merge one level deep, keeping the rl-agents observation keys
    cfg = hw.env_config(observation={"vehicles_count": 5})
    assert cfg["observation"]["vehicles_count"] == 5 and cfg["observation"]["order"] == "shuffled"


def test_traffic_density_is_validated_and_reaches_the_env():
    from highway_env.envs.intersection_env import IntersectionEnv

    defaults = IntersectionEnv.default_config()
    assert hw.DENSITY_DEFAULTS == {k: defaults[k] for k in hw.DENSITY_DEFAULTS}  # highway-env's own defaults
    assert hw.density() == hw.density(0.6, 10) == {}  # the default traffic adds no key: the shipped configuration
    assert hw.env_config(**hw.density()) == hw.env_config()
    assert hw.density(0.9, 10) == {"spawn_probability": 0.9}
    assert hw.density(1, 3) == {"spawn_probability": 1.0, "initial_vehicle_count": 3}
    for bad, name in [(dict(spawn_probability=1.5), "spawn_probability"), (dict(spawn_probability=-0.1),
                      "spawn_probability"), (dict(spawn_probability=float("nan")), "spawn_probability"),
                      (dict(spawn_probability=True), "spawn_probability"), (dict(initial_vehicle_count=0),
                      "initial_vehicle_count"), (dict(initial_vehicle_count=2.5), "initial_vehicle_count")]:
        with pytest.raises(ValueError, match=name):
            hw.density(**bad)
        with pytest.raises(ValueError, match=name):  # every env built from overrides checks them, before a step
            hw.make_env(0, **bad)
    sparse = hw.make_env(0, **hw.density(0.0, 1))
    u = sparse.unwrapped
    assert (u.config["spawn_probability"], u.config["initial_vehicle_count"]) == (0.0, 1)
    counts = {}
    for name, e in (("sparse", sparse), ("default", hw.make_env(0))):
        n = []
        for s in range(5):
            e.reset(seed=s)
            for _ in range(4):
                e.step(1)
            n.append(len(e.unwrapped.road.vehicles))
        counts[name] = np.mean(n)
    assert counts["sparse"] <= 2 < counts["default"]  # ego and the challenger at most, and no vehicle ever enters
    assert hw.density_text({"initial_vehicle_count": 4}) == "spawn probability 0.6, 4 initial vehicles"


def test_highway_eval_runs_in_the_requested_traffic(monkeypatch):
    """``HighwayEval(env_overrides=...)`` is checked when it is made and every evaluation episode runs in that
    traffic; the default evaluation keeps the shipped format."""
    from rlinterp import artifacts

    with pytest.raises(ValueError, match="spawn_probability"):
        artifacts.HighwayEval(env_overrides={"spawn_probability": 2.0})
    with pytest.raises(ValueError, match="valid keys"):
        artifacts.HighwayEval(env_overrides={"traffic": 1})
    assert artifacts.HighwayEval() == artifacts.get("highway/eval").config  # the declared evaluation is unchanged
    seen = []
    real = hws.make_env

    def spy(seed, **overrides):
        env = real(seed, **overrides)
        seen.append({k: env.unwrapped.config[k] for k in hw.DENSITY_DEFAULTS})
        return env

    monkeypatch.setattr(hws, "make_env", spy)
    models = {k: artifacts.load(f"highway/{k}") for k in artifacts.HIGHWAY_AGENTS}
    sparse = hw.density(0.0, 1)
    cfg = artifacts.HighwayEval(n_episodes=2, env_overrides=sparse)
    stored = artifacts.build("highway/eval", config=cfg, progress=False, models=models, workers=1)
    assert seen and all(d == {"spawn_probability": 0.0, "initial_vehicle_count": 1} for d in seen)
    assert stored["env_overrides"] == sparse
    seen.clear()
    default = artifacts.build("highway/eval", config=artifacts.HighwayEval(n_episodes=2), progress=False,
                              models=models, workers=1)
    assert "env_overrides" not in default and seen and all(d == hw.DENSITY_DEFAULTS for d in seen)


def test_ddqn_run_dir_of_another_traffic_is_another_run(monkeypatch, tmp_path):
    from rlinterp import artifacts

    dirs = []

    def fake_train(config, run_dir, progress, log_every):
        dirs.append(run_dir.name)
        raise RuntimeError("stop")

    monkeypatch.setattr(ddqn, "train", fake_train)
    for overrides in ({}, hw.density(0.9)):
        with pytest.raises(RuntimeError, match="stop"):
            artifacts.build("highway/mlp", config=ddqn.DDQNConfig(network="mlp", episodes=1, env_overrides=overrides))
    assert dirs == ["book_mlp_seed0_ep1_envs1", "book_mlp_seed0_ep1_envs1_spawn_probability0.9"]


def test_policies_and_episode(env):
    with pytest.raises(ValueError, match="action must be"):
        hws.constant_policy(3)
    with pytest.raises(ValueError, match="policy returned"):
        hws.run_episode(env, lambda obs: 7, seed=1)
    ep = hws.run_episode(env, hws.constant_policy(1), seed=hws.VALIDATION_SEED, max_steps=3)
    assert 1 <= ep["length"] <= 3 and len(ep["rewards"]) == ep["length"]
    assert not (ep["arrived"] and ep["crashed"])
    res = hws.evaluate(hws.random_policy(0), n_episodes=2, progress=False, duration=3)
    assert res["n_episodes"] == 2 and len(res["returns"]) == 2
    assert 0 <= res["success_rate"] <= 1 and 0 <= res["collision_rate"] <= 1 and res["mean_length"] <= 3


# ---------------------------------------------------------------- networks
def test_param_counts():
    assert n_params(EgoAttentionNetwork()) == 34243  # paper: 3.4e4
    assert n_params(MLPNetwork()) == 30467  # paper: 3.0e4


@pytest.mark.parametrize("kind", ["ego_attention", "mlp"])
def test_shapes_and_all_hooks_cached(kind, observations):
    torch.manual_seed(0)
    net = build_network({"kind": kind})
    x = torch.as_tensor(observations)
    q, cache = net.run_with_cache(x)
    assert q.shape == (len(x), 3) and torch.isfinite(q).all()
    assert net(x[0]).shape == (3,)
    assert set(cache.keys()) == set(net.hook_dict)  # every hook point fires
    torch.testing.assert_close(cache["hook_q_values"], q)
    rebuilt = build_network(net.config)
    assert type(rebuilt) is type(net)


def test_ego_attention_hook_names_and_pattern(observations):
    torch.manual_seed(0)
    net = EgoAttentionNetwork()
    x = torch.as_tensor(observations)
    _, cache = net.run_with_cache(x)
    expected = {"hook_obs", "ego_embed.hook_out", "others_embed.hook_out", "attn.hook_q", "attn.hook_k",
                "attn.hook_v", "attn.hook_attn_scores", "attn.hook_pattern", "attn.hook_result", "attn.hook_combine",
                "hook_resid", "hook_q_values"}
    expected |= {f"{m}.{i}.hook_{s}" for m in ("ego_embed", "others_embed", "mlp") for i in (0, 1)
                 for s in ("pre", "post")}
    assert expected <= set(cache.keys())
    B = len(x)
    pattern = cache["attn.hook_pattern"]
    assert pattern.shape == (B, 2, 15)
    torch.testing.assert_close(pattern.sum(-1), torch.ones(B, 2))
    absent = x[:, :, 0] < 0.5  # [B, 15]
    assert absent.any(), "the test observations should contain absent vehicles"
    assert (pattern.masked_select(absent[:, None, :].expand_as(pattern)) == 0).all()
    # the decomposition holds: heads sum to combine, resid is the average with the ego embedding
    torch.testing.assert_close(cache["attn.hook_result"].sum(1), cache["attn.hook_combine"])
    torch.testing.assert_close(cache["hook_resid"], (cache["attn.hook_combine"] + cache["ego_embed.hook_out"]) / 2)


def test_permutation_equivariance(observations):
    torch.manual_seed(0)
    net = EgoAttentionNetwork()
    x = torch.as_tensor(observations)
    g = torch.Generator().manual_seed(1)
    perm = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(14, generator=g)])
    q, cache = net.run_with_cache(x)
    q_perm, cache_perm = net.run_with_cache(x[:, perm])
    torch.testing.assert_close(q_perm, q, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(cache_perm["attn.hook_pattern"], cache["attn.hook_pattern"][..., perm])
    # adding an absent (all-zero) vehicle in place of a present one changes the answer; absent rows do not matter
    x2 = x.clone()
    absent = x2[:, :, 0] < 0.5
    x2[absent] = torch.randn(int(absent.sum()), 7) * 0.1 * torch.tensor([0, 1, 1, 1, 1, 1, 1.0])
    torch.testing.assert_close(net(x2), q, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- trainer
TINY = dict(episodes=3, batch_size=8, learning_starts=8, target_update=4, checkpoint_every=2,
            env_overrides={"duration": 4})


def test_ddqn_tiny_run_is_deterministic():
    torch.set_num_threads(1)
    runs = [ddqn.train(ddqn.DDQNConfig(seed=3, **TINY), progress=False, log_every=0) for _ in range(2)]
    assert runs[0]["curve"]["return"] == runs[1]["curve"]["return"]
    assert len(runs[0]["curve"]["return"]) == 3 and runs[0]["grad_steps"] > 0
    for (k, a), (_, b) in zip(runs[0]["model"].state_dict().items(), runs[1]["model"].state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_ddqn_resume(tmp_path):
    cfg = ddqn.DDQNConfig(seed=1, **TINY)
    first = ddqn.train(cfg, run_dir=tmp_path, progress=False, log_every=0)
    assert (tmp_path / "last.pt").exists()
    cfg.episodes = 5
    resumed = ddqn.train(cfg, run_dir=tmp_path, progress=False, log_every=0)
    assert resumed["curve"]["return"][:3] == first["curve"]["return"]
    assert len(resumed["curve"]["return"]) == 5 and resumed["env_steps"] > first["env_steps"]
    with pytest.raises(ValueError, match="different config"):
        ddqn.train(ddqn.DDQNConfig(seed=2, **TINY), run_dir=tmp_path, progress=False)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)  # a run folder left by an older trainer version
    ck["buffer"] = {k: v for k, v in ck["buffer"].items() if k != "done"}
    torch.save(ck, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=f"cannot be resumed.*delete {tmp_path}"):
        ddqn.train(cfg, run_dir=tmp_path, progress=False, log_every=0)


def test_ddqn_loss_decreases(env):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    buf = ReplayBuffer(200, hw.OBS_SHAPE)
    obs, _ = env.reset(seed=11)
    while buf.size < 64:
        a = int(rng.integers(3))
        nxt, r, term, trunc, _ = env.step(a)
        buf.add(obs, a, r, nxt, float(term))
        obs = nxt if not (term or trunc) else env.reset()[0]
    q_net, target = EgoAttentionNetwork(), EgoAttentionNetwork()
    target.load_state_dict(q_net.state_dict())
    opt = torch.optim.Adam(q_net.parameters(), lr=5e-4)
    batch = buf.sample(64, rng)
    losses = []
    for _ in range(60):
        loss = ddqn.td_loss(q_net, target, batch, gamma=0.95)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_config_validation():
    with pytest.raises(ValueError, match="network must be"):
        ddqn.DDQNConfig(network="cnn").validate()
    with pytest.raises(ValueError, match="episodes"):
        ddqn.DDQNConfig(episodes=0).validate()
    with pytest.raises(ValueError, match="unknown intersection-v0 config key"):
        ddqn.DDQNConfig(env_overrides={"durration": 3}).validate()
    assert ddqn.epsilon(0, ddqn.DDQNConfig()) == pytest.approx(1.0)
    assert ddqn.epsilon(15000, ddqn.DDQNConfig()) == pytest.approx(0.05 + 0.95 / np.e)


# ---------------------------------------------------------------- shipped checkpoints
@pytest.mark.parametrize("name", ["highway/ego_attention.pt", "highway/mlp.pt"])
def test_shipped_checkpoints(name, observations):
    from rlinterp.pipeline.manifest import read_manifest

    if name not in read_manifest():
        pytest.skip(f"data/{name} not trained yet")
    from rlinterp import artifacts

    model = artifacts.load(name.removesuffix(".pt"))  # verifies the sha256 against data/MANIFEST.json
    policy = ddqn.greedy_policy(model)
    assert all(policy(o) in (0, 1, 2) for o in observations)


def test_headless_render_is_not_black():
    env = hw.make_env(0, render_mode="rgb_array")
    obs, _ = env.reset(seed=3)
    frame = env.render()
    assert frame.shape == (600, 600, 3) and frame.dtype == np.uint8 and frame.std() > 5
    ego_px = hwp.world_to_pixel(env, hw.obs_positions(obs))[0]
    assert 0 <= ego_px[0] < 600 and 0 <= ego_px[1] < 600
    env.close()


# ---------------------------------------------------------------- the fast environment and the evaluation protocol
def test_fast_env_reproduces_highway_env_step_by_step():
    """FastIntersectionEnv is only faster: the same observations (bit for bit), rewards, ends and vehicle lanes and
    positions as highway-env's own intersection-v0, for the same seeds and actions."""
    stock, fast = hw.make_env(0, fast=False), hw.make_env(0)
    assert type(fast.unwrapped) is hw.FastIntersectionEnv and type(stock.unwrapped) is not hw.FastIntersectionEnv
    rng = np.random.default_rng(0)
    for seed in (hws.TEST_SEED, 17):
        o1, _ = stock.reset(seed=seed)
        o2, _ = fast.reset(seed=seed)
        assert o1.tobytes() == o2.tobytes()
        for _ in range(6):
            a = int(rng.integers(3))
            r1, r2 = stock.step(a), fast.step(a)
            assert r1[0].tobytes() == r2[0].tobytes() and r1[1:4] == r2[1:4]
            v1, v2 = stock.unwrapped.road.vehicles, fast.unwrapped.road.vehicles
            assert [v.lane_index for v in v1] == [v.lane_index for v in v2]
            assert all(v.position.tobytes() == w.position.tobytes() for v, w in zip(v1, v2))
            if r1[2] or r1[3]:
                break
    # the pruned search returns highway-env's lane for arbitrary positions and headings, off the road too
    from highway_env.road.road import RoadNetwork

    net = fast.unwrapped.road.network
    for p in rng.uniform(-120, 120, (300, 2)):
        h = float(rng.uniform(-np.pi, np.pi))
        assert net.get_closest_lane_index(p, h) == RoadNetwork.get_closest_lane_index(net, p, h)
        assert net.get_closest_lane_index(p) == RoadNetwork.get_closest_lane_index(net, p)


def test_random_policy_depends_on_the_scene_only(env):
    p = hws.random_policy(3)
    obs = np.zeros(hw.OBS_SHAPE, np.float32)
    p.reset(5)
    first = [p(obs) for _ in range(20)]
    p.reset(6)
    other = [p(obs) for _ in range(20)]
    p.reset(5)
    assert [p(obs) for _ in range(20)] == first != other
    with pytest.raises(ValueError, match="seed"):
        hws.random_policy(-1)


def test_evaluate_policies_paired_and_independent_of_workers_and_cache(tmp_path):
    pol = {"Random": hws.random_policy(0), "Always FASTER": hws.constant_policy(2)}
    seeds = np.arange(hws.TEST_SEED, hws.TEST_SEED + 3)
    one = hws.evaluate_policies(pol, seeds, workers=1, chunk=3, progress=False, duration=3)
    two = hws.evaluate_policies(pol, seeds, workers=2, chunk=2, progress=False, cache_dir=tmp_path, duration=3)
    assert len(list(tmp_path.iterdir())) == 4  # 2 policies x 2 chunks
    again = hws.evaluate_policies(pol, seeds, workers=1, chunk=2, progress=False, cache_dir=tmp_path, duration=3)
    assert one == two == again
    for r in one.values():
        assert r["n_episodes"] == 3 and r["seed"] == hws.TEST_SEED
        assert all(len(r[f]) == 3 for f in hws.EPISODE_FIELDS)
        assert r["lo"] <= r["mean_return"] <= r["hi"] and np.isclose(r["mean_return"], np.mean(r["returns"]))
        assert np.isclose(r["success_rate"], np.mean(r["arrived"]))
    assert hws.evaluate(hws.random_policy(0), 3, hws.TEST_SEED, progress=False, duration=3) == \
           dict(one["Random"])
    with pytest.raises(ValueError, match="valid keys"):
        hws.evaluate_policies(pol, seeds, not_a_key=1)
    with pytest.raises(ValueError, match="workers"):
        hws.evaluate_policies(pol, seeds, workers=0)
    with pytest.raises(ValueError, match="at least one seed"):
        hws.evaluate_policies(pol, [])


def test_verdict_judges_on_the_interval():
    from rlinterp.stats import Interval

    assert hws.verdict(Interval(6.6, 6.45, 6.75), 6.4) == "met"
    assert hws.verdict(Interval(6.02, 5.72, 6.32), 6.4) == "not met"
    assert hws.verdict(Interval(6.5, 6.05, 6.95), 6.4) == "undecided"  # the point estimate alone would say "met"
    with pytest.raises(ValueError, match="finite"):
        hws.verdict(Interval(1.0, float("nan"), float("nan")), 0.0)


def test_eval_summary_pairs_the_policies():
    rng = np.random.default_rng(0)
    a = rng.normal(6.0, 3.0, 500)
    b = a - 2.9 + rng.normal(0, 1.0, 500)

    def res(r):
        return dict(returns=list(r), success_rate=0.5, collision_rate=0.1, mean_length=10.0, mean_speed=5.0)

    S = hws.eval_summary({"results": {"A": res(a), "B": res(b)}}, "A", "B")
    assert S["n"] == 500 and np.isclose(S["margin"].mean, np.mean(a - b))
    assert S["margin"].half < S["return"]["A"].half  # pairing removes the shared scene-to-scene variance
    assert S["targets"] == {"return": "not met", "margin": "met"}
    assert [r["policy"] for r in S["rows"]] == ["A", "B"] and S["rows"][0]["95% CI"].startswith("[")
    with pytest.raises(ValueError, match="no policy 'C'"):
        hws.eval_summary({"results": {"A": res(a), "B": res(b)}}, "C", "B")
    with pytest.raises(ValueError, match="same scenes"):
        hws.eval_summary({"results": {"A": res(a), "B": res(b[:10])}}, "A", "B")


def test_highway_eval_config_uses_the_declared_seed_split():
    from rlinterp import artifacts
    from rlinterp.seeds import split

    cfg = artifacts.get("highway/eval").config
    assert cfg.n_episodes >= 500 and cfg.split == "test"
    assert all(split("highway").role(int(s)) == "test" for s in cfg.seeds[[0, -1]])
    assert artifacts.HighwayEval(n_episodes=3, split="validation").seeds.tolist() == [1_000_000, 1_000_001, 1_000_002]
    with pytest.raises(ValueError, match="split"):
        artifacts.HighwayEval(split="train")


def test_bench_rows_judge_the_stored_evaluation_on_intervals(monkeypatch):
    """`rli bench highway` on a small evaluation built here: the rows carry the intervals, the threshold targets are
    judged on them, and the stored returns are re-run and reproduced."""
    from rlinterp import artifacts

    models = {k: artifacts.load(f"highway/{k}") for k in artifacts.HIGHWAY_AGENTS}  # given: no cache under runs/
    stored = artifacts.build("highway/eval", config=artifacts.HighwayEval(n_episodes=3), progress=False,
                             models=models)
    assert stored["split"] == "test" and stored["seed"] == hws.TEST_SEED
    assert list(stored["results"]) == [*artifacts.HIGHWAY_AGENTS.values(), "Always SLOWER", "Always IDLE",
                                       "Always FASTER", "Random"]
    real_load = artifacts.load
    monkeypatch.setattr(artifacts, "load", lambda name, *a, **k: stored if name == "highway/eval"
                        else real_load(name, *a, **k))
    rows = hws.bench_rows(fast=True)
    metric, value, target, met = rows[0]
    S = hws.eval_summary(stored)
    assert "3 test scenes" in metric and value.endswith(hws.ci_text(S["return"]["Ego-attention DQN"]))
    assert met == (S["targets"]["return"] == "met") and target.startswith("≥ 6.4")
    assert rows[1][3] == (S["targets"]["margin"] == "met")
    assert rows[-1][1:] == ("identical", "identical", True)
