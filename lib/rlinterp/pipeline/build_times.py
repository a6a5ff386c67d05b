"""The measured wall time of each chapter's last build, per profile: ``<build folder>/paper/build_times.json``.

``rli run`` records the time of every execution made without ``-p`` overrides (a profile's own build), in the folder
the chapter is written to: the project's ``paper/build_times.json`` for the paper's chapters (tracked in git, so a
fresh clone knows what each chapter costs), ``<out>/paper/build_times.json`` for a build folder. The placeholder page
of a chapter that was not built yet quotes it. Entries look like::

    "coinflip/01_game": {"default": {"seconds": 34.0, "machine": "2 cores, Linux x86_64", "date": "2025-…"}}

An entry with ``"seeded": true`` was entered by hand from an earlier measurement (its ``machine`` says which).
"""
from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlinterp.pipeline.manifest import atomic_write_bytes

NAME = "build_times.json"
ABOUT = ("Wall time of each chapter's last build per profile, recorded by `rli run` (executions without -p "
         "overrides); quoted by the placeholder page of a chapter that is not built yet. Entries with seeded=true "
         "were entered from an earlier measurement.")


def path(build_dir: Path) -> Path:
    return Path(build_dir) / "paper" / NAME


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def read(build_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{analysis: {profile: entry}}`` ({} when there is no record or it is unreadable)."""
    try:
        data = json.loads(path(build_dir).read_text())
        return data.get("chapters", {}) if isinstance(data, dict) else {}
    except (OSError, json.JSONDecodeError):
        return {}


@contextmanager
def _locked(target: Path):
    """An exclusive lock on ``target``'s folder (parallel `rli run` processes of `rli build -j N` record concurrently;
    locking the folder leaves no lock file behind)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): last writer wins
        yield
        return
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def record(build_dir: Path, analysis: str, profile: str, seconds: float) -> None:
    """Record ``analysis``'s wall time under ``profile`` (replaces the previous entry, seeded or measured)."""
    target = path(build_dir)
    with _locked(target):
        chapters = read(build_dir)
        chapters.setdefault(analysis, {})[profile] = {
            "seconds": round(float(seconds), 1), "machine": machine(), "date": time.strftime("%Y-%m-%d")}
        body = {"about": ABOUT, "chapters": {k: chapters[k] for k in sorted(chapters)}}
        atomic_write_bytes(target, (json.dumps(body, indent=1) + "\n").encode())


def lookup(analysis: str, profile: str, *build_dirs: Path) -> dict[str, Any] | None:
    """The recorded entry for ``analysis`` under ``profile`` in the first of ``build_dirs`` that has one."""
    for d in build_dirs:
        entry = read(d).get(analysis, {}).get(profile)
        if entry and isinstance(entry.get("seconds"), (int, float)):
            return entry
    return None


def describe(seconds: float) -> str:
    s = round(seconds)
    return f"{s} s" if s < 120 else f"{s} s (about {round(s / 60)} min)"
