"""Execute one analysis: validate parameters → cache check → papermill → atomic write of the chapter.

Contract (see ``shared/design.md``):
- parameters are validated against the parameters cell before anything runs;
- the cache key is a hash of (analysis source, effective parameters, every ``lib/`` source, the data manifest);
  an unchanged key skips execution (``force`` reruns). Quarto's own freeze would not notice lib/ edits;
- on failure the failing cell and its traceback are reported, the failed notebook is kept beside the chapter as
  ``NN_topic.failed.ipynb`` and the previous good chapter is left untouched;
- the book shows the parameters actually used: the executed ``parameters`` cell is rewritten to the effective values
  (a changed value notes its default), and papermill's injected-parameters cell is hidden (``#| include: false`` +
  ``remove-cell`` tag), so both Quarto (which renders the .ipynb as is) and the fallback renderer show one cell with
  the values that produced the chapter;
- the wall time of every execution without ``-p`` overrides is recorded per profile in ``build_times.json`` (see
  :mod:`rlinterp.pipeline.build_times`), so an unbuilt chapter's placeholder page can say what building it costs.
"""
from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlinterp.progress import ENV as PROGRESS_ENV
from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import build_times
from rlinterp.pipeline.manifest import MANIFEST_NAME, atomic_write_bytes

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# one declaration of the parameters cell: `name: type = value  # help` (the value ends at the comment; values are
# literals without '#')
DECL = re.compile(r"^(?P<head>(?P<name>[A-Za-z_]\w*)\s*(?::\s*[^=]+?)?\s*=\s*)(?P<value>[^#]*?)(?P<comment>\s*#.*)?$")
HIDE = "#| include: false\n"
#: warning filters of the kernel that executes a chapter (PYTHONWARNINGS syntax): noise that is no concern of the book
KERNEL_WARNINGS = "ignore:IProgress not found"


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


