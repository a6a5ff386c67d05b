"""Tests of the terminal coin-flip game with a scripted player."""
import numpy as np

from rlinterp.studies.coinflip_bayes import baselines, play_games, solve
from rlinterp.envs.coinflip import BatchedCoinFlip
from rlinterp.play import play_coinflip


def _script(answers):
    it = iter(answers)
    return lambda prompt: next(it)


def test_person_copying_optimal_ties_it():
    n, k, sigma, seed = 3, 6, 0.3, 7
    sol = solve(n, k, sigma, progress=False)
    env = BatchedCoinFlip(n, k, sigma, num_games=1, seed=seed)
    env.reset()
    moves = []
    for _ in range(k):  # the optimal coin choices on this very game
        counts, left = env.state()
        a = sol.action(counts, left)
        moves.append(str(int(a[0]) + 1))
        env.step(a)
    lines = []
    greedy = baselines(n, k, sigma)["greedy"][0]
    out = play_coinflip(n, k, sigma, seed=seed, agent=greedy, input_fn=_script(["", "zero", "9", "0"] + moves),
                        print_fn=lambda *a: lines.append(" ".join(map(str, a))))
    assert out["person"] == out["optimal"] and out["turns"] == k and not out["quit"]
    assert out["optimal"] == int(env.counts[0, :, 0].sum())
    np.testing.assert_allclose(out["p"], env.p[0])
    env2 = BatchedCoinFlip(n, k, sigma, num_games=1, seed=seed)
    env2.reset()
    assert out["agent"] == play_games(greedy, env2, np.random.default_rng([seed, 1]))[0]
    text = "\n".join(lines)
    assert text.count("is not a coin") == 4
    assert "final scores" in text and "true head probabilities" in text and "P(head)" in text


def test_quit():
    lines = []
    out = play_coinflip(2, 5, 0.2, seed=0, input_fn=_script(["1", "2", "q"]), print_fn=lambda *a: lines.append(a))
    assert out["quit"] and out["turns"] == 2 and "agent" not in out
    assert 0 <= out["person"] <= 2 and 0 <= out["optimal"] <= 2
