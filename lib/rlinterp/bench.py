"""``rli bench``: each study's target numbers, measured now on the shipped checkpoints.

Targets are research claims ("the agent is within 1% of Bayes-optimal"), so they are measured and reported here and
in the chapters, never asserted in timed unit tests. Each study contributes one function returning rows
``(metric, measured, target, met)``; a study whose checkpoint is missing reports why instead of failing the others.
"""
from __future__ import annotations

import time
from collections.abc import Callable

Row = tuple[str, str, str, bool | None]


def coinflip(fast: bool = False) -> list[Row]:
    from rlinterp import artifacts
    from rlinterp.studies.coinflip import evaluate

    model = artifacts.load("coinflip/dqn")
    m = evaluate(model, num_games=20_000 if fast else 200_000)
    ci = f"[{m['mc_diff_lo']:+.4f}, {m['mc_diff_hi']:+.4f}]"
    return [
        ("expected heads (exact), n=5 k=20 σ=0.3", f"{m['expected_heads']:.4f}", f"optimal {m['optimal']:.4f}", None),
        ("% of Bayes-optimal", f"{m['pct_optimal']:.2f}%", "≥ 99%", m["pct_optimal"] >= 99.0),
        (f"agent − greedy, paired MC ({m['mc_games']} games), 95% CI", f"{m['mc_diff_vs_greedy']:+.4f} {ci}",
         "CI > 0", m["mc_diff_lo"] > 0),
        ("exact agent − greedy", f"{m['expected_heads'] - m['greedy']:+.4f}", "> 0", m["expected_heads"] > m["greedy"]),
        ("greedy→optimal gap closed", f"{100 * m['gap_closed']:.1f}%", "report", None),
    ]


def ad(fast: bool = False) -> list[Row]:
    """Algorithm Distillation on Dark Room: AD and ED from an empty context on the 16 held-out goals (sampling)."""
    import numpy as np
    import torch

    from rlinterp import artifacts
    from rlinterp.seeds import split
    from rlinterp.studies.ad import evaluate_darkroom
    from rlinterp.envs.darkroom import darkroom_goal_split, oracle_return

    torch.manual_seed(0)
    torch.set_num_threads(1)  # small batches: extra threads only spin (and fight other jobs for the cores)
    _, test_goals = darkroom_goal_split(seed=0)
    oracle = oracle_return(test_goals).mean()
    n_seeds, n_eps = (1, 10) if fast else (5, 20)
    seeds = split("ad").test_seeds(n_seeds)
    curves = {k: evaluate_darkroom(artifacts.load(f"ad/darkroom_{k}"), test_goals, n_eps, seeds, 1.0).mean(0) / oracle
              for k in ("ad", "ed")}
    hit = np.nonzero(curves["ad"] >= 0.8)[0]
    first = int(hit[0]) + 1 if len(hit) else None
    ed_gain = float(curves["ed"][-3:].mean() - curves["ed"][:3].mean())
    return [
        (f"AD return / oracle, episode 10 ({16 * n_seeds} rollouts)", f"{curves['ad'][9]:.0%}", "report", None),
        ("AD: first episode with mean ≥ 80% of oracle", str(first or f"> {n_eps}"), "≤ 10",
         first is not None and first <= 10),
        ("ED: last 3 − first 3 episodes (fraction of oracle)", f"{ed_gain:+.2f}", "no improvement (< 0.1)",
         ed_gain < 0.1),
    ]


def heist(fast: bool = False) -> list[Row]:
    """Heist: environment throughput on one core, and the shipped CNN and bilinear agents on the first test levels
    (each one's mode, sampled or greedy, chosen on validation levels as in the agent chapter) against the targets,
    judged on the 95% intervals (the bilinear agent within 10 points of the CNN: the paired difference's upper end),
    with the random policy and the BFS oracle on the same levels."""
    from rlinterp import artifacts
    from rlinterp.envs.heist import HeistConfig, bench_steps_per_second
    from rlinterp.seeds import split
    from rlinterp.stats import paired_difference
    from rlinterp.studies import heist as hs

    r = bench_steps_per_second(num_envs=64, steps=50 if fast else 200)
    rows: list[Row] = [("env steps/s, one HeistEnv (symbolic info each step)", f"{r['single']:,.0f}", "", None),
                       ("env steps/s, BatchedHeist (64 envs)", f"{r['batched']:,.0f}", "", None)]
    cfg, s = HeistConfig(), split("heist")
    n_val, n_test = (50, 100) if fast else (200, 500)
    test = s.test_seeds(n_test)
    res = {}
    for name, art in (("CNN agent", "heist/impala"), ("bilinear agent", "heist/bimpala")):
        agent = artifacts.load(art)
        mode, _ = hs.choose_mode(agent, s.validation_seeds(n_val), cfg)
        res[name] = (mode, hs.evaluate(agent, test, cfg, greedy=(mode == "greedy"), seed=1))
    for name, (mode, e) in res.items():
        sr, lr = e["success_rate"], e["length_ratio"]
        judged = name == "CNN agent"  # the targets are the CNN's; the bilinear agent is judged by its gap below
        rows += [(f"{name} ({mode}): success on {n_test} test levels", f"{sr[0]:.1%} [{sr[1]:.1%}, {sr[2]:.1%}]",
                  "≥ 90% (CI low)" if judged else "report", bool(sr[1] >= 0.9) if judged else None),
                 (f"{name}: length / optimal (successes)", f"{lr[0]:.2f} [{lr[1]:.2f}, {lr[2]:.2f}]",
                  "≤ 1.3 (CI high)" if judged else "report", bool(lr[2] <= 1.3) if judged else None)]
    cnn, bil = (res[k][1]["success"].astype(float) for k in ("CNN agent", "bilinear agent"))
    gap = paired_difference(cnn, bil)
    rows.append(("CNN − bilinear success, paired (points)",
                 f"{100 * gap.mean:+.1f} [{100 * gap.lo:+.1f}, {100 * gap.hi:+.1f}]", "≤ 10 (CI high)",
                 bool(gap.hi <= 0.1)))
    for name, e in hs.baselines(test, cfg).items():
        sr = e["success_rate"]
        rows.append((f"{name}: success", f"{sr[0]:.1%} [{sr[1]:.1%}, {sr[2]:.1%}]", "baseline", None))
    return rows


def highway(fast: bool = False) -> list[Row]:
    """Highway: the stored test evaluation with 95% intervals, targets judged on the intervals (studies.highway)."""
    from rlinterp.studies.highway import bench_rows

    return bench_rows(fast)


STUDIES: dict[str, Callable[[bool], list[Row]]] = {"coinflip": coinflip, "highway": highway, "ad": ad, "heist": heist}


def bench(fast: bool = False, studies: list[str] | None = None, print_fn=print) -> dict[str, list[Row]]:
    results: dict[str, list[Row]] = {}
    for name, fn in STUDIES.items():
        if studies and name not in studies:
            continue
        t0 = time.perf_counter()
        try:
            rows = fn(fast)
        except Exception as e:  # one study's missing checkpoint must not hide the others' numbers
            rows = [("error", f"{type(e).__name__}: {e}", "", False)]
        results[name] = rows
        print_fn(f"\n## {name}  ({time.perf_counter() - t0:.1f} s)")
        width = max(len(r[0]) for r in rows)
        for metric, value, target, met in rows:
            mark = {True: "met", False: "NOT MET", None: ""}[met]
            print_fn(f"  {metric:<{width}}  {value:>28}  {target:<18} {mark}")
    return results
