"""Heist study helpers: goal stages, action fields, probe datasets (studies/heist.py) and the spatial probe."""
import numpy as np
import pytest
import torch

from rlinterp.envs import heist as H
from rlinterp.interp import fit_spatial_probe
from rlinterp.studies import heist as hs

CFG = H.HeistConfig()


def _levels_with_keys(k, n=3):
    out = []
    for s in H.level_seeds("test", 400):
        lv = H.make_level(int(s), CFG)
        if lv.num_keys == k:
            out.append(lv)
            if len(out) == n:
                return out
    raise AssertionError(f"no level with {k} keys")


@pytest.mark.parametrize("k", [0, 1, 2])
def test_stage_states_are_the_states_of_the_stage(k):
    for lv in _levels_with_keys(k):
        assert lv.num_keys == k
        for stage in range(k + 1):
            st = hs.stage_states(lv, stage, CFG)
            n = len(st["agent"])
            assert n > 0 and st["obs"].shape == (n, 32, 32, 3)
            assert st["held"].tolist() == [i < stage for i in range(3)]
            goal = stage if stage < k else H.GEM_GOAL
            assert st["goal"] == goal
            np.testing.assert_array_equal(st["goal_pos"], lv.gem if goal == H.GEM_GOAL else lv.keys[goal])
            for i in range(n):
                g, a = st["cells"][i], tuple(st["agent"][i])
                assert g[a] == H.FLOOR  # never on a wall, key, closed lock or the gem
                for j in range(k):  # keys < stage gone, keys >= stage in place
                    assert g[tuple(lv.keys[j])] == (H.FLOOR if j < stage else H.KEY + j)
                for j in range(stage, k):  # locks of later stages closed
                    assert g[tuple(lv.locks[j])] == H.LOCK + j
                # the agent can walk from the level's start to here with the keys it holds
                blocked = H._blocked_grid(g, st["held"])
                assert H.bfs_distances(blocked, lv.agent)[a] >= 0
                np.testing.assert_array_equal(st["obs"][i], H.render(g[None], st["agent"][i:i + 1],
                                                                     st["held"][None], CFG.cell_px)[0])
            # every free, entity-less cell reachable in this stage is present once
            assert len({tuple(a) for a in st["agent"]}) == n


def test_stage_states_opens_a_lock_only_behind_it():
    lv = _levels_with_keys(1, 1)[0]
    st = hs.stage_states(lv, 1, CFG)
    lock = tuple(lv.locks[0])
    closed = lv.cells() == H.WALL
    closed[lock] = True
    front = hs._reachable(closed, lv.agent)
    opened = [st["cells"][i][lock] == H.FLOOR for i in range(len(st["agent"]))]
    behind = [not front[tuple(a)] for a in st["agent"]]
    assert opened == behind and any(behind) and not all(behind)


def test_stage_states_validation():
    lv = _levels_with_keys(1, 1)[0]
    with pytest.raises(ValueError, match="stage"):
        hs.stage_states(lv, 2, CFG)
    with pytest.raises((TypeError, ValueError)):
        hs.stage_states(lv, -1, CFG)


