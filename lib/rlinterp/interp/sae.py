"""Sparse autoencoders on cached activations, trained with SAELens, and the metrics the book reports.

SAELens 6 trains any of its SAE architectures from an iterator of activation batches (``SAETrainer``); this module
only feeds it: :func:`train_sae` takes a tensor of samples ``[n, d]`` (for a conv layer, :func:`spatial_samples`
turns ``[n, c, h, w]`` into one sample per position, each position's channel vector -- the 1x1-conv SAE of the
heist and maze-agent literature), shuffles it with a seeded generator, and returns the trained SAELens SAE.
:func:`sae_metrics` reports what SAE papers report on held-out samples: explained variance
``1 - |x - x̂|² / |x - mean x|²``, L0 (mean number of active latents), the dead fraction (latents that never fire on
those samples) and the MSE. :func:`mmcs` is the ground-truth check on synthetic data (Sharkey et al. 2022): mean over
the true features of the best cosine similarity with a decoder direction.

Architectures (``SAEConfig.architecture``): ``"topk"`` (exactly ``k`` latents per sample), ``"batchtopk"``
(``k`` on average over a batch) and ``"standard"`` (ReLU with an L1 penalty ``l1_coefficient``).
"""
from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import Tensor

from rlinterp.validation import check_choice, check_float, check_int

__all__ = ["SAEConfig", "train_sae", "sae_metrics", "spatial_samples", "mmcs", "encode", "ablate_latents"]

ARCHITECTURES = ("topk", "batchtopk", "standard")


@dataclass(frozen=True)
class SAEConfig:
    """One SAE training run (every field documented; SAELens does the training)."""

    d_sae: int = 128  # number of latents (dictionary size)
    architecture: str = "topk"  # "topk", "batchtopk" or "standard" (ReLU + L1)
    k: int = 8  # topk / batchtopk: active latents per sample (on average for batchtopk)
    l1_coefficient: float = 1.0  # standard: weight of the L1 sparsity penalty
    training_samples: int = 200_000  # samples seen in training (the data are cycled through, reshuffled each pass)
    batch_size: int = 1024  # samples per optimiser step
    lr: float = 3e-4  # Adam learning rate (constant)
    seed: int = 0  # seeds the SAE's initialisation and the shuffling
    device: str = "cpu"  # torch device

    def __post_init__(self) -> None:
        check_int("d_sae", self.d_sae, 1)
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_int("k", self.k, 1)
        check_float("l1_coefficient", self.l1_coefficient, 0.0)
        check_int("training_samples", self.training_samples, 1)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0)
        check_int("seed", self.seed, 0)
        if self.architecture != "standard" and self.k > self.d_sae:
            raise ValueError(f"k ({self.k}) cannot exceed d_sae ({self.d_sae})")


def spatial_samples(acts: Tensor) -> Tensor:
    """``[n, c, h, w]`` conv activations -> ``[n * h * w, c]``: each position's channel vector as one sample (row
    ``(i * h + y) * w + x`` is image ``i``, position ``(y, x)``)."""
    if not isinstance(acts, Tensor) or acts.ndim != 4:
        raise ValueError(f"spatial_samples: expected a [n, c, h, w] tensor, got "
                         f"{tuple(acts.shape) if isinstance(acts, Tensor) else type(acts).__name__}")
    return acts.permute(0, 2, 3, 1).reshape(-1, acts.shape[1])


def _batches(x: Tensor, batch_size: int, seed: int) -> Iterator[Tensor]:
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            yield x[perm[i:i + batch_size]]


def _sae_config(cfg: SAEConfig, d_in: int):
    from sae_lens import BatchTopKTrainingSAEConfig, StandardTrainingSAEConfig, TopKTrainingSAEConfig

    common = dict(d_in=d_in, d_sae=cfg.d_sae, device=cfg.device, dtype="float32")
    if cfg.architecture == "topk":
        return TopKTrainingSAEConfig(k=cfg.k, **common)
    if cfg.architecture == "batchtopk":
        return BatchTopKTrainingSAEConfig(k=cfg.k, **common)
    return StandardTrainingSAEConfig(l1_coefficient=cfg.l1_coefficient, **common)


