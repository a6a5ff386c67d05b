"""rlinterp: mechanistic interpretability of reinforcement-learning agents.

Sub-packages: ``envs`` (environments), ``models`` (hooked networks), ``learners`` (training algorithms),
``studies`` (each study's analyses), ``interp`` (one file per interpretability method), ``explore`` (Streamlit apps)
and ``pipeline`` (analyses -> executed chapters -> book); ``stats`` and ``validation`` are the one statistics and the
one argument-checking module.
"""
from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the folder holding ``_quarto.yml``); lib/rlinterp/__init__.py -> ../../
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
