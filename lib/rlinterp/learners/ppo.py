"""PPO for Heist, CleanRL style (``ppo.py`` / ``ppo_procgen.py``): one file, a documented config, one loop.

Rollouts of ``num_steps`` steps from ``num_envs`` games of :class:`rlinterp.envs.heist.BatchedHeist` (fresh
training-split levels every episode), generalised advantage estimation, the clipped surrogate objective, optional
value clipping, an entropy bonus, per-minibatch advantage normalisation, Adam with gradient-norm clipping.
Time-limit truncations are treated as episode ends (as CleanRL does; the batched env resets at once).

Run (resumes from ``<run_dir>/last.pt`` when it exists; only ``--total-steps`` and the device may change)::

    python -m rlinterp.learners.ppo --network impala --total-steps 3000000 --run-dir runs/heist/impala

``init`` (``--init RUN_DIR``) starts from another run's weights, e.g. an imitation warm start from
:mod:`rlinterp.learners.dagger`; the shipped agents are built that way by ``rli data rebuild heist/impala --save``
(:mod:`rlinterp.artifacts`: DAgger, then PPO from its weights).

Determinism: given the config a run is reproducible bit for bit on the same machine and thread count (torch's
generator samples the actions, a numpy generator seeded ``seed`` shuffles minibatches, the env's own generator seeded
``seed`` draws levels). A run directory checkpoint holds network, optimiser, both generators, the full env state and
the current observations, so a resumed run continues exactly as the uninterrupted run would (tests check this).
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
import torch.nn as nn
from rlinterp.progress import tqdm

from rlinterp.envs.heist import BatchedHeist, HeistConfig
from rlinterp.models.impala import NETWORKS, ImpalaConfig, build_network
from rlinterp.validation import check_choice, check_float, check_int, check_resume_config


@dataclass
class PPOConfig:
    """Every field of a PPO run (defaults: the setting used for the shipped Heist agents on 2 CPU cores)."""

    network: str = "impala"  # agent network: "impala" (ReLU) or "bimpala" (bilinear), models/impala.py
    total_steps: int = 3_000_000  # environment steps over all envs; training stops at the first update past it
    seed: int = 0  # seeds torch (init, action sampling), the minibatch shuffle and the level draws
    num_envs: int = 32  # games stepped together (one BatchedHeist)
    num_steps: int = 128  # rollout length per env per update; batch = num_envs * num_steps
    lr: float = 5e-4  # Adam learning rate (train-procgen's)
    anneal_lr: bool = False  # linearly decay lr to 0 over total_steps
    gamma: float = 0.99  # discount (procgen uses 0.999 for 1000-step episodes; ours are <= 200 steps)
    gae_lambda: float = 0.95  # GAE lambda
    update_epochs: int = 3  # passes over each batch
    num_minibatches: int = 8  # minibatches per pass
    clip_coef: float = 0.2  # PPO ratio clip
    clip_vloss: bool = True  # clip the value update to clip_coef around the old values
    ent_coef: float = 0.01  # entropy bonus weight
    vf_coef: float = 0.5  # value loss weight
    max_grad_norm: float = 0.5  # global gradient-norm clip
    norm_adv: bool = True  # normalise advantages within each minibatch
    reward_scale: float = 0.1  # rewards are multiplied by this for learning (gem: 10 -> 1); curves show raw
    checkpoint_every: int = 10  # updates between run_dir checkpoints (also written at the end)
    device: str = "auto"  # "auto" (CUDA when present), "cpu", "cuda", ...
    env: dict[str, Any] = field(default_factory=dict)  # HeistConfig fields (level family, rendering)
    init: str = ""  # warm start: a run directory (its last.pt, e.g. learners/dagger.py's) whose weights start PPO

    def validate(self) -> None:
        check_choice("network", self.network, NETWORKS)
        for name in ("total_steps", "num_envs", "num_steps", "update_epochs", "num_minibatches", "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            raise ValueError(f"num_envs * num_steps ({self.num_envs * self.num_steps}) must be divisible by "
                             f"num_minibatches ({self.num_minibatches})")
        check_float("lr", self.lr, 0.0)
        check_float("gamma", self.gamma, 0.0, 1.0)
        check_float("gae_lambda", self.gae_lambda, 0.0, 1.0)
        check_float("clip_coef", self.clip_coef, 0.0)
        check_float("ent_coef", self.ent_coef, 0.0)
        check_float("vf_coef", self.vf_coef, 0.0)
        check_float("max_grad_norm", self.max_grad_norm, 0.0)
        check_float("reward_scale", self.reward_scale, 0.0)
        if not isinstance(self.init, str):
            raise TypeError(f"init must be a run directory path (str), got {type(self.init).__name__}")
        if self.init and not (Path(self.init) / "last.pt").is_file():
            raise ValueError(f"init={self.init!r}: no last.pt there (a DAgger or PPO run directory is expected)")
        self.heist_config()  # raises on unknown or bad env fields

    def heist_config(self) -> HeistConfig:
        return HeistConfig(**self.env)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        return -(-self.total_steps // self.batch_size)


def resolve_device(device: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, next_value: torch.Tensor,
        next_done: torch.Tensor, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns; ``dones[t]`` = the episode ended *before* step t's obs
    (CleanRL's convention). Shapes [T, N] (next_*: [N])."""
    T = rewards.shape[0]
    adv = torch.zeros_like(rewards)
    last = torch.zeros_like(next_value)
    for t in reversed(range(T)):
        nonterminal = 1.0 - (next_done if t == T - 1 else dones[t + 1])
        nv = next_value if t == T - 1 else values[t + 1]
        delta = rewards[t] + gamma * nv * nonterminal - values[t]
        last = delta + gamma * lam * nonterminal * last
        adv[t] = last
    return adv, adv + values


