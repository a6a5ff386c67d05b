"""The appendix "Reproducing this book", generated at render time from what the build recorded (never typed).

For every chapter: the profile it was executed with, its wall time, when, its cache key and the parameters that differ
from the analysis's defaults (all from the executed notebook's ``metadata.rlinterp``); the shipped data files with their
hashes and rebuild commands (``data/MANIFEST.json``); the versions of the packages the results depend on; the machine;
and the commands that rebuild the book. :func:`write_appendix` writes it to ``<book>/paper/reproducing.qmd`` (git-ignored)
just before rendering; ``_quarto.yml`` lists it under ``book.appendices``.
"""
from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline.report import md_table_text

APPENDIX = "paper/reproducing.qmd"
PACKAGES = ("torch", "numpy", "scipy", "pandas", "gymnasium", "highway-env", "transformer-lens", "sae-lens", "captum",
            "papermill", "jupytext", "nbformat", "matplotlib", "pypandoc-binary", "typst")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _chapter_rows(root: Path, book_dir: Path) -> list[dict]:
    rows = []
    for a in an.discover(root):
        chapter = a.chapter(book_dir if book_dir != root else None)
        meta = {}
        if chapter.exists():
            try:
                meta = json.loads(chapter.read_text())["metadata"].get("rlinterp", {})
            except (json.JSONDecodeError, KeyError, OSError):
                meta = {}
        if not meta:
            rows.append({"chapter": a.name, "profile": "—", "seconds": "not built", "executed": "—",
                         "cache key": "—", "parameters (≠ default)": "—"})
            continue
        try:
            spec = an.parameters(a)
            changed = {k: v for k, v in meta.get("params", {}).items() if k in spec and spec[k].default != v}
        except Exception:  # an analysis whose parameters cell no longer parses: show what was recorded
            changed = meta.get("params", {})
        rows.append({"chapter": a.name, "profile": meta.get("profile", "default"),
                     "seconds": f"{float(meta.get('seconds', float('nan'))):.0f}",
                     "executed": str(meta.get("executed", "—"))[:16].replace("T", " "),
                     "cache key": f"`{str(meta.get('cache_key', ''))[:12]}`",
                     "parameters (≠ default)": ", ".join(f"`{k}={v!r}`" for k, v in changed.items()) or "—"})
    return rows


def _table(rows: list[dict]) -> str:
    return md_table_text(rows) + "\n" if rows else "(none)\n"


def appendix_markdown(root: Path, book_dir: Path | None = None) -> str:
    """The appendix's Markdown for the chapters under ``book_dir`` (default: the project's own ``paper/``)."""
    root = Path(root)
    book_dir = Path(book_dir or root)
    chapters = _chapter_rows(root, book_dir)
    manifest_path = root / "data" / "MANIFEST.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    data = [{"file": f"`data/{k}`", "sha256": f"`{v.get('sha256', '')[:12]}`", "bytes": f"{v.get('size', 0):,}",
             "rebuild": f"`{v.get('command', '')}`"} for k, v in sorted(manifest.items())]
    packages = [{"package": p, "version": _version(p)} for p in PACKAGES]
    try:
        import torch

        threads, cuda = torch.get_num_threads(), torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        threads, cuda = "—", False
    built = [r for r in chapters if r["seconds"] != "not built"]
    total = sum(float(r["seconds"]) for r in built)
    return f"""# Reproducing this book {{#sec-reproducing}}

This appendix is generated when the book is rendered, from what the build recorded; nothing in it is typed by hand.

**Commands.** `make paper` builds the whole book from the shipped checkpoints (it creates `.venv`, installs the pinned
dependencies of `constraints.txt`, runs every chapter whose inputs changed and renders); `make test` runs the test
suite. One chapter: `rli run STUDY/NN_topic [-p name=value ...]`; the review report of a change: `rli diff`; one
shipped file again: `rli data rebuild NAME --save` (the command of each file is in the data table below).

**Chapters.** {len(built)} of {len(chapters)} chapters are built here, {total:.0f} s of execution in all. The cache key
covers the analysis source, its parameters, every file under `lib/` and the data manifest: a chapter whose key is
unchanged is not executed again.

{_table(chapters)}
**Shipped data** (`data/MANIFEST.json`; loading checks each hash).

{_table(data)}
**Packages** (exact versions of everything are pinned in `constraints.txt`).

{_table(packages)}
**Machine that rendered this book.** Python {sys.version.split()[0]} on {platform.system()} {platform.machine()}
({platform.platform()}), {os.cpu_count()} CPU cores, torch threads {threads}, CUDA {'available' if cuda else 'not available'}.
"""


def write_appendix(root: Path, book_dir: Path | None = None) -> Path:
    """Write the appendix to ``<book_dir>/paper/reproducing.qmd`` (atomically) and return its path."""
    from rlinterp.pipeline.manifest import atomic_write_bytes

    book_dir = Path(book_dir or root)
    target = book_dir / APPENDIX
    atomic_write_bytes(target, appendix_markdown(root, book_dir).encode())
    return target
