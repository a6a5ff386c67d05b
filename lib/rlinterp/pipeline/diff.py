"""`rli diff [BASE]`: which chapters a change moves, and how — the review report for a pull request.

For the working tree against a git ref (default: the merge base with ``main``):

1. **What changed, per chapter.** Each analysis's inputs are hashed on both sides: its source, its effective parameters
   (for the chosen profile), the ``lib/`` files it imports (the static import closure of the chapter, followed through
   every package under ``lib/``), and the shipped data files it names (``data/MANIFEST.json`` entries whose name appears
   in the analysis source). A chapter whose inputs differ is listed with the reasons.
2. **Re-run.** Changed chapters are executed on both sides with the same profile (the base from a ``git archive`` of
   BASE in a temporary folder, with that folder's ``lib/`` first on ``PYTHONPATH``); an executed chapter already on disk
   whose recorded cache key matches is reused instead.
3. **Report.** nbdime aligns the cells of the old and new notebook (added / removed / modified cells); for aligned
   cells the text outputs are compared sentence by sentence: a sentence whose words stayed and whose numbers moved is
   reported as ``old → new`` with the sentence around it, other changed sentences as text changes, and changed figures
   side by side. Written as ``report.html`` (self-contained: figures embedded) and ``summary.md`` (short enough for a
   pull-request comment).
"""
from __future__ import annotations

import ast
import difflib
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import run as runner
from rlinterp.pipeline.manifest import MANIFEST_NAME

NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?%?")
SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")


# ------------------------------------------------------------------------------------------------ inputs per chapter
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _module_file(lib: Path, module: str) -> Path | None:
    base = lib.joinpath(*module.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def _imports(tree: ast.AST, module: str | None, is_package: bool) -> set[str]:
    """Absolute module names imported by a parsed file (``from a import b`` yields ``a`` and ``a.b``)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level and module:
                parts = module.split(".")
                parts = parts if is_package else parts[:-1]
                parts = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                out.add(base)
                out.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return out


def import_closure(root: Path, source: str) -> list[Path]:
    """Every file under ``root/lib`` that ``source`` (Python text) imports, directly or through other lib files.

    Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py``, so those are included. The analysis is
    static (``importlib.import_module("x")`` with a computed name is not seen)."""
    lib = root / "lib"
    seen: dict[str, Path] = {}
    todo = [(source, None, False)]
    while todo:
        text, module, is_pkg = todo.pop()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        for name in _imports(tree, module, is_pkg):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in seen:
                    continue
                path = _module_file(lib, mod)
                if path is None:
                    continue
                seen[mod] = path
                todo.append((path.read_text(), mod, path.name == "__init__.py"))
    return sorted(set(seen.values()))


def _analysis_code(analysis: an.Analysis) -> str:
    """The analysis as Python (jupytext percent files are Python already; cell magics are commented out)."""
    return "\n".join(ln for ln in analysis.source.read_text().splitlines() if not ln.lstrip().startswith(("%", "!")))


def chapter_inputs(root: Path, name: str, profile: str | None) -> dict[str, Any]:
    """What a chapter's result depends on: source hash, effective parameters, lib files and data files it uses."""
    analysis, _, params = runner.resolve(root, name, None, profile)
    code = _analysis_code(analysis)
    lib = {str(p.relative_to(root)): _sha(p.read_bytes()) for p in import_closure(root, code)}
    manifest_path = root / "data" / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    text = analysis.source.read_text()
    data = {k: v.get("sha256") for k, v in manifest.items() if k in text or k.rsplit(".", 1)[0] in text}
    return {"source": _sha(analysis.source.read_bytes()), "params": params, "lib": lib, "data": data,
            "cache_key": runner.cache_key(analysis, params, runner.sweep_inputs(analysis))}


def _changed_keys(old: dict, new: dict) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))


def reasons(old: dict | None, new: dict | None) -> list[str]:
    """Why a chapter's inputs differ, in words (empty: unchanged)."""
    if old is None:
        return ["new analysis"]
    if new is None:
        return ["analysis removed"]
    out = []
    if old["source"] != new["source"]:
        out.append("analysis source")
    for k in _changed_keys(old["params"], new["params"]):
        out.append(f"parameter {k}: {old['params'].get(k, '—')!r} → {new['params'].get(k, '—')!r}")
    out += [f"lib: {k}" for k in _changed_keys(old["lib"], new["lib"])]
    out += [f"data: {k}" for k in _changed_keys(old["data"], new["data"])]
    return out


