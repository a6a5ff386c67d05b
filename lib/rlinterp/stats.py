"""The one statistics module: every interval the book prints or draws comes from here.

All interval functions return an :class:`Interval` ``(mean, lo, hi)`` -- a named tuple, so ``m, lo, hi = ...``
unpacks it -- with ``half`` (half-width) as a property. For curves (:func:`band`) the three fields are arrays.

* :func:`mean_interval` -- mean with a normal (``method="normal"``) or Student-t (``method="t"``) interval.
* :func:`wilson` -- Wilson score interval of a rate (clipped to [0, 1]).
* :func:`bootstrap` -- percentile bootstrap of any statistic, seeded.
* :func:`paired_difference` -- mean of ``a - b`` over paired samples (common random numbers) with a normal, t or
  bootstrap interval.
* :func:`band` -- a curve's mean and interval over seeds/rollouts (rows), per column.
* :func:`best_time` -- the minimum wall time of repeated calls (the usual timing statistic; noise only adds time).

``level`` is the confidence level (0.95 = 95 %).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from scipy import stats as _st

from rlinterp.validation import check_choice, check_float, check_int

__all__ = ["Interval", "mean_interval", "wilson", "bootstrap", "paired_difference", "band", "best_time"]


class Interval(NamedTuple):
    """A point estimate and its interval: ``(mean, lo, hi)`` (floats, or arrays for :func:`band`)."""

    mean: Any
    lo: Any
    hi: Any

    @property
    def half(self) -> Any:
        """Half-width ``(hi - lo) / 2`` (for symmetric intervals: the ``±`` value)."""
        return (self.hi - self.lo) / 2


def _z(level: float) -> float:
    return float(_st.norm.ppf(1 - (1 - level) / 2))


def _check_level(level: Any) -> float:
    level = check_float("level", level, 0.0, 1.0)
    if level in (0.0, 1.0):
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    return level


def mean_interval(x: Any, level: float = 0.95, method: str = "normal") -> Interval:
    """Mean of ``x`` and its ``level`` confidence interval: ``method="normal"`` (z quantile) or ``"t"`` (Student t
    with ``n - 1`` degrees of freedom). With fewer than 2 samples the bounds are NaN."""
    level = _check_level(level)
    check_choice("method", method, ("normal", "t"))
    x = np.asarray(x, dtype=float).ravel()
    if len(x) == 0:
        raise ValueError("mean_interval needs at least one sample")
    m = float(x.mean())
    if len(x) < 2:
        return Interval(m, float("nan"), float("nan"))
    q = _z(level) if method == "normal" else float(_st.t.ppf(1 - (1 - level) / 2, len(x) - 1))
    half = q * float(x.std(ddof=1)) / np.sqrt(len(x))
    return Interval(m, m - half, m + half)


def wilson(p: Any, n: Any, level: float = 0.95) -> Interval:
    """Wilson score interval of a rate ``p`` observed on ``n`` trials -> ``Interval(p, lo, hi)``, clipped to [0, 1]."""
    p = check_float("p", p, 0.0, 1.0)
    n = check_int("n", n, 1)
    z = _z(_check_level(level))
    c = (p + z * z / (2 * n)) / (1 + z * z / n)
    h = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Interval(p, max(float(c - h), 0.0), min(float(c + h), 1.0))


def bootstrap(x: Any, statistic: Callable[[np.ndarray], Any] = np.mean, level: float = 0.95, n_boot: int = 2000,
              seed: int = 0) -> Interval:
    """Percentile bootstrap of ``statistic`` over the rows of ``x`` (resampled with replacement, ``n_boot`` times,
    generator seeded with ``seed``) -> ``Interval(statistic(x), lo, hi)``."""
    level = _check_level(level)
    n_boot = check_int("n_boot", n_boot, 1)
    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        raise ValueError("bootstrap needs at least 2 samples")
    rng = np.random.default_rng(seed)
    boots = np.array([statistic(x[rng.integers(0, len(x), len(x))]) for _ in range(n_boot)])
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2], axis=0)
    est = statistic(x)
    if np.ndim(est) == 0:
        return Interval(float(est), float(lo), float(hi))
    return Interval(np.asarray(est), lo, hi)


def paired_difference(a: Any, b: Any, level: float = 0.95, method: str = "normal", n_boot: int = 2000,
                      seed: int = 0) -> Interval:
    """Mean of ``a - b`` over paired samples (e.g. returns of two policies on the same games) and its interval:
    ``method`` = ``"normal"``, ``"t"`` or ``"bootstrap"`` (percentile, ``n_boot`` resamples, seeded)."""
    check_choice("method", method, ("normal", "t", "bootstrap"))
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError("paired_difference needs two 1-d arrays of equal length >= 2 (paired samples)")
    d = a - b
    if method == "bootstrap":
        return bootstrap(d, np.mean, level, n_boot, seed)
    return mean_interval(d, level, method)


def band(x: Any, level: float = 0.95, method: str = "normal") -> Interval:
    """A curve's mean and interval over the rows of ``x`` [runs, points] (seeds, rollouts, goals), per column ->
    ``Interval`` of arrays [points]. A single row gives a zero-width band."""
    level = _check_level(level)
    check_choice("method", method, ("normal", "t"))
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"band needs a 2-d array [runs, points] with at least one run, got shape {x.shape}")
    m = x.mean(0)
    if len(x) < 2:
        return Interval(m, m.copy(), m.copy())
    q = _z(level) if method == "normal" else float(_st.t.ppf(1 - (1 - level) / 2, len(x) - 1))
    h = q * x.std(0, ddof=1) / np.sqrt(len(x))
    return Interval(m, m - h, m + h)


def best_time(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Call ``fn()`` ``repeats`` times -> ``(minimum wall time in seconds, the last call's result)``."""
    repeats = check_int("repeats", repeats, 1)
    ts, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t0)
    return min(ts), out
