"""The one progress bar of the package: plain ``tqdm`` that stays silent inside a chapter's execution.

Every loop that shows progress imports :func:`tqdm` from here, never ``tqdm.auto`` (which, in a Jupyter kernel
without ipywidgets, writes ``TqdmWarning: IProgress not found`` to stderr on import) nor ``tqdm`` directly. ``rli run``
executes chapters with ``RLINTERP_PROGRESS=off`` in the kernel's environment (:data:`ENV`), so an executed chapter
holds no progress bars on stderr — they would be noise in the book and in the notebook diff. Command-line training
runs and interactive sessions keep their bars.
"""
from __future__ import annotations

import os

from tqdm import tqdm as _tqdm

ENV = "RLINTERP_PROGRESS"  #: "off" (or "0", "false", "no") disables every bar of the package
_OFF = {"off", "0", "false", "no"}


def enabled() -> bool:
    """Whether progress bars may be shown (``RLINTERP_PROGRESS`` is unset or not one of off/0/false/no)."""
    return os.environ.get(ENV, "").strip().lower() not in _OFF


def tqdm(*args, disable: bool = False, **kwargs) -> _tqdm:
    """``tqdm.tqdm`` with the same arguments; disabled when ``disable`` is true or bars are switched off
    (:func:`enabled`)."""
    return _tqdm(*args, disable=bool(disable) or not enabled(), **kwargs)
