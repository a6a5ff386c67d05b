"""The one argument-validation helper of the project: check a parameter's type and range *before* anything runs.

Every public function and constructor validates its numeric and categorical arguments with these helpers, so a bad
value fails early with a message that names the parameter, states what was expected and shows what was given.

* :func:`check_int` -- an integer (Python ``int`` or any numpy integer; ``bool`` refused) within optional bounds.
* :func:`check_float` -- a finite real number (Python or numpy; ``bool`` and ``nan`` refused; ``inf`` only with
  ``allow_inf``) within optional bounds.
* :func:`check_prob` -- :func:`check_float` on a closed range, by default [0, 1].
* :func:`check_choice` -- one of a fixed set of values.

Each returns the value converted to a plain Python type (``int``, ``float`` or the choice itself).
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real
from typing import Any

import numpy as np

__all__ = ["check_int", "check_float", "check_prob", "check_choice"]


def _bounds_text(kind: str, minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"{kind} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{kind} >= {minimum}"
    if maximum is not None:
        return f"{kind} <= {maximum}"
    return kind


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int``; it must be an integer (numpy integers accepted, bools refused) in
    ``[minimum, maximum]`` (either bound optional). Raises ``ValueError`` naming ``name`` otherwise."""
    what = _bounds_text("an integer", minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Integral, np.integer)):
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {what}, got {value}")
    return int(value)


def check_float(name: str, value: Any, minimum: float | None = None, maximum: float | None = None, *,
                allow_inf: bool = False) -> float:
    """``value`` as a ``float``; it must be a real number (Python or numpy; integers accepted, bools refused), not
    ``nan``, finite unless ``allow_inf``, and in ``[minimum, maximum]`` (either bound optional)."""
    what = _bounds_text("a finite number" if not allow_inf else "a number", minimum, maximum)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (Real, np.integer, np.floating)):
        raise ValueError(f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    v = float(value)
    if math.isnan(v) or (math.isinf(v) and not allow_inf):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {what}, got {value!r}")
    return v


def check_prob(name: str, value: Any, lo: float = 0.0, hi: float = 1.0) -> float:
    """A probability-like number in the closed range ``[lo, hi]`` (default [0, 1]); see :func:`check_float`."""
    return check_float(name, value, lo, hi)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared with ``==``), else ``ValueError`` listing the choices."""
    options = list(choices)
    if isinstance(value, np.ndarray) or value not in options:
        raise ValueError(f"{name} must be one of {options}, got {value!r}")
    return value


def check_resume_config(path: Any, saved: dict, now: dict, may_change: Iterable[str] = ()) -> None:
    """Refuse to resume the run at ``path`` when its saved config differs from ``now`` in any field but
    ``may_change`` (a ``ValueError`` listing the differences as (saved, now))."""
    may_change = set(may_change)
    diff = {k: (saved.get(k), v) for k, v in now.items() if saved.get(k) != v and k not in may_change}
    if diff:
        allowed = " and ".join(sorted(may_change)) or "nothing"
        raise ValueError(f"{path} was written with a different config {diff} (saved, now); use another run "
                         f"directory or the same options (only {allowed} may change on resume)")