# --------------------------------------------------------------------------------------------------- git and runs
def _git(root: Path, *args: str) -> str:
    res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {res.stderr.strip()}")
    return res.stdout.strip()


def default_base(root: Path) -> str:
    """The merge base of HEAD with ``main`` (or ``origin/main``); HEAD itself when neither exists."""
    for ref in ("main", "origin/main"):
        try:
            return _git(root, "merge-base", "HEAD", ref)
        except RuntimeError:
            continue
    return _git(root, "rev-parse", "HEAD")


def export_ref(root: Path, ref: str, dest: Path) -> Path:
    """The tree of ``ref`` (tracked files only) unpacked into ``dest``."""
    commit = _git(root, "rev-parse", "--verify", f"{ref}^{{commit}}")
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest.parent / f"{dest.name}.tar"
    subprocess.run(["git", "archive", "--format=tar", "-o", str(archive), commit], cwd=root, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")
    archive.unlink()
    return dest


def _run_chapter(project: Path, name: str, profile: str | None, out: Path) -> tuple[Path | None, str]:
    """Execute ``name`` of ``project`` (its own lib/ first on the path) into ``out``; (chapter or None, log)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project / "lib"), os.environ.get("PYTHONPATH", "")]))
    cmd = [sys.executable, "-m", "rlinterp.cli", "--root", str(project), "run", name, "--out", str(out), "--quiet",
           "--force"]
    if profile:
        cmd += ["--profile", profile]
    res = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
    chapter = an.Analysis(name, project).chapter(out)
    return (chapter if res.returncode == 0 and chapter.exists() else None), (res.stdout + res.stderr)[-4000:]


def _existing(project: Path, name: str, profile: str | None, key: str) -> Path | None:
    """An executed chapter on disk whose recorded cache key is ``key`` (the paper's or the profile's build)."""
    for out in (None, project / "_build" / profile if profile and profile != "default" else None):
        chapter = an.Analysis(name, project).chapter(out)
        if runner.recorded_key(chapter) == key:
            return chapter
    return None


# ----------------------------------------------------------------------------------------------- notebook contents
def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def cell_outputs(cell: dict) -> tuple[str, list[str]]:
    """(text shown to a reader, PNG images as base64) of one notebook cell."""
    if cell.get("cell_type") == "markdown":
        return _text(cell.get("source")), []
    texts, images = [], []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            texts.append(_text(o.get("text")))
        elif o.get("output_type") == "error":
            texts.append(f"ERROR {o.get('ename')}: {o.get('evalue')}")
        else:
            data = o.get("data", {})
            if "image/png" in data:
                images.append(_text(data["image/png"]).replace("\n", ""))
            if "text/markdown" in data:
                texts.append(_text(data["text/markdown"]))
            elif "text/html" in data:
                texts.append(re.sub(r"<[^>]+>", " ", _text(data["text/html"])))
            elif "text/plain" in data and "image/png" not in data:
                texts.append(_text(data["text/plain"]))
    return "\n".join(texts), images


def align_cells(old_nb: dict, new_nb: dict) -> list[tuple[int | None, int | None]]:
    """Pairs (old index, new index) of the cells, with None for added/removed cells, from nbdime's notebook diff."""
    import nbdime
    import nbformat

    # nbformat joins multi-line strings (stored as lists in .ipynb files), as nbdime expects
    old_nb, new_nb = (nbformat.reads(json.dumps(nb), as_version=4) for nb in (old_nb, new_nb))
    diff = nbdime.diff_notebooks(old_nb, new_nb)
    cell_ops = next((d["diff"] for d in diff if d["key"] == "cells"), [])
    adds: dict[int, int] = {}
    removed: set[int] = set()
    for op in cell_ops:
        if op["op"] == "addrange":
            adds[op["key"]] = adds.get(op["key"], 0) + len(op["valuelist"])
        elif op["op"] == "removerange":
            removed.update(range(op["key"], op["key"] + op["length"]))
    pairs: list[tuple[int | None, int | None]] = []
    j = 0
    n_old = len(old_nb["cells"])
    for i in range(n_old + 1):
        for _ in range(adds.get(i, 0)):
            pairs.append((None, j))
            j += 1
        if i == n_old:
            break
        if i in removed:
            pairs.append((i, None))
        else:
            pairs.append((i, j))
            j += 1
    return pairs


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in SENTENCE.split(text) if s and s.strip()]


def _skeleton(sentence: str) -> str:
    return NUMBER.sub("#", sentence)


