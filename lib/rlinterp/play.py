"""Play the coin-flip game in the terminal against the Bayes-optimal policy (and optionally an agent).

Every player faces the same coins with the same flip outcomes (common random numbers: the j-th flip of coin i is a
head iff ``u[i, j] < p[i]`` for one pre-drawn ``u``), so the scores differ only through the choices made.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rlinterp.studies.coinflip_bayes import solve
from rlinterp.envs.coinflip import BatchedCoinFlip

QUIT = {"q", "quit", "exit"}


def _board(counts: np.ndarray, prior: Any) -> list[str]:
    mean = prior.posterior_mean(counts[:, 0], counts[:, 1])
    std = prior.posterior_std(counts[:, 0], counts[:, 1])
    lines = ["  coin | heads | tails | P(head) +- sd"]
    for i, ((h, t), m, s) in enumerate(zip(counts, mean, std)):
        lines.append(f"  {i + 1:>4} | {h:>5} | {t:>5} | {m:.3f} +- {s:.3f}")
    return lines


def play_coinflip(n_coins: int = 5, n_flips: int = 20, sigma: float = 0.3, seed: int | None = None,
                  agent: Callable[..., np.ndarray] | None = None, input_fn: Callable[[str], str] = input,
                  print_fn: Callable[..., None] = print) -> dict[str, Any]:
    """Interactive game. Each turn: type a coin number (1..n_coins) to flip it, or 'q' to quit (Ctrl-D and Ctrl-C
    quit too; every way of quitting ends with the scores and the true head probabilities).

    Returns ``{"person": heads, "optimal": heads, ["agent": heads,] "p": true weights, "turns": flips played,
    "quit": bool}``.
    """
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**31))
    sol = solve(n_coins, n_flips, sigma, progress=False)
    players = ["person", "optimal"] + (["agent"] if agent is not None else [])
    envs = {name: BatchedCoinFlip(n_coins, n_flips, sigma, num_games=1, seed=seed) for name in players}
    for env in envs.values():
        env.reset()  # same seed -> same p and the same flip outcomes for everyone
    p = envs["person"].p[0].copy()
    rng = np.random.default_rng([seed, 1])
    scores = dict.fromkeys(players, 0)
    print_fn(f"Coin-flip game: {n_coins} coins, {n_flips} flips. Each coin's head probability was drawn from "
             f"Normal(0.5, {sigma}) clipped to [0, 1]. Maximise heads! (Bayes-optimal expectation: {sol.value:.2f})")
    turns, quit_ = 0, False
    while turns < n_flips:
        counts, left = envs["person"].state()
        print_fn("")
        print_fn(f"flips left: {left[0]}   scores: " + ", ".join(f"{k} {v}" for k, v in scores.items()))
        for line in _board(counts[0], sol.prior):
            print_fn(line)
        try:
            answer = input_fn(f"flip which coin (1-{n_coins}, q to quit)? ").strip().lower()
        except (EOFError, KeyboardInterrupt):  # Ctrl-D, a finished pipe or Ctrl-C: quit, showing the scores
            print_fn("")
            answer = "q"
        if answer in QUIT:
            quit_ = True
            break
        try:
            choice = int(answer) - 1
        except ValueError:
            choice = -1
        if not 0 <= choice < n_coins:
            print_fn(f"'{answer}' is not a coin: type a number from 1 to {n_coins}, or q to quit.")
            continue
        moves = {"person": choice}
        oc, ol = envs["optimal"].state()
        moves["optimal"] = int(sol.action(oc, ol)[0])
        if agent is not None:
            ac, al = envs["agent"].state()
            if getattr(agent, "needs_p", False):
                moves["agent"] = int(np.asarray(agent(ac, al, rng, p=envs["agent"].p))[0])
            else:
                moves["agent"] = int(np.asarray(agent(ac, al, rng))[0])
        report = []
        for name in players:
            _, reward, _ = envs[name].step(np.array([moves[name]]))
            scores[name] += int(reward[0])
            report.append(f"{name}: coin {moves[name] + 1} -> {'HEAD' if reward[0] else 'tail'}")
        print_fn("   ".join(report))
        turns += 1
    print_fn("")
    print_fn("Game over." if not quit_ else "You quit.")
    print_fn("final scores: " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    print_fn("true head probabilities: " + ", ".join(f"coin {i + 1}: {q:.3f}" for i, q in enumerate(p)))
    return {**scores, "p": p.tolist(), "turns": turns, "quit": quit_}
