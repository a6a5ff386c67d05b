"""The coin-flip DQN agent: hooks, permutation invariance, determinism, learning, and the shipped checkpoint."""
import shutil

import numpy as np
import pytest
import torch

from rlinterp import DATA
from rlinterp.learners import dqn
from rlinterp.models.qnet import QNetwork
from rlinterp.studies import coinflip as cf
from rlinterp.studies import coinflip_bayes as bayes
from rlinterp.pipeline.manifest import DataError, read_manifest

TINY = dict(n_coins=3, n_flips=6, sigma=0.3, d_hidden=32, num_games=256, batch_size=256, total_steps=600,
            learning_starts=12, buffer_size=50_000, target_update_every=50, lr=3e-3, lr_final=1e-4,
            eps_decay_frac=0.5, eval_every=0)


def random_counts(rng, B, n, k):
    """Random reachable states: B games with n coins after fewer than k flips."""
    counts = np.zeros((B, n, 2), dtype=np.int64)
    made = rng.integers(0, k, B)
    for b in range(B):
        for _ in range(made[b]):
            counts[b, rng.integers(n), rng.integers(2)] += 1
    return counts, k - made


def test_hook_points_in_cache():
    model = QNetwork(dqn.DQNConfig())
    obs = torch.rand(4, model.cfg.d_obs)
    q, cache = model.run_with_cache(obs)
    assert q.shape == (4, 5)
    for name, shape in [("hook_obs", (4, 11)), ("mlp.0.hook_pre", (4, 128)), ("mlp.0.hook_post", (4, 128)),
                        ("mlp.1.hook_pre", (4, 128)), ("mlp.1.hook_post", (4, 128)), ("hook_q_values", (4, 5))]:
        assert cache[name].shape == shape
    assert torch.allclose(cache["hook_q_values"], q)
    assert torch.all(cache["mlp.1.hook_post"] == torch.relu(cache["mlp.1.hook_pre"]))


def test_act_is_permutation_invariant():
    torch.manual_seed(0)
    model = QNetwork(dqn.DQNConfig(d_hidden=16))
    rng = np.random.default_rng(0)
    counts, left = random_counts(rng, 300, 5, 20)
    a = model.act(counts, left)
    for _ in range(3):
        perm = np.stack([rng.permutation(5) for _ in range(len(counts))])  # permuted[b, i] = counts[b, perm[b, i]]
        permuted = np.take_along_axis(counts, perm[..., None], axis=1)
        a_perm = model.act(permuted, left)
        # the chosen coin is the same coin: identical counts (ties between identical coins are interchangeable)
        b = np.arange(len(counts))
        np.testing.assert_array_equal(permuted[b, a_perm], counts[b, a])
        unique = np.array([len({tuple(c) for c in s}) == 5 for s in counts])
        np.testing.assert_array_equal(perm[b, a_perm][unique], a[unique])


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="d_hidden"):
        dqn.DQNConfig(d_hidden=0)
    with pytest.raises(ValueError, match="unknown"):
        dqn.DQNConfig.from_dict({"width": 3})
    model = QNetwork(dqn.DQNConfig(d_hidden=8))
    with pytest.raises(ValueError, match="shape"):
        model.act(np.zeros((2, 4, 2), dtype=np.int64), np.array([3, 3]))


def test_training_is_deterministic():
    cfg = dqn.DQNConfig(**{**TINY, "total_steps": 60})
    m1, h1 = dqn.train(cfg, progress=False, evaluator=None)
    m2, h2 = dqn.train(cfg, progress=False, evaluator=None)
    for (k1, v1), (k2, v2) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert k1 == k2 and torch.equal(v1, v2), k1
    np.testing.assert_array_equal(h1["loss"], h2["loss"])  # nan-aware


def test_tiny_training_beats_random():
    cfg = dqn.DQNConfig(**TINY)
    model, hist = dqn.train(cfg, progress=False)
    value = cf.exact_value(model)
    assert hist["best_value"][0] == pytest.approx(value)  # the best evaluated weights are returned
    optimal = bayes.solve(3, 6, 0.3, progress=False).value
    random = 3.0  # k / 2
    assert value > random + 0.5 * (optimal - random), (value, optimal)


@pytest.fixture(scope="module")
def shipped():
    if "coinflip/dqn.pt" not in read_manifest():
        pytest.skip("data/coinflip/dqn.pt not shipped yet")
    from rlinterp import artifacts

    model = artifacts.load("coinflip/dqn")
    return model, model.history


def test_shipped_agent_matches_manifest(shipped):
    model, hist = shipped
    assert model.cfg == dqn.DQNConfig()  # the defaults are the shipped run, so retraining reproduces it
    value = cf.exact_value(model)
    assert value > 13.5  # random play scores 10
    metrics = read_manifest()["coinflip/dqn.pt"]["metrics"]
    assert value == pytest.approx(metrics["expected_heads"], abs=1e-5)
    assert hist["best_value"][0] == pytest.approx(value, abs=1e-5)
    assert (DATA / "coinflip/dqn.pt").stat().st_size < 10 * 2**20


