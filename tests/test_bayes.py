"""Tests of the exact Bayes-optimal DP, exact policy evaluation, baselines and Monte Carlo evaluation."""
import functools
import itertools

import numpy as np
import pytest

from rlinterp.studies.coinflip_bayes import (
    baselines,
    bayes_ucb_probs,
    evaluate_exact,
    evaluate_mc,
    greedy_probs,
    oracle_value,
    policy_from_probs,
    random_probs,
    solve,
)
from rlinterp.envs.coinflip import BatchedCoinFlip, CoinPrior, canonicalize
from rlinterp.stats import mean_interval, paired_difference


def _brute_force(n, k, sigma, choose=None):
    """V of the full game tree in the original coin order (no canonicalisation); ``choose`` = fixed policy."""
    prior = CoinPrior(sigma, max_count=k)

    @functools.lru_cache(None)
    def V(state):
        if sum(h + t for h, t in state) == k:
            return 0.0
        vals = []
        for i, (h, t) in enumerate(state):
            q = float(prior.predictive(h, t))
            head = state[:i] + ((h + 1, t),) + state[i + 1:]
            tail = state[:i] + ((h, t + 1),) + state[i + 1:]
            vals.append(q * (1 + V(head)) + (1 - q) * V(tail))
        if choose is None:
            return max(vals)
        return vals[choose(state)]

    return V


@pytest.mark.parametrize("n,k,sigma", [(2, 3, 0.3), (3, 3, 0.2), (2, 6, 0.3), (3, 4, 1.0), (1, 4, 0.3)])
def test_dp_matches_brute_force(n, k, sigma):
    sol = solve(n, k, sigma, progress=False)
    V = _brute_force(n, k, sigma)
    start = ((0, 0),) * n
    assert sol.value == pytest.approx(V(start), abs=1e-12)
    # every state (in every coin order) at levels < k: V* and Q*
    pairs = [(h, t) for h in range(k + 1) for t in range(k + 1 - h)]
    states = [s for s in itertools.product(pairs, repeat=n) if sum(h + t for h, t in s) < k]
    counts = np.array(states, dtype=np.int64)
    np.testing.assert_allclose(sol.values(counts), [V(s) for s in states], atol=1e-12)
    q = sol.q_values(counts)
    for s, row in zip(states, q):
        for i, (h, t) in enumerate(s):
            assert row[i] == pytest.approx(
                sol.prior.predictive(h, t) * (1 + V(s[:i] + ((h + 1, t),) + s[i + 1:]))
                + (1 - sol.prior.predictive(h, t)) * V(s[:i] + ((h, t + 1),) + s[i + 1:]), abs=1e-12)
    # the optimal action attains the max Q
    a = sol.action(counts)
    np.testing.assert_allclose(q[np.arange(len(q)), a], q.max(1), atol=1e-12)


@pytest.mark.parametrize("sigma,n,k,ref", [(0.2, 2, 10, 5.5270), (0.2, 3, 10, 5.7130), (0.2, 4, 16, 9.5698),
                                           (0.2, 5, 20, 12.2939), (0.3, 5, 20, 14.0269)])
def test_reference_values(sigma, n, k, ref):
    sol = solve(n, k, sigma, progress=False)
    assert round(sol.value, 4) == ref


@pytest.fixture(scope="module")
def sol53():
    return solve(5, 20, 0.3, progress=False)


def test_solution_lookup_and_exact_evaluation(sol53):
    sol = sol53
    assert sol.num_states == 347_846
    assert evaluate_exact(sol.probs, 5, 20, 0.3) == pytest.approx(sol.value, abs=1e-10)
    rng = np.random.default_rng(0)
    counts = np.zeros((3, 5, 2), dtype=np.int64)
    counts[0, 2] = [3, 1]
    counts[1, 0] = [0, 2]
    counts[1, 4] = [5, 5]
    counts[2] = [[1, 0], [0, 1], [2, 2], [0, 0], [4, 0]]
    q = sol.q_values(counts)
    for b in range(3):  # permutation equivariance of Q, invariance of V
        order = rng.permutation(5)
        np.testing.assert_allclose(sol.q_values(counts[b:b + 1, order])[0], q[b, order])
        assert sol.values(counts[b:b + 1, order])[0] == pytest.approx(q[b].max())
    with pytest.raises(ValueError):
        sol.values(counts, flips_left=np.array([20, 20, 20]))  # inconsistent with the counts
    with pytest.raises(ValueError):
        sol.values(np.full((1, 5, 2), 3))  # 30 flips > 20


