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


def _rli_play(*args, stdin="q\n", runs=None):
    import os

    env = {**os.environ, **({"RLINTERP_COINFLIP_RUNS": str(runs)} if runs is not None else {})}
    return subprocess.run([sys.executable, "-m", "rlinterp.cli", "play", "coinflip", *args], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=300, env=env)


def test_play_names_the_command_that_trains_an_agent_for_another_game(tmp_path):
    proc = _rli_play("--n-coins", "3", "--n-flips", "6", "--sigma", "0.25", "--seed", "1", runs=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "DQN agent not playing: no DQN has been trained for 3 coins, 6 flips and sigma = 0.25" in proc.stdout
    assert "the shipped one plays 5 coins, 20 flips, sigma = 0.3" in proc.stdout
    assert "`rli run coinflip/02_agent -p n_coins=3 -p n_flips=6 -p sigma=0.25`" in proc.stdout
    assert "final scores: person" in proc.stdout and "agent" not in proc.stdout.split("final scores:")[1]


def test_play_uses_an_agent_trained_for_this_game(tmp_path):
    from rlinterp.studies import coinflip as cf

    train = dict(d_hidden=16, num_games=32, batch_size=32, total_steps=40, learning_starts=8, buffer_size=4096,
                 target_update_every=10, eval_every=20)
    cf.agent_for_world(3, 6, 0.25, train=train, runs_dir=tmp_path)
    proc = _rli_play("--n-coins", "3", "--n-flips", "6", "--sigma", "0.25", "--seed", "1", stdin="1\n2\nq\n",
                     runs=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "(the DQN plays: the DQN trained for this game" in proc.stdout
    assert "agent: coin" in proc.stdout and "agent" in proc.stdout.split("final scores:")[1]
    other = _rli_play("--n-coins", "3", "--n-flips", "6", "--sigma", "0.3", "--seed", "1", runs=tmp_path)
    assert "DQN agent not playing" in other.stdout  # another sigma is another game: that agent does not play it


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
