"""Execute one analysis: validate parameters → cache check → papermill → atomic write of the chapter.

Contract (see ``shared/design.md``):
- parameters are validated against the parameters cell before anything runs;
- the cache key is a hash of (analysis source, effective parameters, every ``lib/`` source, the data manifest);
  an unchanged key skips execution (``force`` reruns). Quarto's own freeze would not notice lib/ edits;
- on failure the failing cell and its traceback are reported, the failed notebook is kept beside the chapter as
  ``NN_topic.failed.ipynb`` and the previous good chapter is left untouched;
- the injected-parameters cell is hidden in the book (``#| include: false`` + ``remove-cell`` tag).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline.manifest import MANIFEST_NAME, atomic_write_bytes

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
HIDE = "#| include: false\n"


class AnalysisFailed(RuntimeError):
    """An analysis raised; the message holds the failing cell and traceback."""


@dataclass
class RunResult:
    analysis: str
    status: str  # "executed" | "cached"
    chapter: Path
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)


def _lib_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "lib").rglob("*.py") if "__pycache__" not in p.parts)


def cache_key(analysis: an.Analysis, params: dict[str, Any]) -> str:
    """sha256 over the analysis source, the effective parameters, all lib/ sources and the data manifest.

    The manifest holds the sha256 of every shipped data file (and loading verifies it), so hashing the manifest
    covers the data without re-reading megabytes of checkpoints on every call.
    """
    root = analysis.root
    h = hashlib.sha256()
    h.update(b"analysis\0" + analysis.source.read_bytes())
    h.update(b"params\0" + json.dumps(params, sort_keys=True).encode())
    for path in _lib_files(root):
        h.update(b"lib\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    manifest = root / "data" / MANIFEST_NAME
    h.update(b"data\0" + (manifest.read_bytes() if manifest.exists() else b""))
    return h.hexdigest()


def recorded_key(chapter: Path) -> str | None:
    """The cache key stored in an executed chapter's metadata (None if absent or unreadable)."""
    if not chapter.exists():
        return None
    try:
        return json.loads(chapter.read_text())["metadata"]["rlinterp"]["cache_key"]
    except (json.JSONDecodeError, KeyError, TypeError, OSError):
        return None


def resolve(root: Path, name: str, overrides: dict[str, Any] | None = None, profile: str | None = None):
    """(analysis, notebook, effective parameters) — raises ParameterError before anything is executed."""
    analysis = an.get(root, name)
    if profile and profile not in an.known_profiles(root):
        raise an.ParameterError(f"unknown profile {profile!r}; known: {', '.join(sorted(an.known_profiles(root)))}")
    nb = an.load_notebook(analysis)
    spec = an.parameters(analysis, nb)
    params = an.validate(analysis, spec, an.profile(root, analysis, profile), overrides or {})
    if params.get("save") is True and profile not in (None, "default"):
        raise an.ParameterError(f"{analysis.name}: save=true under profile {profile!r} would replace the shipped "
                                f"data/ files with {profile}-sized results; save only with the default profile")
    return analysis, nb, params


def is_fresh(analysis: an.Analysis, params: dict[str, Any], out: Path | None = None) -> bool:
    return recorded_key(analysis.chapter(out)) == cache_key(analysis, params)


def run(root: Path, name: str, overrides: dict[str, Any] | None = None, *, profile: str | None = None,
        force: bool = False, out: Path | None = None, progress: bool = True) -> RunResult:
    """Run analysis ``name`` and write its executed chapter (under ``out``/paper, default ``root``/paper)."""
    import nbformat
    import papermill as pm

    analysis, nb, params = resolve(root, name, overrides, profile)
    chapter = analysis.chapter(out)
    key = cache_key(analysis, params)
    if not force and recorded_key(chapter) == key:
        return RunResult(analysis.name, "cached", chapter, 0.0, params)

    chapter.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rli-") as tmp:
        src = Path(tmp) / "input.ipynb"
        dst = Path(tmp) / "output.ipynb"
        nbformat.write(nb, src)
        # the kernel inherits our environment: a user's (or CI's) MPLBACKEND=Agg would make plt.show() draw nothing
        saved = os.environ.get("MPLBACKEND")
        os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
        try:
            pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                progress_bar=progress, cwd=str(root), log_output=False)
        except pm.PapermillExecutionError as e:
            failed = analysis.failed(out)
            if dst.exists():
                atomic_write_bytes(failed, dst.read_bytes())
            raise AnalysisFailed(_failure_message(analysis, e, failed, chapter)) from None
        finally:
            if saved is None:
                os.environ.pop("MPLBACKEND", None)
            else:
                os.environ["MPLBACKEND"] = saved
        executed = nbformat.read(dst, as_version=4)
    seconds = time.perf_counter() - t0
    _hide_injected(executed)
    executed.metadata["rlinterp"] = {
        "analysis": analysis.name, "cache_key": key, "params": params, "profile": profile or "default",
        "seconds": round(seconds, 2), "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    atomic_write_bytes(chapter, nbformat.writes(executed).encode())
    analysis.failed(out).unlink(missing_ok=True)
    return RunResult(analysis.name, "executed", chapter, seconds, params)


def _hide_injected(nb) -> None:
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            if not cell.source.startswith(HIDE):
                cell.source = HIDE + cell.source
            if "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]


def _failure_message(analysis: an.Analysis, err, failed: Path, chapter: Path) -> str:
    cell_src = ""
    try:
        import nbformat

        nb = nbformat.read(failed, as_version=4)  # papermill inserts a banner cell: find the cell by its error
        cell_src = next((c.source for c in nb.cells if c.cell_type == "code"
                         and any(o.get("output_type") == "error" for o in c.get("outputs", []))), "")
    except Exception:  # the failed notebook could not be read back: still report the traceback
        pass
    tb = ANSI.sub("", "\n".join(err.traceback or [])) if err.traceback else f"{err.ename}: {err.evalue}"
    return (f"analysis {analysis.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue})\n"
            f"--- failing cell ---\n{cell_src}\n--- traceback ---\n{tb}\n"
            f"The failed notebook is kept at {failed}; the previous chapter {chapter} was left untouched.")