class _Always(torch.nn.Module):
    """A policy that puts probability ~1 on one action (value 0)."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def forward(self, obs):
        logits = torch.full((len(obs), 9), -30.0)
        logits[:, self.action] = 30.0
        return logits, torch.zeros(len(obs))


def test_action_field_arrows_follow_action_geometry():
    lv = _levels_with_keys(1, 1)[0]
    for a, name in enumerate(H.ACTIONS):
        f = hs.action_field(_Always(a), lv, 0, CFG)
        np.testing.assert_allclose(f["probs"].sum(1), 1, atol=1e-6)
        np.testing.assert_allclose(f["arrow"], np.repeat(H.DELTAS[a][None].astype(float), len(f["agent"]), 0),
                                   atol=1e-6)
    f = hs.action_field(_Always(7), lv, 0, CFG)
    assert H.ACTIONS[7] == "right" and (f["arrow"][:, 1] > 0.99).all()


def test_collect_states_labels_match_the_env():
    seeds = H.level_seeds("test", 6)
    data = hs.collect_states(hs.oracle_policy(CFG), seeds, CFG, max_states=10_000)
    lengths = [len(H.solve(int(s), CFG)) for s in seeds]
    assert len(data["obs"]) == sum(lengths)  # every state of every oracle episode, the gem step excluded
    for i in range(len(data["obs"])):
        env = H.HeistEnv(CFG)
        env.reset(options={"level_seed": int(data["level_seed"][i])})
        for a in H.solve(int(data["level_seed"][i]), CFG)[:int(data["t"][i])]:
            obs, _, _, _, info = env.step(a)
        info = env._info()
        np.testing.assert_array_equal(env._obs(), data["obs"][i])
        np.testing.assert_array_equal(info["goal_pos"], data["goal_pos"][i])
        np.testing.assert_array_equal(info["agent"], data["agent"][i])
        assert info["goal"] == data["goal"][i]
        for j in range(3):
            want = info["keys"][j] if info["keys_present"][j] else [-1, -1]
            np.testing.assert_array_equal(want, data[f"key{j}"][i])
    capped = hs.collect_states(hs.oracle_policy(CFG), seeds, CFG, max_states=7, every=2)
    assert len(capped["obs"]) == 7 and set(capped["t"] % 2) == {0}


def _planted(n, h, seed=0):
    g = torch.Generator().manual_seed(seed)
    cells = torch.randint(0, 8, (n, 2), generator=g)
    acts = torch.randn(n, 3, h, h, generator=g) * 0.3
    f = h / 8
    for i in range(n):
        r, c = cells[i].tolist()
        r0, c0 = int(r * f), int(c * f)
        acts[i, 1, r0:max(r0 + 1, int((r + 1) * f)), c0:max(c0 + 1, int((c + 1) * f))] += 2
    return acts, cells


@pytest.mark.parametrize("h,acc,w1", [(16, 0.95, 0.95), (8, 0.95, 0.95), (4, None, 0.95)])
def test_spatial_probe_finds_a_planted_position(h, acc, w1):
    acts, cells = _planted(240, h)
    res = fit_spatial_probe(acts, cells, (8, 8), groups=torch.arange(240) // 3, steps=60)
    if acc is not None:
        assert res.accuracy >= acc
    else:  # a 4x4 map of an 8x8 grid: each position covers 2x2 cells, exact accuracy ~ 1/4
        assert 0.1 < res.accuracy < 0.5
    assert res.within1 >= w1
    assert res.control_accuracy < 0.2 and res.chance < 0.1
    assert abs(res.weight[1]) > 5 * abs(res.weight[[0, 2]]).max()  # the planted channel carries the read-out
    pred = res.predict(acts[res.test_idx])
    assert float((pred == cells[res.test_idx]).all(1).double().mean()) == pytest.approx(res.accuracy)


def test_spatial_probe_splits_by_group_and_validates():
    acts, cells = _planted(60, 8)
    groups = torch.arange(60) // 6
    res = fit_spatial_probe(acts, cells, (8, 8), groups=groups, control=None, steps=20)
    assert not set(groups[res.train_idx].tolist()) & set(groups[res.test_idx].tolist())
    assert len(res.train_idx) + len(res.test_idx) == 60 and np.isnan(res.control_accuracy)
    with pytest.raises(ValueError, match="n, c, h, w"):
        fit_spatial_probe(acts[:, 0], cells, (8, 8))
    with pytest.raises(ValueError, match="grid"):
        fit_spatial_probe(acts, cells + 8, (8, 8))
    with pytest.raises(ValueError, match="2 groups"):
        fit_spatial_probe(acts, cells, (8, 8), groups=torch.zeros(60))
    with pytest.raises(ValueError, match="control"):
        fit_spatial_probe(acts, cells, (8, 8), control="nope")


# ----------------------------------------------------------------------------------------------------------------
# causal-test helpers

def test_cell_mask_fine_and_coarse_maps():
    m = hs.cell_mask([[2, 3]], (32, 32), (8, 8))[0]
    assert m.sum() == 16 and m[8:12, 12:16].all()
    m = hs.cell_mask([[2, 3], [7, 7]], (8, 8), (8, 8))
    assert m[0].sum() == 1 and m[0, 2, 3] and m[1, 7, 7]
    m = hs.cell_mask([[5, 2]], (4, 4), (8, 8))[0]
    assert m.sum() == 1 and m[2, 1]
    with pytest.raises(ValueError, match="grid"):
        hs.cell_mask([[8, 0]], (8, 8), (8, 8))


class _Uniform(torch.nn.Module):
    def forward(self, obs):
        return torch.zeros(len(obs), 9), torch.zeros(len(obs))


def test_path_probability_of_uniform_and_decided_policies():
    lv = _levels_with_keys(1, 1)[0]
    st = hs.stage_states(lv, 0, CFG)
    far = max((tuple(a) for a in st["agent"]), key=lambda a: abs(a[0] - lv.agent[0]) + abs(a[1] - lv.agent[1]))
    assert hs.path_probability(_Uniform(), lv, 0, far, config=CFG) == pytest.approx(1 / 9)
    # a policy that always takes the first action of the path: probability 1 on every step of a straight path
    from rlinterp.envs.heist import _blocked_grid, _path
    actions = _path(_blocked_grid(st["cells"][0], st["held"]), tuple(lv.agent), far)
    p = hs.path_probability(_Always(actions[0]), lv, 0, far, config=CFG)
    if len(set(actions)) == 1:
        assert p == pytest.approx(1.0)
    else:  # the steps that need another action get probability ~e^-60: the geometric mean collapses
        assert p < 1e-3
    assert np.isnan(hs.path_probability(_Uniform(), lv, 0, tuple(lv.keys[0]), config=CFG))  # an entity cell
    assert np.isnan(hs.path_probability(_Uniform(), lv, 0, (0, 0), config=CFG))  # a wall


def test_steer_at_edits_only_masked_positions():
    from rlinterp.interp import steer_at
    act = torch.randn(2, 3, 4, 4)
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = True
    mask[1, 3, 3] = True
    d = torch.tensor([1.0, -2.0, 0.5])
    _, add = steer_at("x", mask, d, alpha=2.0)
    out = add(act)
    diff = out - act
    assert torch.allclose(diff[0, :, 1, 2], 2 * d) and torch.allclose(diff[1, :, 3, 3], 2 * d)
    assert diff.abs().sum() == pytest.approx(float(2 * 2 * d.abs().sum()))
    _, set_ = steer_at("x", mask, d, alpha=3.0, mode="set", channels=[1])
    out = set_(act)
    assert out[0, 1, 1, 2] == pytest.approx(-6.0) and out[1, 1, 3, 3] == pytest.approx(-6.0)
    assert torch.equal(out[0, 0], act[0, 0]) and torch.equal(out[0, 2], act[0, 2])
    untouched = torch.ones(4, 4, dtype=torch.bool)
    untouched[1, 2] = False
    assert torch.equal(out[0, 1][untouched], act[0, 1][untouched])
    with pytest.raises(ValueError, match="mode"):
        steer_at("x", mask, d, mode="mul")
    with pytest.raises(ValueError, match="does not match"):
        add(torch.randn(2, 5, 4, 4))


def test_retarget_bookkeeping_with_a_standing_agent():
    from rlinterp.models.impala import build_network
    net = build_network()
    with torch.no_grad():  # always stand still
        net.policy_head.weight.zero_()
        net.policy_head.bias.zero_()
        net.policy_head.bias[H.NOOP] = 50.0
    seeds = H.level_seeds("test", 4)
    starts = np.array([H.make_level(int(s), CFG).agent for s in seeds])
    targets = starts.copy()
    targets[2:] = [[0, 0], [0, 0]]  # unreachable walls
    calls = []

    def edit(cells):
        calls.append(cells.clone())
        return []

    out = hs.retarget(net, seeds, targets, edit, CFG, max_steps=5)
    assert len(calls) == 1 and torch.equal(calls[0], torch.as_tensor(targets))
    assert out["hit_target"].tolist() == [True, True, False, False]
    assert out["t_target"].tolist() == [1, 1, -1, -1]
    assert not out["success"].any() and not out["first_goal_first"].any()


def test_entity_maps_and_unit_correlations():
    seeds = H.level_seeds("test", 5)
    data = hs.collect_states(hs.oracle_policy(CFG), seeds, CFG, max_states=60)
    maps = hs.entity_maps(data, CFG)
    for i in range(len(data["obs"])):
        lv_cells = None
        env = H.HeistEnv(CFG)
        env.reset(options={"level_seed": int(data["level_seed"][i])})
        for a in H.solve(int(data["level_seed"][i]), CFG)[:int(data["t"][i])]:
            env.step(a)
        lv_cells = env.cells
        np.testing.assert_array_equal(maps["wall"][i, 1:], lv_cells[1:] == H.WALL)
        assert maps["agent"][i].sum() == 1 and maps["agent"][i][tuple(data["agent"][i])]
        assert maps["current_goal"][i].sum() == 1 and maps["current_goal"][i][tuple(data["goal_pos"][i])]
        keys = (lv_cells >= H.KEY) & (lv_cells < H.KEY + 3)
        np.testing.assert_array_equal(maps["key"][i], keys)
        assert not (maps["other_entities"][i] & maps["current_goal"][i]).any()
    # a planted unit: channel 1 = the current-goal map itself (8x8), channel 0 noise; on a 4x4 map the max-pooled one
    g = torch.as_tensor(maps["current_goal"]).float()
    acts = torch.stack([torch.randn_like(g), g], 1)
    corr = hs.unit_map_correlations(acts, maps)
    assert corr.loc[1, "current_goal"] == pytest.approx(1.0, abs=1e-6)
    assert abs(corr.loc[0, "current_goal"]) < 0.3
    coarse = torch.nn.functional.max_pool2d(acts, 2)
    assert hs.unit_map_correlations(coarse, maps).loc[1, "current_goal"] == pytest.approx(1.0, abs=1e-6)
    fine = torch.nn.functional.interpolate(acts, scale_factor=4, mode="nearest")
    assert hs.unit_map_correlations(fine, maps).loc[1, "current_goal"] == pytest.approx(1.0, abs=1e-6)


def test_evaluate_applies_forward_hooks_on_every_step():
    """A hook that forces "stand still" makes every episode time out, where the same (near-uniform, untrained) network
    unhooked reaches the gem on some levels; the hooks are removed afterwards."""
    from rlinterp.models.impala import build_network

    torch.manual_seed(0)
    net = build_network().eval()
    seeds_ = H.level_seeds("test", 16)
    cfg = H.HeistConfig(max_difficulty=0, num_keys=0, max_steps=80)  # 5x5 mazes, gem only: a random walk gets there

    def stand(logits, hook):
        out = torch.full_like(logits, -1e9)
        out[:, H.ACTIONS.index("noop")] = 0.0
        return out

    frozen = hs.evaluate(net, seeds_, cfg, fwd_hooks=[("hook_logits", stand)])
    assert not frozen["success"].any() and (frozen["length"] == cfg.max_steps).all()
    free = hs.evaluate(net, seeds_, cfg)
    assert free["success"].sum() >= 3
    assert all(len(h._forward_hooks) == 0 for h in net.mod_dict.values())
