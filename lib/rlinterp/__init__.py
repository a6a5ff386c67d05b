"""rlinterp: mechanistic interpretability of reinforcement-learning agents.

Sub-packages: ``envs`` (one file per environment), ``agents`` (one file per learner/network),
``interp`` (one file per interpretability method) and ``pipeline`` (analyses -> executed chapters -> book).
"""
from pathlib import Path

__version__ = "0.1.0"

#: Repository root (the folder holding ``_quarto.yml``); lib/rlinterp/__init__.py -> ../../
ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
