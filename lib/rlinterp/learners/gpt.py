"""Training of the Culture study's GPTs (:mod:`rlinterp.models.gpt`) on world quizzes (:mod:`rlinterp.envs.quizzes`).

Following Fleuret (``main.py``/``quiz_machine.py``): each quiz is laid out in one of the world's structures drawn at
random (:data:`~rlinterp.envs.quizzes.STRUCTS`, Fleuret's five "understood structures"; ``structs`` restricts them) and
the loss is the next-token cross-entropy on **the whole quiz** (every position, markers included), not only on the
answer grid. Fleuret regenerates a fresh set of world quizzes each epoch; here a pool of ``pool_size`` training quizzes
is generated once per run (``run_dir/pool.npz``) and batches are drawn from it with replacement.

Optimiser: AdamW (``betas=(0.9, 0.99)``), linear warm-up then cosine decay to 10% of ``lr``; gradient-norm clip 1.

**Resumable and deterministic.** :func:`train` writes ``run_dir/ckpt.pt`` atomically (temporary file + ``os.replace``)
every ``ckpt_every`` steps and at the end: the model, the optimiser, the step, the losses and the state of the batch
sampler (a numpy Generator); called again on the same ``run_dir`` it continues from there, and the result equals an
uninterrupted run (same batches, same updates). CUDA is used when present (``device="auto"``).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rlinterp.progress import tqdm

from rlinterp.envs.quizzes import STRUCTS, QuizWorld
from rlinterp.models.gpt import GPTConfig, MyGPT
from rlinterp.validation import check_float, check_int


@dataclass
class TrainConfig:
    """A training run (stored in the checkpoint; a resumed run must use the same one)."""

    world: dict = field(default_factory=lambda: QuizWorld().to_dict())
    model: dict = field(default_factory=dict)  # GPTConfig fields besides vocab_size / n_ctx (taken from the world)
    structs: tuple[int, ...] = tuple(range(len(STRUCTS)))  # indices into STRUCTS
    n_steps: int = 20000
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 200
    pool_size: int = 100_000
    ckpt_every: int = 500
    seed: int = 0

    def validate(self) -> "TrainConfig":
        for name in ("n_steps", "batch_size", "warmup", "pool_size", "ckpt_every"):
            check_int(name, getattr(self, name), 1)
        check_int("seed", self.seed, 0)
        check_float("lr", self.lr, 0.0)
        check_float("weight_decay", self.weight_decay, 0.0)
        self.structs = tuple(self.structs)
        if not self.structs or any(not isinstance(s, int) or not 0 <= s < len(STRUCTS) for s in self.structs):
            raise ValueError(f"structs must be indices into STRUCTS (0..{len(STRUCTS) - 1}), got {self.structs!r}")
        self.make_world()
        self.gpt_config().validate()
        return self

    def make_world(self) -> QuizWorld:
        w = dict(self.world)
        w["tasks"] = tuple(w.get("tasks", QuizWorld().tasks))
        return QuizWorld(**w)

    def gpt_config(self) -> GPTConfig:
        w = self.make_world()
        return GPTConfig(vocab_size=w.vocab_size, n_ctx=w.seq_len, seed=self.seed, **self.model)


def resolve_device(device: str = "auto") -> str:
    """``"auto"``: ``"cuda"`` when available, else ``"cpu"``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def make_pool(world: QuizWorld, n: int, seed: int, progress: bool = False) -> np.ndarray:
    """``n`` training-split quiz grids (n, 4, H, W), generated in chunks (seeded)."""
    rng = np.random.default_rng(seed)
    chunks, done = [], 0
    bar = tqdm(total=n, desc="world quizzes", disable=not progress, mininterval=5)
    while done < n:
        k = min(2000, n - done)
        chunks.append(world.generate(k, rng, split="train").grids)
        done += k
        bar.update(k)
    bar.close()
    return np.concatenate(chunks) if chunks else np.zeros((0, 4, world.height, world.width), np.int8)


def _lr_factor(step: int, warmup: int, n_steps: int) -> float:
    w = min(1.0, (step + 1) / warmup)
    return w * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(step, n_steps) / n_steps)))