@dataclass
class TextChange:
    old: str | None
    new: str | None
    numbers: list[tuple[str, str]] = field(default_factory=list)  # (old, new) numbers when only numbers moved


def compare_text(old: str, new: str) -> list[TextChange]:
    """Sentence-level changes between two texts; sentences that kept their words but changed numbers give pairs."""
    a, b = _sentences(old), _sentences(new)
    out: list[TextChange] = []
    sm = difflib.SequenceMatcher(a=[_skeleton(s) for s in a], b=[_skeleton(s) for s in b], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            for s_old, s_new in zip(a[i1:i2], b[j1:j2]):
                if s_old != s_new:
                    nums = [(x, y) for x, y in zip(NUMBER.findall(s_old), NUMBER.findall(s_new)) if x != y]
                    out.append(TextChange(s_old, s_new, nums))
        else:
            for k in range(max(i2 - i1, j2 - j1)):
                out.append(TextChange(a[i1 + k] if i1 + k < i2 else None, b[j1 + k] if j1 + k < j2 else None))
    return out


@dataclass
class CellChange:
    old_index: int | None
    new_index: int | None
    kind: str  # "added" | "removed" | "modified"
    source_changed: bool
    text: list[TextChange]
    images: list[tuple[str | None, str | None]]  # (old png b64, new png b64) pairs that differ


def compare_notebooks(old_nb: dict, new_nb: dict) -> list[CellChange]:
    """Every cell whose source, shown text or figures changed."""
    changes = []
    for i, j in align_cells(old_nb, new_nb):
        if i is None or j is None:
            cell = new_nb["cells"][j] if i is None else old_nb["cells"][i]
            text, imgs = cell_outputs(cell)
            changes.append(CellChange(i, j, "added" if i is None else "removed", True,
                                      [TextChange(None if i is None else s, s if i is None else None)
                                       for s in _sentences(text)],
                                      [(None, p) if i is None else (p, None) for p in imgs]))
            continue
        co, cn = old_nb["cells"][i], new_nb["cells"][j]
        (to, io), (tn, inn) = cell_outputs(co), cell_outputs(cn)
        text = compare_text(to, tn)
        images = [(p, q) for p, q in zip(io + [None] * (len(inn) - len(io)), inn + [None] * (len(io) - len(inn)))
                  if p != q]
        src_changed = _text(co.get("source")) != _text(cn.get("source"))
        if text or images or src_changed:
            changes.append(CellChange(i, j, "modified", src_changed, text, images))
    return changes


# ---------------------------------------------------------------------------------------------------------- report
@dataclass
class ChapterDiff:
    name: str
    reasons: list[str]
    old: Path | None = None
    new: Path | None = None
    changes: list[CellChange] = field(default_factory=list)
    error: str | None = None

    @property
    def n_numbers(self) -> int:
        return sum(len(t.numbers) for c in self.changes for t in c.text)

    @property
    def n_figures(self) -> int:
        return sum(len(c.images) for c in self.changes)


def _md_escape(s: str, limit: int = 160) -> str:
    s = " ".join(s.split())
    return (s[:limit] + "…") if len(s) > limit else s


def summary_markdown(base: str, profile: str | None, chapters: list[ChapterDiff], unchanged: list[str]) -> str:
    lines = [f"### `rli diff` against `{base[:12]}` (profile: {profile or 'default'})", ""]
    if not chapters:
        lines.append("No chapter's inputs changed.")
    for ch in chapters:
        lines.append(f"**{ch.name}** — {'; '.join(ch.reasons)}")
        if ch.error:
            lines.append(f"- could not compare: {_md_escape(ch.error, 300)}")
            continue
        cells = {k: sum(c.kind == k for c in ch.changes) for k in ("added", "removed", "modified")}
        lines.append(f"- cells: {cells['added']} added, {cells['removed']} removed, {cells['modified']} changed; "
                     f"{ch.n_numbers} numbers moved; {ch.n_figures} figures changed")
        shown = 0
        for c in ch.changes:
            for t in c.text:
                if t.numbers and shown < 12:
                    moves = ", ".join(f"{a} → {b}" for a, b in t.numbers)
                    lines.append(f"  - {moves}: “{_md_escape(t.new or '')}”")
                    shown += 1
        if ch.n_numbers > shown:
            lines.append(f"  - … and {ch.n_numbers - shown} more (see report.html)")
        lines.append("")
    if unchanged:
        lines.append(f"Unchanged inputs (not re-run): {', '.join(unchanged)}.")
    return "\n".join(lines) + "\n"


CSS = """body{font-family:system-ui,sans-serif;max-width:80em;margin:auto;padding:1em;color:#222}
.old{background:#fdecea}.new{background:#e9f7ef}td{vertical-align:top;padding:.3em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}img{max-width:100%}code{background:#f4f4f4}.why{color:#555}"""


def report_html(base: str, profile: str | None, chapters: list[ChapterDiff], unchanged: list[str]) -> str:
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>rli diff</title><style>{CSS}</style>",
             f"<h1>Review: chapters moved by this change</h1><p>Base <code>{e(base)}</code>, profile "
             f"<code>{e(profile or 'default')}</code>. Unchanged inputs (not re-run): {e(', '.join(unchanged) or '—')}.</p>"]
    for ch in chapters:
        parts.append(f"<h2>{e(ch.name)}</h2><p class='why'>Inputs changed: {e('; '.join(ch.reasons))}</p>")
        if ch.error:
            parts.append(f"<pre>{e(ch.error)}</pre>")
            continue
        for c in ch.changes:
            where = f"cell {c.old_index} → {c.new_index}" if c.kind == "modified" else \
                f"cell {c.new_index if c.kind == 'added' else c.old_index} {c.kind}"
            parts.append(f"<h3>{e(where)}{' (source edited)' if c.source_changed and c.kind == 'modified' else ''}"
                         f"</h3><table>")
            for t in c.text:
                nums = "<br>".join(f"<b>{e(a)} → {e(b)}</b>" for a, b in t.numbers)
                parts.append(f"<tr><td class='old'>{e(t.old or '')}</td><td class='new'>{e(t.new or '')}</td>"
                             f"<td>{nums}</td></tr>")
            for p, q in c.images:
                img = lambda b: f"<img src='data:image/png;base64,{b}'>" if b else "<i>none</i>"  # noqa: E731
                parts.append(f"<tr><td class='old'>{img(p)}</td><td class='new'>{img(q)}</td><td>figure</td></tr>")
            parts.append("</table>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------------ the command
def diff(root: Path, base: str | None = None, *, profile: str | None = None, out: Path | None = None,
         run: bool = True, names: list[str] | None = None, log=print) -> list[ChapterDiff]:
    """Compare the working tree of ``root`` with git ref ``base``; write ``report.html`` + ``summary.md`` to ``out``."""
    root = Path(root).resolve()
    base = base or default_base(root)
    out = Path(out or root / "_build" / "diff").resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rli-diff-") as tmp:
        old_root = export_ref(root, base, Path(tmp) / "base")
        new_names = [a.name for a in an.discover(root)]
        old_names = [a.name for a in an.discover(old_root)] if (old_root / "_quarto.yml").exists() else []
        wanted = names or list(dict.fromkeys(new_names + old_names))
        chapters, unchanged = [], []
        for name in wanted:
            old_in = chapter_inputs(old_root, name, profile) if name in old_names else None
            new_in = chapter_inputs(root, name, profile) if name in new_names else None
            why = reasons(old_in, new_in)
            if not why:
                unchanged.append(name)
                continue
            ch = ChapterDiff(name, why)
            chapters.append(ch)
            log(f"{name}: changed ({'; '.join(why)})")
            if not run:
                continue
            for side, proj, inputs in (("old", old_root, old_in), ("new", root, new_in)):
                if inputs is None:
                    continue
                chapter = _existing(proj, name, profile, inputs["cache_key"]) if proj == root else None
                if chapter is None:
                    log(f"  running the {side} side …")
                    chapter, run_log = _run_chapter(proj, name, profile, out / side)
                    if chapter is None:
                        ch.error = f"{side} side failed:\n{run_log}"
                        break
                saved = out / side / "paper" / f"{name}.ipynb"
                if chapter.resolve() != saved.resolve():
                    saved.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(chapter, saved)
                setattr(ch, side, saved)
            if ch.error is None:
                old_nb = json.loads(ch.old.read_text()) if ch.old else {"cells": [], "metadata": {}, "nbformat": 4,
                                                                         "nbformat_minor": 5}
                new_nb = json.loads(ch.new.read_text()) if ch.new else {"cells": [], "metadata": {}, "nbformat": 4,
                                                                         "nbformat_minor": 5}
                ch.changes = compare_notebooks(old_nb, new_nb)
    (out / "summary.md").write_text(summary_markdown(base, profile, chapters, unchanged))
    (out / "report.html").write_text(report_html(base, profile, chapters, unchanged))
    log(f"report: {out / 'report.html'}\nsummary: {out / 'summary.md'}")
    return chapters