def test_greedy_and_baselines_exact(sol53):
    prior = sol53.prior
    greedy = {tb: evaluate_exact(greedy_probs(prior, tb), 5, 20, 0.3) for tb in ("explore", "exploit", "uniform")}
    # tie-break among equal posterior means (coins with h == t) matters; exploring ties is best
    assert greedy["exploit"] < greedy["uniform"] < greedy["explore"] < sol53.value
    assert greedy["explore"] == pytest.approx(13.8741, abs=1e-4)
    # the same values from a brute-force recursion in original coin order (explore tie-break)
    def choose(state):
        m = [float(prior.predictive(h, t)) for h, t in state]
        tied = [i for i in range(len(state)) if m[i] >= max(m) - 1e-12]
        return min(tied, key=lambda i: (sum(state[i]), i))

    V = _brute_force(3, 6, 0.3, choose)
    assert evaluate_exact(greedy_probs(CoinPrior(0.3, 6), "explore"), 3, 6, 0.3) == pytest.approx(
        V(((0, 0),) * 3), abs=1e-12)
    assert evaluate_exact(random_probs, 3, 6, 0.3) == pytest.approx(3.0)
    ucb = evaluate_exact(bayes_ucb_probs(prior, 20), 5, 20, 0.3)
    assert 12 < ucb < sol53.value
    assert oracle_value(5, 20, 0.3) > sol53.value
    with pytest.raises(ValueError):
        evaluate_exact(lambda sc, fl: np.ones((len(sc), 5)), 5, 3, 0.3)  # not a distribution
    with pytest.raises(ValueError):
        greedy_probs(prior, "bogus")


def test_exact_matches_monte_carlo(sol53):
    b = baselines(5, 20, 0.3, sol53)
    pols = {name: b[name][0] for name in ("greedy", "optimal", "oracle", "random")}
    R = evaluate_mc(pols, 5, 20, 0.3, num_games=20_000, seed=1, batch_size=8_000)
    exact = {"greedy": evaluate_exact(b["greedy"][1], 5, 20, 0.3), "optimal": sol53.value,
             "oracle": oracle_value(5, 20, 0.3), "random": 10.0}
    for name, r in R.items():
        assert r.shape == (20_000,)
        m, lo, hi = mean_interval(r, level=0.999)
        assert lo < exact[name] < hi, name
    d = paired_difference(R["optimal"], R["greedy"], level=0.999)
    assert d.lo < sol53.value - exact["greedy"] < d.hi
    assert d.half < mean_interval(R["optimal"], 0.999).half  # CRN helps


def test_mc_crn_and_policies(sol53):
    b = baselines(5, 20, 0.3, sol53)
    pol = b["thompson"][0]
    R1 = evaluate_mc({"a": b["optimal"][0], "b": b["optimal"][0], "t": pol}, 5, 20, 0.3, num_games=500, seed=3)
    R2 = evaluate_mc({"t": pol}, 5, 20, 0.3, num_games=500, seed=3)
    np.testing.assert_array_equal(R1["a"], R1["b"])  # same games, same deterministic policy
    np.testing.assert_array_equal(R1["t"], R2["t"])  # seeded
    # policies map canonical choices back to original coins
    env = BatchedCoinFlip(5, 20, 0.3, num_games=64, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    for _ in range(7):
        env.step(rng.integers(0, 5, 64))
    counts, left = env.state()
    for name, (policy, probs_fn) in b.items():
        kw = {"p": env.p} if name == "oracle" else {}
        a = policy(counts, left, rng, **kw)
        assert a.shape == (64,) and np.all((a >= 0) & (a < 5))
        if probs_fn is not None and name != "random":
            sorted_counts, _ = canonicalize(counts)
            pos = probs_fn(sorted_counts, left).argmax(1)
            np.testing.assert_array_equal(counts[np.arange(64), a], sorted_counts[np.arange(64), pos])
    # a deterministic probs function turned into a policy, without rng
    greedy = policy_from_probs(greedy_probs(sol53.prior))
    assert greedy(np.zeros((2, 5, 2), np.int64), np.array([20, 20])).tolist() == [0, 0]


def test_solve_validation():
    for kwargs in [dict(n_coins=0), dict(n_flips=0), dict(sigma=-0.2), dict(n_coins=2.0)]:
        with pytest.raises(ValueError):
            solve(**{"n_coins": 2, "n_flips": 3, "sigma": 0.3, **kwargs}, progress=False)
    sol = solve(3, 4, 0.0, progress=False)  # all coins fair: every policy gets k/2
    assert sol.value == pytest.approx(2.0)
