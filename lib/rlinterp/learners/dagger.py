"""DAgger from the BFS oracle: an imitation warm start for the Heist agents (one file, CleanRL style).

Why this exists: PPO from a random initialisation did not learn Heist within what 2 CPU cores allow (the Heist agent
chapter shows the flat curves). Imitation of the BFS oracle (:meth:`rlinterp.envs.heist.BatchedHeist.oracle`) gives
the same network a competent policy in minutes; PPO (:mod:`rlinterp.learners.ppo`, ``--init``) then fine-tunes it on
the environment's own reward. DAgger (Ross, Gordon & Bagnell 2011) rather than plain behaviour cloning: the states are
those the *learner* visits, labelled by the oracle, so the learner also learns to recover from its own mistakes.

One round (``iterations`` of them; a run directory makes them resumable):

1. **Collect.** ``num_envs`` games (fresh training levels, :class:`~rlinterp.envs.heist.BatchedHeist`) play
   ``steps_per_iter`` steps. At every step each game is driven by the oracle with probability ``beta`` (a uniformly
   drawn optimal action) and otherwise by the learner (an action sampled from its policy); ``beta = beta0 *
   beta_decay ** round``. Every visited state is stored with the oracle's label: the set of optimal actions and the
   oracle's value ``reward_scale * 10 * gamma ** (steps_to_gem - 1)`` (what PPO's value head should predict under a
   near-optimal policy; 0 when the gem cannot be reached before the time-out).
2. **Aggregate.** The round's states join those of earlier rounds (at most ``max_dataset``, oldest dropped).
3. **Fit.** ``epochs`` passes of Adam over the aggregate, minibatches of ``batch_size``: loss
   ``-log sum_{a optimal} pi(a | s)`` (the probability the policy puts on *some* optimal action: diagonals often make
   two actions optimal) ``+ vf_coef * (V(s) - value target)^2``.

Logged per round (``log.jsonl``): ``beta``, the success rate and mean length of the episodes that ended during
collection, the share of learner steps that were optimal, the fit's final loss and optimal-action accuracy (argmax).

CLI: ``python -m rlinterp.learners.dagger --run-dir runs/heist/dagger_impala [--network bimpala] ...``.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rlinterp.envs.heist import REWARD, BatchedHeist, HeistConfig
from rlinterp.models.impala import NETWORKS, ImpalaConfig, build_network
from rlinterp.progress import tqdm
from rlinterp.validation import check_choice, check_float, check_int, check_prob, check_resume_config


@dataclass
class DAggerConfig:
    network: str = "impala"  # agent network: "impala" (ReLU) or "bimpala" (bilinear), models/impala.py
    seed: int = 0  # seeds torch (init, action sampling), the oracle/learner mixing, minibatches and level draws
    iterations: int = 12  # DAgger rounds (collect, aggregate, fit)
    num_envs: int = 64  # games stepped together while collecting
    steps_per_iter: int = 256  # steps per game per round; states per round = num_envs * steps_per_iter
    beta0: float = 1.0  # probability that the oracle acts, round 0
    beta_decay: float = 0.5  # beta = beta0 * beta_decay ** round
    epochs: int = 2  # passes over the aggregated dataset per round
    batch_size: int = 256  # minibatch size of the fit
    lr: float = 5e-4  # Adam learning rate
    max_dataset: int = 200_000  # aggregated states kept (oldest dropped first)
    vf_coef: float = 0.5  # weight of the value regression
    gamma: float = 0.99  # discount of the value target (PPO's gamma)
    reward_scale: float = 0.1  # reward scale of the value target (PPO's reward_scale)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", ...
    env: dict[str, Any] = field(default_factory=dict)  # HeistConfig fields (level family, rendering)

    def validate(self) -> None:
        check_choice("network", self.network, NETWORKS)
        check_int("seed", self.seed, 0)
        check_int("iterations", self.iterations, 1)
        check_int("num_envs", self.num_envs, 1)
        check_int("steps_per_iter", self.steps_per_iter, 1)
        check_prob("beta0", self.beta0)
        check_prob("beta_decay", self.beta_decay)
        check_int("epochs", self.epochs, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0)
        check_int("max_dataset", self.max_dataset, self.num_envs * self.steps_per_iter)
        check_float("vf_coef", self.vf_coef, 0.0)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("reward_scale", self.reward_scale, 0.0)
        if not isinstance(self.env, dict):
            raise TypeError(f"env must be a dict of HeistConfig fields, got {type(self.env).__name__}")
        self.heist_config()

    def heist_config(self) -> HeistConfig:
        return HeistConfig(**self.env)

    def beta(self, round_: int) -> float:
        return self.beta0 * self.beta_decay ** round_


def imitation_loss(model: torch.nn.Module, obs: torch.Tensor, optimal: torch.Tensor, value_target: torch.Tensor,
                   vf_coef: float) -> tuple[torch.Tensor, dict[str, float]]:
    """``-log pi(optimal set | s) + vf_coef * (V - target)^2`` averaged over the batch; stats for the log."""
    logits, value = model(obs)
    logp = F.log_softmax(logits, -1)
    nll = -torch.logsumexp(logp.masked_fill(~optimal, float("-inf")), -1).mean()
    v_loss = F.mse_loss(value, value_target)
    acc = optimal.gather(1, logits.argmax(-1, keepdim=True)).float().mean()
    return nll + vf_coef * v_loss, dict(nll=nll.item(), v_loss=v_loss.item(), accuracy=acc.item())


def train(cfg: DAggerConfig, run_dir: str | Path | None = None, progress: bool = True,
          max_rounds: int | None = None) -> dict[str, Any]:
    """Run DAgger; return ``{"model", "curve", "config", "wall_time_s", "env_steps", "rounds"}``.

    With ``run_dir``: ``<run_dir>/data_<round>.npz`` holds each round's labelled states, ``<run_dir>/last.pt`` the
    model/optimizer/generators after each round (written atomically) and ``log.jsonl`` one line per round; an existing
    ``last.pt`` is resumed (same config required; only iterations and device may differ). ``max_rounds`` stops after
    that many rounds in this call.
    """
    cfg.validate()
    from rlinterp.learners.ppo import resolve_device

    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    hc = cfg.heist_config()
    model = build_network(ImpalaConfig(kind=cfg.network, image_size=hc.image_size), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
    envs = BatchedHeist(cfg.num_envs, hc, seed=cfg.seed, split="train")
    curve: list[dict[str, Any]] = []
    round_, env_steps, wall_offset = 0, 0, 0.0
    data: list[dict[str, np.ndarray]] = []

    run_dir = Path(run_dir) if run_dir else None
    ckpt_path = run_dir / "last.pt" if run_dir else None
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        check_resume_config(ckpt_path, ck["config"], dataclasses.asdict(cfg), ("iterations", "device"))
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        rng.bit_generator.state = ck["rng"]
        envs.load_state_dict(ck["envs"])
        curve, round_, env_steps, wall_offset = ck["curve"], ck["round"], ck["env_steps"], ck["wall_time_s"]
        for r in range(round_):
            with np.load(run_dir / f"data_{r}.npz") as z:
                data.append({k: z[k] for k in z.files})
        if progress:
            print(f"resumed from {ckpt_path}: {round_} rounds, {env_steps} env steps", flush=True)
    t0 = time.time()

    def save_run() -> None:
        buf = io.BytesIO()
        torch.save(dict(config=dataclasses.asdict(cfg), model=model.state_dict(), network_config=model.config,
                        optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state(), rng=rng.bit_generator.state,
                        envs=envs.state_dict(), curve=curve, round=round_, env_steps=env_steps,
                        wall_time_s=wall_offset + time.time() - t0), buf)
        tmp = ckpt_path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(ckpt_path)

    T, N = cfg.steps_per_iter, cfg.num_envs
    calls = 0
    bar = tqdm(total=cfg.iterations, initial=min(round_, cfg.iterations), disable=not progress,
               desc=f"DAgger {cfg.network}")
    try:
        while round_ < cfg.iterations and (max_rounds is None or calls < max_rounds):
            beta = cfg.beta(round_)
            obs_l, opt_l, val_l = [], [], []
            ep_succ, ep_len, learner_opt = [], [], []
            obs = envs.obs()
            model.eval()
            for _ in range(T):
                optimal, steps = envs.oracle()
                t_left = hc.max_steps - envs.t
                v = np.where(steps <= t_left, cfg.reward_scale * REWARD * cfg.gamma ** np.maximum(steps - 1, 0), 0.0)
                obs_l.append(obs)
                opt_l.append(optimal)
                val_l.append(v.astype(np.float32))
                with torch.no_grad():
                    logits, _ = model(torch.as_tensor(obs, device=device))
                    act = torch.distributions.Categorical(logits=logits).sample().cpu().numpy()
                by_oracle = rng.random(N) < beta
                # a uniformly drawn optimal action (ties broken by random keys)
                orc = np.argmax(optimal * rng.random((N, 9)), axis=1)
                learner_opt.extend(optimal[np.arange(N), act][~by_oracle].tolist())
                act = np.where(by_oracle, orc, act)
                obs, _, term, trunc, info = envs.step(act)
                for i in np.flatnonzero(term | trunc):
                    ep_succ.append(float(term[i]))
                    ep_len.append(int(info["episode_length"][i]))
            env_steps += T * N
            new = dict(obs=np.concatenate(obs_l), optimal=np.concatenate(opt_l), value=np.concatenate(val_l))
            if run_dir:
                run_dir.mkdir(parents=True, exist_ok=True)
                np.savez(run_dir / f"data_{round_}.npz", **new)
            data.append(new)
            # aggregate (newest rounds first until max_dataset)
            keep, total = [], 0
            for d in reversed(data):
                keep.append(d)
                total += len(d["value"])
                if total >= cfg.max_dataset:
                    break
            agg = {k: np.concatenate([d[k] for d in keep])[-cfg.max_dataset:] for k in new}
            n = len(agg["value"])
            model.train()
            stats: dict[str, list] = {}
            for _ in range(cfg.epochs):
                perm = rng.permutation(n)
                for s in range(0, n, cfg.batch_size):
                    idx = perm[s:s + cfg.batch_size]
                    loss, st = imitation_loss(model, torch.as_tensor(agg["obs"][idx], device=device),
                                              torch.as_tensor(agg["optimal"][idx], device=device),
                                              torch.as_tensor(agg["value"][idx], device=device), cfg.vf_coef)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    for k, v in st.items():
                        stats.setdefault(k, []).append(v)
            tail = max(1, len(stats["nll"]) // 10)  # the last tenth of the fit
            round_ += 1
            calls += 1
            nan = float("nan")
            row = dict(round=round_, beta=beta, env_steps=env_steps, dataset=n,
                       wall_time_s=round(wall_offset + time.time() - t0, 2), episodes=len(ep_succ),
                       success=float(np.mean(ep_succ)) if ep_succ else nan,
                       length=float(np.mean(ep_len)) if ep_len else nan,
                       learner_optimal=float(np.mean(learner_opt)) if learner_opt else nan,
                       **{k: float(np.mean(v[-tail:])) for k, v in stats.items()})
            curve.append(row)
            bar.update(1)
            bar.set_postfix(acc=f"{row['accuracy']:.3f}", succ=f"{row['success']:.2f}")
            if run_dir:
                with open(run_dir / "log.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                save_run()
            if progress:
                print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                      flush=True)
    finally:
        bar.close()
    return dict(model=model, curve=curve, config=dataclasses.asdict(cfg), wall_time_s=wall_offset + time.time() - t0,
                env_steps=env_steps, rounds=round_)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="DAgger from the BFS oracle: imitation warm start of a Heist agent.")
    d = DAggerConfig()
    for f in dataclasses.fields(DAggerConfig):
        if f.name in ("env",):
            continue
        p.add_argument("--" + f.name.replace("_", "-"), type=type(getattr(d, f.name)), default=getattr(d, f.name))
    p.add_argument("--env", default="{}", help='HeistConfig fields as JSON, e.g. \'{"num_keys": 0}\'')
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--run-dir", required=True, help="folder for the labelled states, resumable checkpoints, log")
    a = vars(p.parse_args(argv))
    torch.set_num_threads(a.pop("threads"))
    run_dir = a.pop("run_dir")
    cfg = DAggerConfig(**{**a, "env": json.loads(a["env"])})
    result = train(cfg, run_dir=run_dir)
    print(f"done: {result['rounds']} rounds, {result['env_steps']} env steps, {result['wall_time_s']:.0f}s",
          flush=True)


if __name__ == "__main__":
    main()
