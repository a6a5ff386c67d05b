"""The one experience-replay buffer: a ring buffer of transitions ``(obs, action, reward, next_obs, done)``.

Stored as torch tensors on ``device`` (observations float32, actions int64, rewards and done flags float32).
:meth:`ReplayBuffer.add` takes one transition or a batch (leading axis); :meth:`ReplayBuffer.sample` draws indices
uniformly with replacement from a ``torch.Generator`` or a ``numpy.random.Generator`` (whichever the trainer seeds)
and returns a dict of tensors. :meth:`state_dict` / :meth:`load_state_dict` let a trainer resume a run exactly.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rlinterp.validation import check_int

KEYS = ("obs", "action", "reward", "next_obs", "done")


class ReplayBuffer:
    """Ring buffer of ``capacity`` transitions with observations of shape ``obs_shape``."""

    def __init__(self, capacity: int, obs_shape: int | tuple[int, ...], device: str | torch.device = "cpu"):
        self.capacity = check_int("capacity", capacity, 1)
        self.obs_shape = (obs_shape,) if isinstance(obs_shape, (int, np.integer)) else tuple(obs_shape)
        self.device = torch.device(device)
        self.pos, self.size = 0, 0
        self.obs = torch.zeros(self.capacity, *self.obs_shape, device=self.device)
        self.next_obs = torch.zeros(self.capacity, *self.obs_shape, device=self.device)
        self.action = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        self.reward = torch.zeros(self.capacity, device=self.device)
        self.done = torch.zeros(self.capacity, device=self.device)

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, action: Any, reward: Any, next_obs: Any, done: Any) -> None:
        """Store one transition (``obs`` of shape ``obs_shape``) or a batch of them (``[b, *obs_shape]``)."""
        def tensor(x: Any, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
            x = x if isinstance(x, Tensor) else np.asarray(x)
            return torch.as_tensor(x, dtype=dtype, device=self.device).reshape(-1, *shape)

        obs = tensor(obs, torch.float32, self.obs_shape)
        b = len(obs)
        idx = (torch.arange(b, device=self.device) + self.pos) % self.capacity
        self.obs[idx] = obs
        self.action[idx] = tensor(action, torch.long, ())
        self.reward[idx] = tensor(reward, torch.float32, ())
        self.next_obs[idx] = tensor(next_obs, torch.float32, self.obs_shape)
        self.done[idx] = tensor(done, torch.float32, ())
        self.size = min(self.size + b, self.capacity)
        self.pos = (self.pos + b) % self.capacity

    def sample(self, batch_size: int, gen: torch.Generator | np.random.Generator) -> dict[str, Tensor]:
        """``batch_size`` transitions drawn uniformly with replacement -> {obs, action, reward, next_obs, done}."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if isinstance(gen, np.random.Generator):
            idx = torch.as_tensor(gen.integers(0, self.size, batch_size), device=self.device)
        else:
            idx = torch.randint(self.size, (batch_size,), generator=gen, device=gen.device)
        return {k: getattr(self, k)[idx] for k in KEYS}

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return dict(capacity=self.capacity, pos=self.pos, size=n,
                    **{k: getattr(self, k)[:n].detach().cpu().clone() for k in KEYS})

    def load_state_dict(self, s: dict[str, Any]) -> None:
        missing = [k for k in ("capacity", "pos", "size", *KEYS) if k not in s]
        if missing:
            raise ValueError(f"replay state lacks {missing} (written by another version of the buffer?); it holds "
                             f"{sorted(s)}")
        if s["capacity"] != self.capacity:
            raise ValueError(f"replay state has capacity {s['capacity']}, this buffer {self.capacity}")
        n = s["size"]
        self.pos, self.size = s["pos"], n
        for k in KEYS:
            getattr(self, k)[:n] = torch.as_tensor(s[k], device=self.device)
