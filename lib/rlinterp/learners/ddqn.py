"""Double DQN for ``intersection-v0``, CleanRL style: one file, config dataclass, loop, checkpoints.

Defaults are the rl-agents reference (``scripts/configs/IntersectionEnv/agents/DQNAgent/baseline.json`` and the
DQNAgent defaults): gamma 0.95, batch 64, replay 15000, hard target update every 512 gradient steps, double DQN,
Adam lr 5e-4, MSE loss, epsilon-greedy with ``eps(t) = 0.05 + 0.95 exp(-t / 15000)`` (t = environment steps), one
gradient step per environment transition once 64 transitions are stored.

Run (resumes from ``<run_dir>/last.pt`` when it exists)::

    python -m rlinterp.learners.ddqn --network ego_attention --episodes 3000 --num-envs 2 --run-dir runs/highway/ego

The shipped agents are the artifacts ``highway/ego_attention`` and ``highway/mlp`` (:mod:`rlinterp.artifacts`):
``rli data rebuild highway/mlp [--save]`` trains one with its declared config.

Determinism: given ``seed`` and ``num_envs`` a run is reproducible bit for bit on the same machine (torch on CPU
with a fixed thread count; each environment worker owns a generator seeded ``seed * 1000 + i``; the vector env
gathers results in worker order, so asynchronous workers do not change the numbers). Different ``num_envs`` give
different (equally valid) runs. A resumed run restores networks, optimiser, replay buffer, counters and RNG states
but restarts the environments from fresh seeds derived from the number of finished episodes, so it is
deterministic but not identical to an uninterrupted run.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from rlinterp.progress import tqdm

from rlinterp.envs import highway as hw
from rlinterp.learners.replay import ReplayBuffer
from rlinterp.models.ego_attention import NETWORKS, build_network


@dataclass
class DDQNConfig:
    network: str = "ego_attention"  # "ego_attention" or "mlp"
    episodes: int = 3000  # training episodes (all workers together)
    seed: int = 0
    num_envs: int = 1  # environment workers (AsyncVectorEnv when > 1)
    gamma: float = 0.95
    batch_size: int = 64
    buffer_size: int = 15000
    target_update: int = 512  # gradient steps between hard target updates
    lr: float = 5e-4
    eps_final: float = 0.05
    eps_start: float = 1.0
    eps_tau: float = 15000.0  # environment steps
    learning_starts: int = 64  # transitions stored before the first gradient step
    checkpoint_every: int = 100  # episodes between run checkpoints
    device: str = "cpu"
    env_overrides: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {sorted(NETWORKS)}, got {self.network!r}")
        for name in ("episodes", "num_envs", "batch_size", "buffer_size", "target_update", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.gamma <= 1:
            raise ValueError(f"gamma must be in [0, 1], got {self.gamma}")
        hw.env_config(**self.env_overrides)  # raises on unknown keys


def epsilon(t: int, cfg: DDQNConfig) -> float:
    """rl-agents EpsilonGreedy: ``final + (start - final) * exp(-t / tau)``."""
    return cfg.eps_final + (cfg.eps_start - cfg.eps_final) * math.exp(-t / cfg.eps_tau)


def td_loss(q_net, target_net, batch: dict[str, torch.Tensor], gamma: float) -> torch.Tensor:
    """Double-DQN MSE loss: target ``r + gamma (1 - term) Q_target(s', argmax_a Q_online(s', a))``."""
    with torch.no_grad():
        next_a = q_net(batch["next_obs"]).argmax(dim=1, keepdim=True)  # [B, 1]
        next_q = target_net(batch["next_obs"]).gather(1, next_a).squeeze(1)  # [B]
        target = batch["reward"] + gamma * (1 - batch["done"]) * next_q  # [B]
    q = q_net(batch["obs"]).gather(1, batch["action"][:, None]).squeeze(1)  # [B]
    return F.mse_loss(q, target)


def _make_vec_env(cfg: DDQNConfig, seed: int) -> gym.vector.VectorEnv:
    fns = [lambda: hw.gym_make(hw.env_config(**cfg.env_overrides)) for _ in range(cfg.num_envs)]
    cls = gym.vector.AsyncVectorEnv if cfg.num_envs > 1 else gym.vector.SyncVectorEnv
    envs = cls(fns, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    envs.reset(seed=[seed * 1000 + i for i in range(cfg.num_envs)])
    return envs


def _rng_state(rng: np.random.Generator) -> dict:
    return rng.bit_generator.state


def train(cfg: DDQNConfig, run_dir: str | Path | None = None, progress: bool = True,
          log_every: int = 100) -> dict[str, Any]:
    """Train a Double DQN; return ``{"model": network, "curve": {...}, "config": ..., "wall_time_s": ...}``.

    With ``run_dir`` a checkpoint ``last.pt`` is written every ``cfg.checkpoint_every`` episodes and at the end, and
    a run resumes from it when it exists (with the same config).
    """
    cfg.validate()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = cfg.device
    q_net = build_network({"kind": cfg.network}, device=device)
    target_net = build_network({"kind": cfg.network}, device=device)
    target_net.load_state_dict(q_net.state_dict())
    optimizer = torch.optim.Adam(q_net.parameters(), lr=cfg.lr)
    buffer = ReplayBuffer(cfg.buffer_size, hw.OBS_SHAPE)
    curve: dict[str, list] = {k: [] for k in ("return", "length", "wall_time_s", "env_steps", "epsilon",
                                               "arrived", "crashed")}
    env_steps = grad_steps = 0
    wall_offset = 0.0
    losses: list[float] = []

    ckpt_path = Path(run_dir) / "last.pt" if run_dir else None
    if ckpt_path and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["config"] != dataclasses.asdict(cfg):
            diff = {k: (ck["config"].get(k), v) for k, v in dataclasses.asdict(cfg).items()
                    if ck["config"].get(k) != v and k != "episodes"}
            if diff:
                raise ValueError(f"{ckpt_path} was written with a different config {diff} (saved, now); use another "
                                 f"--run-dir or the same options (only --episodes may change on resume)")
        try:
            q_net.load_state_dict(ck["q_net"]), target_net.load_state_dict(ck["target_net"])
            optimizer.load_state_dict(ck["optimizer"])
            buffer.load_state_dict(ck["buffer"])
            rng.bit_generator.state = ck["rng"]
            torch.set_rng_state(ck["torch_rng"])
            curve, env_steps, grad_steps = ck["curve"], ck["env_steps"], ck["grad_steps"]
            wall_offset = ck["wall_time_s"]
        except (KeyError, RuntimeError, ValueError) as e:
            raise ValueError(f"{ckpt_path} cannot be resumed by this version of the trainer ({type(e).__name__}: {e}); "
                             f"delete {Path(run_dir)} to train afresh, or pass another run_dir") from None
        print(f"resumed from {ckpt_path}: {len(curve['return'])} episodes, {env_steps} env steps", flush=True)

    def save_run() -> None:
        if not ckpt_path:
            return
        ckpt_path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(dict(config=dataclasses.asdict(cfg), q_net=q_net.state_dict(), target_net=target_net.state_dict(),
                        optimizer=optimizer.state_dict(), buffer=buffer.state_dict(), rng=_rng_state(rng),
                        torch_rng=torch.get_rng_state(), curve=curve, env_steps=env_steps, grad_steps=grad_steps,
                        wall_time_s=wall_offset + time.time() - t0), buf)
        tmp = ckpt_path.with_suffix(".tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.replace(ckpt_path)

    done_eps = len(curve["return"])
    envs = _make_vec_env(cfg, cfg.seed + 7919 * done_eps)  # fresh env seeds on resume (see module docstring)
    obs, _ = envs.reset()
    ep_ret = np.zeros(cfg.num_envs)
    ep_len = np.zeros(cfg.num_envs, np.int64)
    t0 = time.time()
    bar = tqdm(total=cfg.episodes, initial=min(done_eps, cfg.episodes), disable=not progress,
               desc=f"DDQN {cfg.network}", mininterval=2.0)
    try:
        while len(curve["return"]) < cfg.episodes:
            eps = epsilon(env_steps, cfg)
            with torch.no_grad():
                greedy = q_net(torch.as_tensor(obs, device=device)).argmax(dim=1).cpu().numpy()
            explore = rng.random(cfg.num_envs) < eps
            actions = np.where(explore, rng.integers(0, 3, cfg.num_envs), greedy)
            next_obs, rewards, terms, truncs, infos = envs.step(actions)
            dones = terms | truncs
            for i in range(cfg.num_envs):
                real_next = infos["final_obs"][i] if dones[i] else next_obs[i]
                buffer.add(obs[i], actions[i], rewards[i], real_next, float(terms[i]))
                env_steps += 1
                ep_ret[i] += rewards[i]
                ep_len[i] += 1
                if dones[i]:
                    fi = infos["final_info"]
                    curve["return"].append(round(float(ep_ret[i]), 4))
                    curve["length"].append(int(ep_len[i]))
                    curve["wall_time_s"].append(round(wall_offset + time.time() - t0, 2))
                    curve["env_steps"].append(env_steps)
                    curve["epsilon"].append(round(eps, 4))
                    curve["crashed"].append(bool(fi["crashed"][i]))
                    curve["arrived"].append(bool(terms[i] and not fi["crashed"][i]))
                    ep_ret[i], ep_len[i] = 0.0, 0
                    n = len(curve["return"])
                    bar.update(1)
                    recent = float(np.mean(curve["return"][-100:]))
                    bar.set_postfix(ret100=f"{recent:.2f}", eps=f"{eps:.2f}", steps=env_steps)
                    if log_every and n % log_every == 0:
                        loss = float(np.mean(losses[-500:])) if losses else float("nan")
                        print(f"episode {n} env_steps {env_steps} return100 {recent:.3f} eps {eps:.3f} "
                              f"loss {loss:.4f} wall {wall_offset + time.time() - t0:.0f}s", flush=True)
                    if n % cfg.checkpoint_every == 0:
                        save_run()
                # one gradient step per transition
                if buffer.size >= cfg.learning_starts:
                    batch = {k: v.to(device) for k, v in buffer.sample(cfg.batch_size, rng).items()}
                    loss = td_loss(q_net, target_net, batch, cfg.gamma)
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    grad_steps += 1
                    losses.append(loss.item())
                    if grad_steps % cfg.target_update == 0:
                        target_net.load_state_dict(q_net.state_dict())
            obs = next_obs
        # trim episodes finished by other workers in the last step
        for k in curve:
            curve[k] = curve[k][:cfg.episodes]
        save_run()
    finally:
        bar.close()
        envs.close()
    return dict(model=q_net, curve=curve, config=dataclasses.asdict(cfg), losses=losses,
                wall_time_s=wall_offset + time.time() - t0, env_steps=env_steps, grad_steps=grad_steps)


def greedy_policy(model, device: str = "cpu") -> Callable[[np.ndarray], int]:
    """obs (15, 7) -> argmax_a Q(obs, a)."""
    model.eval()

    def act(obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(model(torch.as_tensor(obs, dtype=torch.float32, device=device)).argmax())

    return act


def main(argv: list[str] | None = None) -> None:
    from rlinterp.studies.highway import evaluate

    p = argparse.ArgumentParser(description="Train a Double DQN on intersection-v0 (rl-agents defaults).")
    p.add_argument("--network", default="ego_attention", choices=sorted(NETWORKS))
    p.add_argument("--episodes", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-envs", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--run-dir", default=None, help="folder for resumable checkpoints (resumes from last.pt)")
    p.add_argument("--duration", type=int, default=None, help="override the episode duration (smoke runs)")
    p.add_argument("--evaluate", default=None, metavar="NAME",
                   help="instead of training, evaluate the shipped agent NAME (highway/ego_attention or highway/mlp) "
                        "greedily and print JSON")
    p.add_argument("--eval-episodes", type=int, default=100)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.evaluate:
        from rlinterp import artifacts

        model = artifacts.load(a.evaluate, a.device)
        res = evaluate(greedy_policy(model, a.device), a.eval_episodes, desc=a.evaluate)
        print(json.dumps({k: v for k, v in res.items() if k != "returns"}), flush=True)
        return
    cfg = DDQNConfig(network=a.network, episodes=a.episodes, seed=a.seed, num_envs=a.num_envs, device=a.device,
                     env_overrides={} if a.duration is None else {"duration": a.duration})
    result = train(cfg, run_dir=a.run_dir)
    print(f"done: {len(result['curve']['return'])} episodes, {result['env_steps']} env steps, "
          f"{result['wall_time_s']:.0f}s, last-100 return {np.mean(result['curve']['return'][-100:]):.3f}",
          flush=True)


if __name__ == "__main__":
    main()