def test_corrupt_checkpoint_raises(tmp_path, shipped):
    (tmp_path / "coinflip").mkdir()
    shutil.copy(DATA / "MANIFEST.json", tmp_path / "MANIFEST.json")
    payload = bytearray((DATA / "coinflip/dqn.pt").read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    (tmp_path / "coinflip/dqn.pt").write_bytes(bytes(payload))
    with pytest.raises(DataError, match="corrupt"):
        from rlinterp import artifacts

        artifacts.load("coinflip/dqn", data_dir=tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# The agent of a game: the shipped checkpoint only for its own game
# ----------------------------------------------------------------------------------------------------------------
TRAIN_TINY = dict(d_hidden=16, num_games=32, batch_size=32, total_steps=40, learning_starts=8, buffer_size=4096,
                  target_update_every=10, eval_every=20)


def _no_shipped(monkeypatch):
    from rlinterp import artifacts

    def refuse(*a, **k):
        raise AssertionError("the shipped checkpoint must not be loaded for another game")

    monkeypatch.setattr(artifacts, "load", refuse)


@pytest.mark.parametrize("world", [(3, 4, 0.3), (5, 20, 0.2), (4, 20, 0.3), (5, 19, 0.3)])
def test_another_world_never_loads_the_shipped_checkpoint(monkeypatch, tmp_path, world):
    """Every world but the shipped one (also one that differs only in sigma, n or k) trains, and never touches the
    shipped checkpoint; asking again reuses the agent trained with exactly that config."""
    _no_shipped(monkeypatch)
    if world[:2] == (5, 20):  # the full-size game: exact evaluations are slower, so train even less
        train = {**TRAIN_TINY, "total_steps": 10, "eval_every": 10, "learning_starts": 2}
    else:
        train = TRAIN_TINY
    model, source = cf.agent_for_world(*world, train=train, runs_dir=tmp_path)
    assert source == "trained" and cf.world_of(model.cfg) == world
    assert model.cfg.d_hidden == 16 and model.history["eval_step"]
    path = cf.checkpoint_path(model.cfg, tmp_path)
    assert path.exists() and path.name.startswith(f"dqn-n{world[0]}-k{world[1]}-sigma{world[2]:g}-")
    again, source2 = cf.agent_for_world(*world, train=train, runs_dir=tmp_path)
    assert source2 == "cached"
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    other, source3 = cf.agent_for_world(*world, train={**train, "seed": 1}, runs_dir=tmp_path)
    assert source3 == "trained" and other.cfg.seed == 1  # another config is another agent, not the cached one


def test_the_shipped_game_loads_the_shipped_checkpoint_unless_retrained(monkeypatch, tmp_path):
    from rlinterp import artifacts
    from rlinterp.learners.dqn import DQNConfig

    shipped = QNetwork(DQNConfig(d_hidden=8))
    shipped.history = {}
    monkeypatch.setattr(artifacts, "load", lambda name, device="cpu", data_dir=None: shipped)
    model, source = cf.agent_for_world(5, 20, 0.3, runs_dir=tmp_path)
    assert model is shipped and source == "shipped"
    # a shipped file whose stored config is for another game than the declared one is not used for this game
    wrong = QNetwork(DQNConfig(n_coins=3, n_flips=4, d_hidden=8))
    monkeypatch.setattr(artifacts, "load", lambda name, device="cpu", data_dir=None: wrong)
    train = {**TRAIN_TINY, "total_steps": 10, "eval_every": 10, "learning_starts": 2}
    model, source = cf.agent_for_world(5, 20, 0.3, train=train, runs_dir=tmp_path)
    assert source == "trained" and cf.world_of(model.cfg) == (5, 20, 0.3) and model is not wrong


@pytest.mark.parametrize("bad, message", [
    (dict(n_coins=1), "n_coins"), (dict(n_flips=0), "n_flips"), (dict(sigma=0.0), "sigma"),
    (dict(sigma=float("nan")), "sigma"), (dict(retrain="yes"), "retrain"),
    (dict(train={"n_coins": 4}), "train sets the game"),
])
def test_agent_for_world_validates(monkeypatch, tmp_path, bad, message):
    _no_shipped(monkeypatch)
    args = {"n_coins": 3, "n_flips": 4, "sigma": 0.3, **bad}
    with pytest.raises(ValueError, match=message):
        cf.agent_for_world(args.pop("n_coins"), args.pop("n_flips"), args.pop("sigma"), runs_dir=tmp_path, **args)


def test_find_agent_names_the_command_then_finds_the_trained_agent(monkeypatch, tmp_path):
    _no_shipped(monkeypatch)
    model, where = cf.find_agent(3, 4, 0.25, runs_dir=tmp_path)
    assert model is None and where == "rli run coinflip/02_agent -p n_coins=3 -p n_flips=4 -p sigma=0.25"
    trained, _ = cf.agent_for_world(3, 4, 0.25, train=TRAIN_TINY, runs_dir=tmp_path)
    cf.agent_for_world(3, 5, 0.25, train=TRAIN_TINY, runs_dir=tmp_path)  # another game: not this one's agent
    found, where = cf.find_agent(3, 4, 0.25, runs_dir=tmp_path)
    assert cf.world_of(found.cfg) == (3, 4, 0.25) and "trained for this game" in where
    assert cf.find_agent(3, 4, 0.3, runs_dir=tmp_path)[0] is None  # sigma is part of the game