def cache_key(analysis: an.Analysis, params: dict[str, Any], inputs: list[Path] = ()) -> str:
    """sha256 over the analysis source, the effective parameters, all lib/ sources and the data manifest
    (and ``inputs``: the tables of the declared sweeps the chapter reads, see :func:`sweep_inputs`).

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
    for path in inputs:
        h.update(b"input\0" + path.name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"missing"))
    return h.hexdigest()


def sweep_inputs(analysis: an.Analysis, out: Path | None = None) -> list[Path]:
    """The tables of the sweeps declared (``analyses/<study>/sweeps.toml``) as read by ``analysis``."""
    from rlinterp.pipeline import sweep

    return [s.table_path(out) for s in sweep.declared_for(analysis)]


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
    return recorded_key(analysis.chapter(out)) == cache_key(analysis, params, sweep_inputs(analysis, out))


def run(root: Path, name: str, overrides: dict[str, Any] | None = None, *, profile: str | None = None,
        force: bool = False, out: Path | None = None, progress: bool = True, workdir: Path | None = None) -> RunResult:
    """Run analysis ``name`` and write its executed chapter (under ``out``/paper, default ``root``/paper).

    The kernel runs in ``workdir`` (default ``root``); it sees ``RLI_OUT`` (``out`` or ``root``: where
    :func:`rlinterp.pipeline.sweep.load` finds a declared sweep's table) and ``RLI_RESULTS`` (where
    :func:`rlinterp.pipeline.report.record` writes the results, stored in the chapter's metadata)."""
    import nbformat
    import papermill as pm

    from rlinterp.pipeline.report import RESULTS_ENV

    analysis, nb, params = resolve(root, name, overrides, profile)
    chapter = analysis.chapter(out)
    key = cache_key(analysis, params, sweep_inputs(analysis, out))
    if not force and recorded_key(chapter) == key:
        analysis.failed(out).unlink(missing_ok=True)  # the chapter is good for these inputs: an old failure is stale
        return RunResult(analysis.name, "cached", chapter, 0.0, params)

    chapter.parent.mkdir(parents=True, exist_ok=True)
    had_chapter = chapter.exists()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rli-") as tmp:
        src = Path(tmp) / "input.ipynb"
        dst = Path(tmp) / "output.ipynb"
        results = Path(tmp) / "results.json"
        nbformat.write(nb, src)
        # the kernel inherits our environment: a user's (or CI's) MPLBACKEND=Agg would make plt.show() draw nothing;
        # progress bars (rlinterp.progress) are off, so the chapter holds no bars on stderr; and tqdm.auto's notice
        # that ipywidgets is missing (printed on import by huggingface_hub, which TransformerLens imports) concerns
        # widget front-ends, which a papermill kernel never has. RLI_RESULTS / RLI_OUT: where report.record writes
        # and where sweep.load looks.
        kernel_env = {"MPLBACKEND": "module://matplotlib_inline.backend_inline", PROGRESS_ENV: "off",
                      "PYTHONWARNINGS": ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), KERNEL_WARNINGS])),
                      RESULTS_ENV: str(results), "RLI_OUT": str(Path(out or root).resolve())}
        saved = {k: os.environ.get(k) for k in kernel_env}
        os.environ.update(kernel_env)
        try:
            pm.execute_notebook(str(src), str(dst), parameters=params, kernel_name="python3",
                                progress_bar=progress, cwd=str(workdir or root), log_output=False)
        except pm.PapermillExecutionError as e:
            failed = analysis.failed(out)
            if dst.exists():
                atomic_write_bytes(failed, dst.read_bytes())
            raise AnalysisFailed(_failure_message(analysis, e, failed, chapter if had_chapter else None)) from None
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        executed = nbformat.read(dst, as_version=4)
        recorded = json.loads(results.read_text()) if results.exists() else {}
    seconds = time.perf_counter() - t0
    _hide_injected(executed)
    show_effective_parameters(executed, params, profile)
    executed.metadata["rlinterp"] = {
        "analysis": analysis.name, "cache_key": key, "params": params, "profile": profile or "default",
        "seconds": round(seconds, 2), "executed": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if recorded:  # report.record(): strict JSON (non-finite floats encoded), read back with report.decode_result
        executed.metadata["rlinterp"]["results"] = recorded
    atomic_write_bytes(chapter, nbformat.writes(executed).encode())
    analysis.failed(out).unlink(missing_ok=True)
    if not overrides:  # a profile's own build: its time is what the placeholder page of an unbuilt chapter quotes
        build_times.record(Path(out or root), analysis.name, profile or "default", seconds)
    return RunResult(analysis.name, "executed", chapter, seconds, params)


def _literal(value: Any) -> str:
    """``value`` as Python source (the injected values are JSON-like: numbers, strings, bools, lists of them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f'float("{value}")'
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # double quotes, as the cells are written
    return repr(value)


def show_effective_parameters(nb, params: dict[str, Any], profile: str | None) -> None:
    """Rewrite the executed ``parameters`` cell to the values the chapter was computed with.

    Each ``name: type = default  # help`` line gets the effective value; a value that differs from the declared
    default is marked ``(default: …)`` and a first comment line names the profile, so a smoke or ``-p`` build never
    shows the paper's defaults above numbers computed from other values.
    """
    for cell in nb.cells:
        if cell.cell_type != "code" or "parameters" not in cell.metadata.get("tags", []):
            continue
        lines, changed = cell.source.splitlines(), False
        for i, line in enumerate(lines):
            m = DECL.match(line)
            if not m or m.group("name") not in params:
                continue
            value = params[m.group("name")]
            try:
                default = ast.literal_eval(m.group("value").strip())
            except (ValueError, SyntaxError):
                default = None
            same = default == value and type(default) is type(value) or (
                isinstance(value, float) and isinstance(default, int) and not isinstance(default, bool)
                and float(default) == value)
            if not same:  # a line at its default stays exactly as written
                changed = True
                comment = (m.group("comment") or "  #") + f" (default: {m.group('value').strip()})"
                lines[i] = f"{m.group('head')}{_literal(value)}{comment}"
        if changed:
            lines.insert(0, f"# parameters as executed (profile {profile or 'default'}; a changed value notes "
                            f"its default)")
        cell.source = "\n".join(lines)


def _hide_injected(nb) -> None:
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            if not cell.source.startswith(HIDE):
                cell.source = HIDE + cell.source
            if "remove-cell" not in tags:
                cell.metadata["tags"] = [*tags, "remove-cell"]


def _failure_message(analysis: an.Analysis, err, failed: Path, chapter: Path | None) -> str:
    """The failing cell and traceback; ``chapter`` is the previous good chapter (None: there was none)."""
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
            f"The failed notebook is kept at {failed}; "
            + (f"the previous chapter {chapter} was left untouched." if chapter is not None else
               "no chapter was written (there was no previous one)."))