def ppo_loss(model: nn.Module, obs: torch.Tensor, actions: torch.Tensor, old_logp: torch.Tensor,
             adv: torch.Tensor, returns: torch.Tensor, old_values: torch.Tensor, cfg: PPOConfig):
    """Clipped-surrogate PPO loss on one minibatch -> (loss, stats dict)."""
    logits, value = model(obs)
    dist = torch.distributions.Categorical(logits=logits)
    logp = dist.log_prob(actions)
    log_ratio = logp - old_logp
    ratio = log_ratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - log_ratio).mean()
        clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
    if cfg.norm_adv and len(adv) > 1:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    pg_loss = torch.max(-adv * ratio, -adv * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
    if cfg.clip_vloss:
        v_clipped = old_values + (value - old_values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * torch.max((value - returns) ** 2, (v_clipped - returns) ** 2).mean()
    else:
        v_loss = 0.5 * ((value - returns) ** 2).mean()
    entropy = dist.entropy().mean()
    loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
    return loss, dict(pg_loss=pg_loss.item(), v_loss=v_loss.item(), entropy=entropy.item(),
                      approx_kl=approx_kl.item(), clipfrac=clipfrac.item())


CURVE_KEYS = ("update", "env_steps", "wall_time_s", "episodes", "success", "return", "length", "pg_loss", "v_loss",
              "entropy", "approx_kl", "clipfrac", "lr")


def train(cfg: PPOConfig, run_dir: str | Path | None = None, progress: bool = True,
          log_every: int = 10, max_updates: int | None = None) -> dict[str, Any]:
    """Train with PPO; return ``{"model", "curve", "config", "wall_time_s", "env_steps", "updates"}``.

    ``curve`` has one entry per update (:data:`CURVE_KEYS`; ``success``/``return``/``length`` are means over the
    episodes that ended during the update's rollout, NaN when none did). With ``run_dir`` the run checkpoints to
    ``<run_dir>/last.pt`` (atomically) every ``cfg.checkpoint_every`` updates and at the end, logs one JSON line per
    update to ``<run_dir>/log.jsonl`` and resumes from ``last.pt`` when it exists. ``max_updates`` stops after that
    many updates in this call (checkpointing first), for tests of resumption.
    """
    cfg.validate()
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_network(ImpalaConfig(kind=cfg.network, image_size=cfg.heist_config().image_size), device=device)
    if cfg.init:
        init = torch.load(Path(cfg.init) / "last.pt", map_location=device, weights_only=False)
        if init.get("network_config") != model.config:
            raise ValueError(f"init={cfg.init!r} holds a {init.get('network_config')} network, this run builds "
                             f"{model.config}")
        model.load_state_dict(init["model"])
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-5)
    envs = BatchedHeist(cfg.num_envs, cfg.heist_config(), seed=cfg.seed, split="train")
    next_obs = envs.obs()
    next_done = np.zeros(cfg.num_envs, bool)
    curve: dict[str, list] = {k: [] for k in CURVE_KEYS}
    update, env_steps, wall_offset = 0, 0, 0.0

    run_dir = Path(run_dir) if run_dir else None
    ckpt_path = run_dir / "last.pt" if run_dir else None
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        saved = {**dataclasses.asdict(PPOConfig()), **ck["config"]}  # fields added since the run: their defaults
        check_resume_config(ckpt_path, saved, dataclasses.asdict(cfg), ("total_steps", "device"))
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        torch.set_rng_state(ck["torch_rng"])
        if device.startswith("cuda") and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state_all(ck["cuda_rng"])
        rng.bit_generator.state = ck["rng"]
        envs.load_state_dict(ck["envs"])
        next_obs, next_done = ck["next_obs"], ck["next_done"]
        curve, update, env_steps, wall_offset = ck["curve"], ck["update"], ck["env_steps"], ck["wall_time_s"]
        if progress:
            print(f"resumed from {ckpt_path}: {update} updates, {env_steps} env steps", flush=True)

    t0 = time.time()

    def save_run() -> None:
        if not ckpt_path:
            return
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(dict(config=dataclasses.asdict(cfg), model=model.state_dict(), network_config=model.config,
                        optimizer=optimizer.state_dict(), torch_rng=torch.get_rng_state(),
                        cuda_rng=torch.cuda.get_rng_state_all() if device.startswith("cuda") else None,
                        rng=rng.bit_generator.state, envs=envs.state_dict(), next_obs=next_obs,
                        next_done=next_done, curve=curve, update=update, env_steps=env_steps,
                        wall_time_s=wall_offset + time.time() - t0), buf)
        tmp = ckpt_path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(ckpt_path)

    T, N = cfg.num_steps, cfg.num_envs
    H = cfg.heist_config().image_size
    obs_buf = torch.zeros((T, N, H, H, 3), dtype=torch.uint8, device=device)
    act_buf = torch.zeros((T, N), dtype=torch.long, device=device)
    logp_buf = torch.zeros((T, N), device=device)
    rew_buf = torch.zeros((T, N), device=device)
    done_buf = torch.zeros((T, N), device=device)
    val_buf = torch.zeros((T, N), device=device)
    log_file = (run_dir / "log.jsonl") if run_dir else None
    if log_file:
        run_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=cfg.num_updates, initial=min(update, cfg.num_updates), disable=not progress,
               desc=f"PPO {cfg.network}", mininterval=2.0)
    calls = 0
    try:
        while update < cfg.num_updates and (max_updates is None or calls < max_updates):
            lr = cfg.lr * (1.0 - update / cfg.num_updates) if cfg.anneal_lr else cfg.lr
            for g in optimizer.param_groups:
                g["lr"] = lr
            ep_succ, ep_ret, ep_len = [], [], []
            model.eval()
            for t in range(T):
                obs_t = torch.as_tensor(next_obs, device=device)
                obs_buf[t] = obs_t
                done_buf[t] = torch.as_tensor(next_done, dtype=torch.float32, device=device)
                with torch.no_grad():
                    logits, value = model(obs_t)
                    dist = torch.distributions.Categorical(logits=logits)
                    action = dist.sample()
                act_buf[t], logp_buf[t], val_buf[t] = action, dist.log_prob(action), value
                next_obs, reward, term, trunc, info = envs.step(action.cpu().numpy())
                rew_buf[t] = torch.as_tensor(reward * cfg.reward_scale, dtype=torch.float32, device=device)
                next_done = term | trunc
                for i in np.flatnonzero(next_done):
                    ep_succ.append(float(term[i]))
                    ep_ret.append(float(reward[i]))
                    ep_len.append(int(info["episode_length"][i]))
            env_steps += T * N
            with torch.no_grad():
                next_value = model(torch.as_tensor(next_obs, device=device))[1]
            adv, ret = gae(rew_buf, val_buf, done_buf, next_value,
                           torch.as_tensor(next_done, dtype=torch.float32, device=device), cfg.gamma,
                           cfg.gae_lambda)
            b_obs, b_act, b_logp = obs_buf.reshape(T * N, H, H, 3), act_buf.reshape(-1), logp_buf.reshape(-1)
            b_adv, b_ret, b_val = adv.reshape(-1), ret.reshape(-1), val_buf.reshape(-1)
            model.train()
            mb = cfg.batch_size // cfg.num_minibatches
            stats: dict[str, list] = {}
            for _ in range(cfg.update_epochs):
                perm = torch.as_tensor(rng.permutation(cfg.batch_size), device=device)
                for start in range(0, cfg.batch_size, mb):
                    idx = perm[start:start + mb]
                    loss, s = ppo_loss(model, b_obs[idx], b_act[idx], b_logp[idx], b_adv[idx], b_ret[idx],
                                       b_val[idx], cfg)
                    optimizer.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    for k, v in s.items():
                        stats.setdefault(k, []).append(v)
            update += 1
            calls += 1
            wall = wall_offset + time.time() - t0
            nan = float("nan")
            row = dict(update=update, env_steps=env_steps, wall_time_s=round(wall, 2), episodes=len(ep_succ),
                       success=float(np.mean(ep_succ)) if ep_succ else nan,
                       **{"return": float(np.mean(ep_ret)) if ep_ret else nan},
                       length=float(np.mean(ep_len)) if ep_len else nan,
                       **{k: float(np.mean(v)) for k, v in stats.items()}, lr=lr)
            for k in CURVE_KEYS:
                curve[k].append(row[k])
            bar.update(1)
            bar.set_postfix(success=f"{row['success']:.2f}", len=f"{row['length']:.1f}", steps=env_steps)
            if log_file:
                with open(log_file, "a") as f:
                    f.write(json.dumps(row) + "\n")
            if progress and log_every and update % log_every == 0:
                recent = [x for x in curve["success"][-log_every:] if x == x]
                print(f"update {update} env_steps {env_steps} success {np.mean(recent) if recent else nan:.3f} "
                      f"length {row['length']:.1f} entropy {row['entropy']:.3f} sps {env_steps / max(wall, 1e-9):.0f} "
                      f"wall {wall:.0f}s", flush=True)
            if update % cfg.checkpoint_every == 0:
                save_run()
        save_run()
    finally:
        bar.close()
    return dict(model=model, curve=curve, config=dataclasses.asdict(cfg), wall_time_s=wall_offset + time.time() - t0,
                env_steps=env_steps, updates=update)


