"""Tests of the imitation warm start: the BFS oracle of BatchedHeist, DAgger (learners/dagger.py), PPO's ``init`` and
the heist agent recipe (artifacts.HeistAgentFit)."""
import math

import numpy as np
import pytest
import torch

from rlinterp.envs.heist import NOOP, BatchedHeist, HeistConfig, HeistEnv, solve
from rlinterp.learners.dagger import DAggerConfig, imitation_loss, train
from rlinterp.learners.ppo import PPOConfig
from rlinterp.learners.ppo import train as ppo_train

TINY = dict(cell_px=2, max_difficulty=0, num_keys=0, max_steps=20)


def test_oracle_actions_follow_shortest_paths_to_the_gem():
    cfg = HeistConfig()  # 0-2 keys: stages, locks, diagonals
    env = BatchedHeist(12, cfg, seed=3)
    opt_len = [len(solve(int(s), cfg)) for s in env.level_seed]
    rng = np.random.default_rng(0)
    finished = np.zeros(12, bool)
    prev = None
    for t in range(60):
        optimal, steps = env.oracle()
        if t == 0:
            assert steps.tolist() == opt_len
        if prev is not None:  # every optimal action removes exactly one step (the env that just restarted aside)
            live = ~finished & ~restarted
            assert (steps[live] == prev[live] - 1).all()
        assert optimal.any(1).all() and not optimal[:, NOOP].any()
        a = np.array([rng.choice(np.flatnonzero(m)) for m in optimal])
        _, _, term, trunc, info = env.step(a)
        restarted = term | trunc
        for i in np.flatnonzero(restarted & ~finished):
            assert term[i] and info["episode_length"][i] == opt_len[i]
        finished |= restarted
        prev = steps
    assert finished.all()


def test_oracle_marks_exactly_the_actions_that_shorten_the_path():
    cfg = HeistConfig()
    env = BatchedHeist(1, cfg, seed=5)
    single = HeistEnv(cfg)
    checked = 0
    for _ in range(15):
        level = {"level_seed": int(env.level_seed[0])}
        _, info0 = single.reset(options=level)
        optimal, _ = env.oracle()
        for a in range(9):  # a one-step lookahead in the gymnasium env agrees with the mask
            single.reset(options=level)
            _, _, term, _, info = single.step(a)
            reached = term or info["goal"] != info0["goal"]
            shorter = info0["goal_distance"] == 1 if reached else info["goal_distance"] == info0["goal_distance"] - 1
            assert optimal[0, a] == shorter, (a, info0["goal_distance"], info["goal_distance"])
            checked += 1
        env.reset()
    assert checked == 135


def test_imitation_loss_by_hand():
    class Fixed(torch.nn.Module):
        def forward(self, obs):
            return torch.log(torch.tensor([[0.5, 0.25, 0.25] + [1e-12] * 6])), torch.tensor([0.3])

    mask = torch.zeros(1, 9, dtype=torch.bool)
    mask[0, [1, 2]] = True
    loss, st = imitation_loss(Fixed(), None, mask, torch.tensor([0.1]), vf_coef=2.0)
    assert st["nll"] == pytest.approx(-math.log(0.5), rel=1e-5)
    assert st["v_loss"] == pytest.approx(0.04, rel=1e-5)
    assert st["accuracy"] == 0.0  # argmax (action 0) is not optimal
    assert loss.item() == pytest.approx(-math.log(0.5) + 2 * 0.04, rel=1e-5)


def _dcfg(**kw):
    base = dict(iterations=3, num_envs=4, steps_per_iter=8, epochs=1, batch_size=16, max_dataset=64, device="cpu",
                env=TINY)
    base.update(kw)
    return DAggerConfig(**base)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_dagger_resume_equals_uninterrupted_and_refuses_another_config(tmp_path):
    full = train(_dcfg(), progress=False)
    part = train(_dcfg(), run_dir=tmp_path, progress=False, max_rounds=2)
    assert part["rounds"] == 2 and len(list(tmp_path.glob("data_*.npz"))) == 2
    rest = train(_dcfg(), run_dir=tmp_path, progress=False)
    assert rest["rounds"] == 3 and rest["env_steps"] == 3 * 32
    assert torch.equal(_weights(full["model"]), _weights(rest["model"]))
    assert [r["nll"] for r in full["curve"]] == [r["nll"] for r in rest["curve"]]
    assert [r["dataset"] for r in rest["curve"]] == [32, 64, 64]  # aggregated, capped at max_dataset
    assert [r["beta"] for r in rest["curve"]] == [1.0, 0.5, 0.25]
    with pytest.raises(ValueError, match="different config"):
        train(_dcfg(lr=1e-3), run_dir=tmp_path, progress=False)


def test_dagger_imitates_the_oracle_on_a_fixed_level():
    cfg = _dcfg(iterations=4, num_envs=8, steps_per_iter=16, epochs=8, max_dataset=512, lr=2e-3,
                env=dict(TINY, num_levels=1))
    res = train(cfg, progress=False)
    assert res["curve"][-1]["accuracy"] > 0.9  # one maze: its shortest path is learnt


def test_dagger_config_errors():
    with pytest.raises(ValueError, match="beta0"):
        _dcfg(beta0=1.5).validate()
    with pytest.raises(ValueError, match="max_dataset"):
        _dcfg(max_dataset=8).validate()  # smaller than one round
    with pytest.raises(ValueError, match="network"):
        _dcfg(network="mlp").validate()
    with pytest.raises(TypeError):
        _dcfg(env={"colour": 1}).validate()


def test_ppo_init_starts_from_the_run_weights(tmp_path):
    d = train(_dcfg(iterations=1), run_dir=tmp_path, progress=False)
    p = PPOConfig(total_steps=64, num_envs=4, num_steps=16, num_minibatches=2, device="cpu", env=TINY,
                  init=str(tmp_path))
    start = ppo_train(p, progress=False, max_updates=0)
    assert torch.equal(_weights(start["model"]), _weights(d["model"]))
    with pytest.raises(ValueError, match="no last.pt"):
        PPOConfig(init=str(tmp_path / "nowhere")).validate()
    with pytest.raises(ValueError, match="holds a"):
        ppo_train(PPOConfig(total_steps=64, num_envs=4, num_steps=16, num_minibatches=2, device="cpu", env=TINY,
                            init=str(tmp_path), network="bimpala"), progress=False, max_updates=0)


def test_heist_agent_recipe_validation():
    from rlinterp.artifacts import HeistAgentFit, get

    fit = get("heist/impala").config
    assert fit.dagger.network == fit.ppo.network == "impala" and fit.ppo.init == ""
    with pytest.raises(ValueError, match="same network"):
        HeistAgentFit(dagger=DAggerConfig(network="bimpala"), ppo=PPOConfig())
    with pytest.raises(ValueError, match="init must be empty"):
        HeistAgentFit(ppo=PPOConfig(init="runs"))
    with pytest.raises(TypeError):
        HeistAgentFit(dagger={"network": "impala"})
