"""The evaluation protocol's seeds, declared once for every study.

Each study evaluates on seeds of one kind (an environment seed, a level seed, a sampling seed, ...). They are split
into three disjoint ranges:

* ``train`` -- what training may draw from (``None`` when training does not draw evaluation-kind seeds);
* ``validation`` -- everything that *chooses*: checkpoint selection, hyper-parameters, thresholds, the episode shown
  in a figure. A chapter may look at these as often as it likes;
* ``test`` -- the numbers the book reports. Nothing is selected on them; they are looked at once per reported
  number, always the first ``n`` seeds of the range so a number is reproducible.

``split("highway").test_seeds(500)`` gives the first 500 test seeds as an array; asking for more seeds than a range
holds is an error, never a silent overlap with another range. ``tests/test_seeds.py`` checks that the ranges of every
study are disjoint and that no range overlaps another range of the same study.

The highway ranges: training draws environment seeds from ``[0, 10**6)`` (the DDQN's episode counter plus its
seed), the seeds ``1_000_000 + i`` (i < 200) were the book's evaluation seeds before this protocol and were looked
at when choosing the shipped checkpoints, so they are validation seeds now, and the test seeds start at 2,000,000.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rlinterp.validation import check_choice, check_int

__all__ = ["SeedSplit", "SPLITS", "split"]


@dataclass(frozen=True)
class SeedSplit:
    """Disjoint train / validation / test seed ranges of one study (half-open ``range`` objects)."""

    study: str
    kind: str  # what one seed indexes, in words ("environment seed", "level seed", ...)
    validation: range
    test: range
    train: range | None = None

    def __post_init__(self) -> None:
        named = [(n, r) for n, r in (("train", self.train), ("validation", self.validation), ("test", self.test))
                 if r is not None]
        for name, r in named:
            if not isinstance(r, range) or r.step != 1 or len(r) == 0:
                raise ValueError(f"{self.study}: {name} seeds must be a non-empty range with step 1, got {r!r}")
        for i, (a, ra) in enumerate(named):
            for b, rb in named[i + 1:]:
                if ra.start < rb.stop and rb.start < ra.stop:
                    raise ValueError(f"{self.study}: {a} seeds {ra} overlap {b} seeds {rb}")

    def _take(self, name: str, n: int, start: int) -> np.ndarray:
        r = getattr(self, name)
        n = check_int("n", n, 1)
        start = check_int("start", start, 0)
        if start + n > len(r):
            raise ValueError(f"{self.study} has {len(r)} {name} seeds; start {start} + n {n} is too many")
        return np.arange(r.start + start, r.start + start + n, dtype=np.int64)

    def validation_seeds(self, n: int, start: int = 0) -> np.ndarray:
        """``n`` validation seeds from the ``start``-th (for choosing)."""
        return self._take("validation", n, start)

    def test_seeds(self, n: int, start: int = 0) -> np.ndarray:
        """``n`` test seeds from the ``start``-th (for reporting; never for choosing)."""
        return self._take("test", n, start)

    def role(self, seed: int) -> str:
        """Which range ``seed`` belongs to: "train", "validation", "test" or "unused"."""
        seed = check_int("seed", seed)
        for name in ("train", "validation", "test"):
            r = getattr(self, name)
            if r is not None and seed in r:
                return name
        return "unused"


SPLITS: dict[str, SeedSplit] = {s.study: s for s in (
    # Monte Carlo games of the coin-flip DQN (numpy generator seeds of cf.evaluate; training uses seeds < 10**6)
    SeedSplit("coinflip", "Monte Carlo game seed", train=range(0, 1_000_000),
              validation=range(1_000_000, 2_000_000), test=range(2_000_000, 3_000_000)),
    # highway-env scene seeds (env.reset(seed=...))
    SeedSplit("highway", "environment seed", train=range(0, 1_000_000),
              validation=range(1_000_000, 2_000_000), test=range(2_000_000, 3_000_000)),
    # in-context rollouts of the AD models on the held-out goals: the sampling seed of a rollout
    SeedSplit("ad", "rollout sampling seed", train=range(0, 1_000_000),
              validation=range(1_000_000, 2_000_000), test=range(2_000_000, 3_000_000)),
    # Heist levels: envs.heist.SPLITS gives training [0, 2**31) and held-out [2**31, 2**32)
    SeedSplit("heist", "level seed", train=range(0, 2**31),
              validation=range(2**31, 2**31 + 2**30), test=range(2**31 + 2**30, 2**32)),
    # Culture: quizzes are split by content hash (envs.quizzes); these seed the generators of evaluation sets
    SeedSplit("culture", "quiz-generator seed", train=range(0, 1_000_000),
              validation=range(1_000_000, 2_000_000), test=range(2_000_000, 3_000_000)),
)}


def split(study: str) -> SeedSplit:
    """The declared seed split of ``study``."""
    return SPLITS[check_choice("study", study, SPLITS)]
