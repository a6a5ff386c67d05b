"""Tests of the terminal coin-flip game with a scripted player, and of `rli play` as a user runs it."""
import subprocess
import sys

import numpy as np
import pytest

from rlinterp import ROOT

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


def test_ctrl_c_ends_the_game_with_the_scores():
    answers = iter(["1", "2"])

    def keyboard(prompt):
        try:
            return next(answers)
        except StopIteration:
            raise KeyboardInterrupt from None  # the player presses Ctrl-C at the third prompt

    lines = []
    out = play_coinflip(2, 5, 0.2, seed=0, input_fn=keyboard, print_fn=lambda *a: lines.append(" ".join(map(str, a))))
    assert out["quit"] and out["turns"] == 2
    text = "\n".join(lines)
    assert "You quit." in text and "final scores: person" in text and "true head probabilities" in text


def _rli_play(*args, stdin="q\n"):
    return subprocess.run([sys.executable, "-m", "rlinterp.cli", "play", "coinflip", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_play_says_why_the_dqn_does_not_play_another_size():
    proc = _rli_play("--n-coins", "3", "--n-flips", "6", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "DQN agent not playing: the shipped DQN was trained for 5 coins and 20 flips" in proc.stdout
    assert "this game has 3 coins and 6 flips" in proc.stdout and "final scores: person" in proc.stdout
    assert "agent" not in proc.stdout.split("final scores:")[1]


@pytest.mark.parametrize("args, message", [
    (["--sigma", "-1"], "--sigma (prior sd of the coin weights) must be a finite number > 0, got -1.0"),
    (["--sigma", "0"], "must be a finite number > 0, got 0.0"),
    (["--sigma", "nan"], "must be a finite number > 0, got nan"),
    (["--sigma", "inf"], "must be a finite number > 0, got inf"),
    (["--n-coins", "0"], "--n-coins must be at least 1, got 0"),
    (["--n-flips", "-2"], "--n-flips must be at least 1, got -2"),
])
def test_play_validates_its_options(capsys, args, message):
    from rlinterp.cli import main

    assert main(["play", "coinflip", *args]) == 2  # refused before any game (or DQN) is set up
    assert message in capsys.readouterr().err


def test_play_option_messages(capsys):
    from rlinterp.cli import main

    assert main(["play", "coinflip", "--sigma", "-1", "--n-flips", "0"]) == 2
    err = capsys.readouterr().err
    assert "--sigma (prior sd of the coin weights) must be a finite number > 0, got -1.0" in err
    assert "--n-flips must be at least 1, got 0" in err