def train_sae(samples: Tensor, config: SAEConfig | None = None, progress: bool = False):
    """Train an SAE of ``config`` on ``samples`` [n, d] with SAELens; returns the SAELens ``TrainingSAE`` (eval mode).

    Deterministic given ``config.seed`` on one machine and thread count."""
    from sae_lens import LoggingConfig, SAETrainer, TrainingSAE
    from sae_lens.config import SAETrainerConfig

    cfg = config or SAEConfig()
    if not isinstance(samples, Tensor) or samples.ndim != 2 or not samples.is_floating_point():
        raise ValueError(f"train_sae: samples must be a float [n, d] tensor, got "
                         f"{tuple(samples.shape) if isinstance(samples, Tensor) else type(samples).__name__}")
    if len(samples) < cfg.batch_size:
        raise ValueError(f"train_sae: {len(samples)} samples are fewer than one batch ({cfg.batch_size})")
    if not torch.isfinite(samples).all():
        raise ValueError("train_sae: samples contain NaN or inf")
    torch.manual_seed(cfg.seed)
    sae = TrainingSAE.from_dict(_sae_config(cfg, samples.shape[1]).to_dict())
    trainer_cfg = SAETrainerConfig(
        total_training_samples=cfg.training_samples, train_batch_size_samples=cfg.batch_size, lr=cfg.lr,
        lr_end=cfg.lr, device=cfg.device, logger=LoggingConfig(log_to_wandb=False), n_checkpoints=0,
        save_final_checkpoint=False)
    data = _batches(samples.detach().float().to(cfg.device), cfg.batch_size, cfg.seed)
    trainer = SAETrainer(cfg=trainer_cfg, sae=sae, data_provider=data)
    quiet = contextlib.redirect_stderr(io.StringIO()) if not progress else contextlib.nullcontext()
    level = logging.getLogger("sae_lens").level
    logging.getLogger("sae_lens").setLevel(logging.WARNING)
    try:
        with quiet:
            trainer.fit()
    finally:
        logging.getLogger("sae_lens").setLevel(level)
    sae.eval()
    return sae


def encode(sae: Any, samples: Tensor, batch_size: int = 8192) -> Tensor:
    """Latent activations [n, d_sae] of ``samples`` [n, d] (no grad, batched)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(samples), batch_size):
            out.append(sae.encode(samples[i:i + batch_size].float()))
    return torch.cat(out)


def ablate_latents(sae: Any, hook: str, latents: Any, baseline: Any = None) -> list[tuple[str, Any]]:
    """Forward hooks (TransformerLens ``fwd_hooks``) that remove SAE latents ``latents`` from the activation at
    ``hook`` and nothing else: ``x <- x - Σ_{i in latents} (z_i(x) - baseline_i) W_dec[i]`` with ``z = sae.encode(x)``
    (the other latents, the decoder bias and the SAE's reconstruction error stay). ``baseline``: None (0, a zero
    ablation) or one value per latent (e.g. the latents' means: a mean ablation). A conv map [n, c, h, w] is edited
    at every position (its channel vectors are the samples, as in :func:`spatial_samples`); a vector [n, d] per row.
    """
    idx = torch.as_tensor([int(i) for i in latents], dtype=torch.long)
    d_sae = sae.W_dec.shape[0]
    if len(idx) and (int(idx.min()) < 0 or int(idx.max()) >= d_sae):
        raise ValueError(f"ablate_latents: latent indices must lie in [0, {d_sae}), got {idx.tolist()}")
    base = torch.zeros(len(idx)) if baseline is None else torch.as_tensor(baseline, dtype=torch.float32).cpu()
    if base.shape != (len(idx),):
        raise ValueError(f"ablate_latents: baseline must have one value per latent ({len(idx)}), got "
                         f"shape {tuple(base.shape)}")

    def edit(act: Tensor, hook: Any = None) -> Tensor:
        if not len(idx):
            return act
        conv = act.ndim == 4
        x = spatial_samples(act) if conv else act
        with torch.no_grad():
            z = sae.encode(x.float())[:, idx.to(x.device)]  # [N, m]
            delta = (z - base.to(x.device)) @ sae.W_dec[idx.to(x.device)].float()  # [N, d]
        if conv:
            n, c, h, w = act.shape
            delta = delta.reshape(n, h, w, c).permute(0, 3, 1, 2)
        return act - delta.to(act.dtype)

    return [(hook, edit)]


def sae_metrics(sae: Any, samples: Tensor, batch_size: int = 8192) -> dict[str, float]:
    """Explained variance, L0, dead fraction and MSE of ``sae`` on ``samples`` [n, d] (use held-out samples)."""
    if not isinstance(samples, Tensor) or samples.ndim != 2 or len(samples) < 2:
        raise ValueError("sae_metrics: samples must be a [n, d] tensor with n >= 2")
    x = samples.float()
    sq_err = 0.0
    l0 = 0.0
    fired = None
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size]
            z = sae.encode(xb)
            xh = sae.decode(z)
            sq_err += float(((xb - xh) ** 2).sum())
            l0 += float((z > 0).sum())
            f = (z > 0).any(0)
            fired = f if fired is None else fired | f
    total = float(((x - x.mean(0)) ** 2).sum())
    return dict(explained_variance=1.0 - sq_err / max(total, 1e-12), l0=l0 / len(x),
                dead_fraction=float(1.0 - fired.float().mean()), mse=sq_err / x.numel())


def mmcs(decoder: Tensor, true_features: Tensor) -> float:
    """Mean max cosine similarity: for each true feature [m, d], the best |cos| with a decoder row [d_sae, d]."""
    if decoder.ndim != 2 or true_features.ndim != 2 or decoder.shape[1] != true_features.shape[1]:
        raise ValueError(f"mmcs: decoder [d_sae, d] and true_features [m, d] must share d, got "
                         f"{tuple(decoder.shape)} and {tuple(true_features.shape)}")
    D = torch.nn.functional.normalize(decoder.detach().float(), dim=1)
    T = torch.nn.functional.normalize(true_features.detach().float(), dim=1)
    return float((T @ D.T).abs().max(1).values.mean())