def sample_batch(world: QuizWorld, pool: np.ndarray, structs: tuple[int, ...], batch_size: int,
                 rng: np.random.Generator) -> torch.Tensor:
    """A batch of token sequences: quizzes drawn from ``pool`` with replacement, each in a random structure."""
    idx = rng.integers(0, len(pool), batch_size)
    which = rng.integers(0, len(structs), batch_size)
    out = np.zeros((batch_size, world.seq_len), np.int64)
    for s in np.unique(which):
        m = which == s
        out[m] = world.to_tokens(pool[idx[m]], STRUCTS[structs[s]][0])
    return torch.from_numpy(out)


def train(cfg: TrainConfig, run_dir: str | Path, device: str = "auto", progress: bool = True,
          stop_after: int | None = None) -> tuple[MyGPT, dict]:
    """Train (or resume) the run in ``run_dir``; returns the model and the log (``loss`` per step, ``wall_s``,
    ``tokens_per_s``, ``step``). ``stop_after``: stop (checkpointed) after that many steps of this call, e.g. to test
    resumption."""
    cfg.validate()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(device)
    world = cfg.make_world()
    ckpt_path, pool_path = run_dir / "ckpt.pt", run_dir / "pool.npz"
    if pool_path.exists():
        pool = np.load(pool_path)["grids"]
    else:
        pool = make_pool(world, cfg.pool_size, cfg.seed + 10_000, progress)
        tmp = run_dir / "pool.tmp.npz"
        np.savez_compressed(tmp, grids=pool)
        os.replace(tmp, pool_path)

    model = MyGPT(cfg.gpt_config()).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    rng = np.random.default_rng(cfg.seed)
    log = {"loss": [], "wall_s": 0.0, "step": 0}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        if ck["train_cfg"] != asdict(cfg):
            raise ValueError(f"{ckpt_path} was written by a different TrainConfig; use a new run_dir")
        model.load_state_dict(ck["state_dict"])
        opt.load_state_dict(ck["opt"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        log = ck["log"]
    else:
        torch.manual_seed(cfg.seed)

    def save():
        _atomic_save(model.checkpoint(train_cfg=asdict(cfg), opt=opt.state_dict(), rng=rng.bit_generator.state,
                                      torch_rng=torch.get_rng_state(), log=log), ckpt_path)

    start = log["step"]
    end = cfg.n_steps if stop_after is None else min(cfg.n_steps, start + check_int("stop_after", stop_after, 1))
    model.train()
    t0 = t_call = time.time()
    bar = tqdm(range(start, end), desc="train", disable=not progress, mininterval=5, initial=start, total=cfg.n_steps)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * _lr_factor(step, cfg.warmup, cfg.n_steps)
        x = sample_batch(world, pool, cfg.structs, cfg.batch_size, rng).to(device)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        log["loss"].append(loss.item())
        log["step"] = step + 1
        if (step + 1) % 100 == 0:
            bar.set_postfix(loss=f"{np.mean(log['loss'][-100:]):.4f}")
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == end:
            log["wall_s"] += time.time() - t0
            t0 = time.time()
            save()
    model.eval()
    steps_here, call_s = end - start, time.time() - t_call
    out = dict(log)
    out["tokens_per_s"] = steps_here * cfg.batch_size * world.seq_len / call_s if steps_here else None
    return model, out


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[MyGPT, TrainConfig, dict]:
    """The model, config and log of the checkpoint in ``run_dir``."""
    ck = torch.load(Path(run_dir) / "ckpt.pt", map_location=device, weights_only=False)
    return MyGPT.from_checkpoint(ck, device), TrainConfig(**ck["train_cfg"]), ck["log"]


if __name__ == "__main__":  # a background training run: python -m rlinterp.learners.gpt RUN_DIR [seed] [n_steps]
    import sys

    torch.set_num_threads(1)
    run = sys.argv[1]
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    steps = int(sys.argv[3]) if len(sys.argv) > 3 else TrainConfig().n_steps
    _, lg = train(TrainConfig(seed=seed, n_steps=steps), run, progress=True)
    print({"step": lg["step"], "wall_s": lg["wall_s"], "final_loss": float(np.mean(lg["loss"][-100:]))})