def load_run(run_dir: str | Path, device: str = "cpu"):
    """The network of a run directory's ``last.pt`` (e.g. to evaluate a run in progress), in eval mode."""
    ck = torch.load(Path(run_dir) / "last.pt", map_location=device, weights_only=False)
    model = build_network(ck["network_config"], device=device)
    model.load_state_dict(ck["model"])
    return model.eval()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Train a Heist agent with PPO (CleanRL style).")
    d = PPOConfig()
    p.add_argument("--network", default=d.network, choices=NETWORKS)
    p.add_argument("--total-steps", type=int, default=d.total_steps)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--num-envs", type=int, default=d.num_envs)
    p.add_argument("--num-steps", type=int, default=d.num_steps)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--ent-coef", type=float, default=d.ent_coef)
    p.add_argument("--gamma", type=float, default=d.gamma)
    p.add_argument("--update-epochs", type=int, default=d.update_epochs)
    p.add_argument("--num-minibatches", type=int, default=d.num_minibatches)
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--env", default="{}", help='HeistConfig fields as JSON, e.g. \'{"num_keys": 0}\'')
    p.add_argument("--init", default="", help="warm start from this run directory's last.pt (e.g. a DAgger run)")
    p.add_argument("--anneal-lr", action="store_true", help="decay lr linearly to 0")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=d.device)
    p.add_argument("--run-dir", default=None, help="folder for resumable checkpoints and log.jsonl")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = PPOConfig(network=a.network, total_steps=a.total_steps, seed=a.seed, num_envs=a.num_envs,
                    num_steps=a.num_steps, lr=a.lr, ent_coef=a.ent_coef, gamma=a.gamma, update_epochs=a.update_epochs,
                    num_minibatches=a.num_minibatches, checkpoint_every=a.checkpoint_every, device=a.device,
                    env=json.loads(a.env), init=a.init, anneal_lr=a.anneal_lr)
    result = train(cfg, run_dir=a.run_dir)
    print(f"done: {result['updates']} updates, {result['env_steps']} env steps, {result['wall_time_s']:.0f}s",
          flush=True)


if __name__ == "__main__":
    main()
