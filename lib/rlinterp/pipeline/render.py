"""Render the book: ``quarto render`` when Quarto is on PATH, else pandoc (HTML pages) + pandoc → Typst → PDF.

The fallback honours the subset of Quarto's notebook conventions the chapters use, so both renderers show the same
book: cell options ``#| label``, ``#| fig-cap``, ``#| tbl-cap``, ``#| echo``, ``#| include``, ``#| output``; the
cell tags ``remove-cell``/``remove-input``/``remove-output``; ``@fig-…``/``@tbl-…`` cross-references (numbered
"Figure <chapter>.<n>") and ``@sec-…`` ones to headings with a ``{#sec-…}`` id ("Chapter <n>", "Section <n>.<k>", as
Quarto numbers them with ``crossref: chapters: true``); citations from ``references.bib``; stderr streams (progress bars, warnings) are dropped as
with Quarto's ``warning: false``; a display output shows the representation Quarto picks for the format (text/html in
HTML, the image in the PDF: an animation is its GIF on the page and its still in the PDF, see :func:`display_mime`).

A chapter that was not executed yet does not stop the book: while rendering, it is a short placeholder page that
names the command that builds it and what that took last time (:mod:`rlinterp.pipeline.build_times`); the
placeholder notebooks are removed again afterwards, so ``rli list`` still reports the chapter as not built.
"""
from __future__ import annotations

import base64
import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from rlinterp.pipeline import analyses as an

OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*)$")
XREF = re.compile(r"@((?:fig|tbl|sec)-[\w-]*\w)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*(?:\{([^}]*)\})?\s*$")


@dataclass
class Page:
    source: str  # path as listed in _quarto.yml, e.g. "paper/coinflip/01_game.ipynb"
    part: str | None
    number: int | None  # chapter number (None: unnumbered, e.g. the index)
    title: str = ""
    markdown: str = ""  # as the HTML pages show it
    pdf_markdown: str = ""  # as the PDF shows it (differs where an output has a representation per format)
    labels: dict[str, str] = field(default_factory=dict)  # label -> "Figure 2.1", "Section 2.3", "Chapter 2"

    @property
    def html_path(self) -> str:
        return str(Path(self.source).with_suffix(".html"))


@dataclass
class RenderResult:
    renderer: str
    outputs: list[Path]
    placeholders: list[str] = field(default_factory=list)  # chapters rendered as "not built yet" pages


def _build_command(root: Path, book_dir: Path, name: str, profile: str | None) -> str:
    cmd = f"rli run {name}"
    if profile and profile != "default":
        cmd += f" --profile {profile}"
    if book_dir != root and book_dir != root / "_build" / (profile or "default"):
        cmd += f" --out {book_dir}"
    return cmd


def placeholder_notebook(root: Path, book_dir: Path, analysis: an.Analysis, profile: str | None) -> dict:
    """The page of a chapter not built yet: its title, the command that builds it and its last measured time."""
    from rlinterp.pipeline import build_times

    m = re.search(r"^# # (.+)$", analysis.source.read_text(), flags=re.M)
    title = m.group(1).strip() if m else analysis.name
    prof = profile or "default"
    entry = build_times.lookup(analysis.name, prof, book_dir, root)
    if entry:
        cost = (f"last measured: {build_times.describe(entry['seconds'])} on {entry.get('machine', 'an unnamed machine')}"
                + (f", {entry['date']}" if entry.get("date") else "") + f"; {prof} profile")
    else:
        cost = f"no build on record for the {prof} profile"
    text = (f"# {title}\n\n"
            f"**Not built yet.** `{_build_command(root, book_dir, analysis.name, profile)}` builds this chapter "
            f"({cost}); then `rli render` shows it here. "
            f"`{_build_command(root, book_dir, analysis.name, profile).replace(f'rli run {analysis.name}', 'rli build')}`"
            f" builds every chapter that is missing or out of date.\n")
    return {"cells": [{"cell_type": "markdown", "id": "placeholder", "metadata": {}, "source": text}],
            "metadata": {"kernelspec": dict(an.KERNELSPEC), "language_info": {"name": "python"},
                         "rlinterp": {"analysis": analysis.name, "placeholder": True}},
            "nbformat": 4, "nbformat_minor": 5}


def _write_placeholders(root: Path, book_dir: Path, profile: str | None) -> dict[Path, bytes]:
    """Write a placeholder notebook for every listed chapter whose analysis exists but was not executed yet."""
    written = {}
    for a in an.discover(root):
        chapter = a.chapter(book_dir)
        if not chapter.exists():
            payload = (json.dumps(placeholder_notebook(root, book_dir, a, profile), indent=1) + "\n").encode()
            chapter.parent.mkdir(parents=True, exist_ok=True)
            chapter.write_bytes(payload)
            written[chapter] = payload
    return written


def render(root: Path, book_dir: Path | None = None, renderer: str = "auto", profile: str | None = None) \
        -> RenderResult:
    """Render the book whose chapters live under ``book_dir`` (default: the project root) into ``book_dir/_book``.

    Chapters not built yet become placeholder pages (see :func:`placeholder_notebook`); ``profile`` is the profile
    the chapters under ``book_dir`` are built with (it goes into the command the placeholder page quotes).
    """
    book_dir = Path(book_dir or root)
    if renderer not in {"auto", "quarto", "pandoc"}:
        raise ValueError(f"renderer must be auto, quarto or pandoc, not {renderer!r}")
    if book_dir != root:
        _stage_book(root, book_dir)
    from rlinterp.pipeline import reproduce

    if reproduce.APPENDIX in [c for _, c in an.chapter_entries(an.quarto_config(book_dir))]:
        reproduce.write_appendix(root, book_dir)  # generated from the build's records, never typed
    written = _write_placeholders(root, book_dir, profile)
    try:
        res = _render(book_dir, renderer)
    finally:
        for path, payload in written.items():  # only our own placeholder: a chapter built meanwhile stays
            if path.exists() and path.read_bytes() == payload:
                path.unlink()
    res.placeholders = sorted(str(p.relative_to(book_dir)) for p in written)
    return res


def _render(book_dir: Path, renderer: str) -> RenderResult:
    if renderer == "quarto" or (renderer == "auto" and shutil.which("quarto")):
        if not shutil.which("quarto"):
            raise FileNotFoundError("quarto is not on PATH; install it (conda env from environment.yml) or use "
                                    "--renderer pandoc")
        subprocess.run(["quarto", "render", "--to", "all"], cwd=book_dir, check=True)
        out = book_dir / _output_dir(book_dir)
        return RenderResult("quarto", sorted(out.glob("*.html")) + sorted(out.glob("*.pdf")))
    return render_fallback(book_dir)


def _stage_book(root: Path, book_dir: Path) -> None:
    """Copy the book skeleton (_quarto.yml, the prose pages it lists — the home page ``index.qmd`` lives at the root —
    and the prose/bibliography under paper/) next to executed chapters."""
    (book_dir / "paper").mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_quarto.yml", book_dir / "_quarto.yml")
    for _, entry in an.chapter_entries(an.quarto_config(root)):
        if not entry.endswith(".ipynb") and (root / entry).is_file():
            (book_dir / entry).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / entry, book_dir / entry)
    for path in (root / "paper").rglob("*"):
        if path.is_file() and path.suffix in {".qmd", ".bib", ".css", ".csl", ".png", ".svg", ".typ"}:
            target = book_dir / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def _output_dir(book_dir: Path) -> str:
    return an.quarto_config(book_dir).get("project", {}).get("output-dir", "_book")


# --------------------------------------------------------------------------------------------- notebook → markdown
def _cell_options(source: str) -> tuple[dict, str]:
    opts, lines = {}, source.splitlines()
    i = 0
    while i < len(lines) and (m := OPTION.match(lines[i])):
        value = yaml.safe_load(m.group(2)) if m.group(2).strip() else None
        opts[m.group(1)] = value
        i += 1
    return opts, "\n".join(lines[i:]).strip("\n")


def _text(x) -> str:
    return "".join(x) if isinstance(x, list) else str(x)


def _fence(text: str, lang: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


# Which representation of a display output each format shows, as Quarto chooses it (quarto-cli
# src/core/jupyter/display-data.ts): HTML prefers text/html, Typst cannot show HTML and takes the first image.
MIME_PRIORITY = {
    "html": ("text/html", "text/markdown", "image/svg+xml", "image/png", "image/jpeg", "text/plain"),
    "typst": ("text/markdown", "image/svg+xml", "image/png", "image/jpeg", "text/plain"),
}
IMAGE_EXT = {"image/svg+xml": "svg", "image/png": "png", "image/jpeg": "jpg"}


def display_mime(data: dict, to: str) -> str | None:
    """The mime type of a display output's ``data`` that format ``to`` ("html" or "typst") shows, or None."""
    return next((m for m in MIME_PRIORITY[to] if m in data), None)


def notebook_markdown(nb: dict, page: Page, media: Path, media_rel: str, to: str = "html") -> str:
    """Markdown for one executed notebook as format ``to`` ("html" or "typst") shows it; images are written to
    ``media`` and linked as ``media_rel/…``. A display output shows the representation :func:`display_mime` picks, so
    an animation (GIF in text/html, still in image/png, see :func:`rlinterp.pipeline.report.animation`) is the GIF in
    HTML and the still in the PDF, a captioned figure in both."""
    if to not in MIME_PRIORITY:
        raise ValueError(f"to must be one of {sorted(MIME_PRIORITY)}, not {to!r}")
    parts: list[str] = []
    for i_cell, cell in enumerate(nb["cells"]):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & {"remove-cell", "injected-parameters"}:
            continue
        source = _text(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            parts.append(source)
            continue
        if cell["cell_type"] != "code":
            continue
        opts, code = _cell_options(source)
        if opts.get("include") is False:
            continue
        if opts.get("echo", True) is not False and "remove-input" not in tags and code.strip():
            parts.append(_fence(code, "python"))
        if opts.get("output", True) is False or "remove-output" in tags:
            continue
        label = opts.get("label") or ""
        fig_cap = f"{page.labels.get(label, 'Figure')}: {opts.get('fig-cap', '')}".rstrip(": ")
        outs: list[str] = []
        figure_done = False
        for i_out, out in enumerate(cell.get("outputs", [])):
            kind = out.get("output_type")
            if kind == "stream":
                if out.get("name") == "stderr":
                    continue
                text = _text(out.get("text", ""))
                if text.strip():
                    outs.append(_fence(text))
            elif kind == "error":
                outs.append(_fence(f"{out.get('ename')}: {out.get('evalue')}"))
            elif kind in {"display_data", "execute_result"}:
                data = out.get("data", {})
                mime = display_mime(data, to)
                if mime == "text/markdown":
                    outs.append(_text(data["text/markdown"]))
                elif mime == "text/html":
                    raw = f"```{{=html}}\n{_text(data['text/html']).strip()}\n```\n"
                    if label.startswith("fig-") and not figure_done:
                        outs.append(f"::: {{#{label} .figure}}\n{raw}\n[{fig_cap}]{{.figcaption}}\n:::\n")
                        figure_done = True
                    else:
                        outs.append(raw)
                elif mime in IMAGE_EXT:
                    ext = IMAGE_EXT[mime]  # named by position: the same file whichever format asks for it
                    name = f"{Path(page.source).stem}-{i_cell}-{i_out}.{ext}"
                    media.mkdir(parents=True, exist_ok=True)
                    payload = _text(data[mime])
                    (media / name).write_bytes(payload.encode() if ext == "svg" else base64.b64decode(payload))
                    if label.startswith("fig-") and not figure_done:
                        outs.append(f"![{fig_cap}]({media_rel}/{name}){{#{label} width=100%}}\n")
                        figure_done = True
                    else:
                        outs.append(f"![]({media_rel}/{name}){{width=100%}}\n")
                elif mime == "text/plain":
                    outs.append(_fence(_text(data["text/plain"])))
        if label.startswith("fig-") and not figure_done:
            raise ValueError(f"{page.source}: the cell labelled {label} produced no image (does it call plt.show()? "
                             f"was the chapter executed by `rli run`?); re-run the analysis")
        if label.startswith("tbl-"):
            cap = f"{page.labels.get(label, 'Table')}: {opts.get('tbl-cap', '')}".rstrip(": ")
            outs = [f"::: {{#{label}}}\n", f"**{cap}**\n", *outs, ":::\n"]
        parts.extend(outs)
    return "\n\n".join(p.strip("\n") + "\n" for p in parts if p.strip())


def _qmd_markdown(text: str) -> tuple[dict, str]:
    meta = {}
    if text.startswith("---"):
        end = text.find("\n---", 3)
        if end != -1:
            meta = yaml.safe_load(text[3:end]) or {}
            text = text[end + 4:]
    if meta.get("title"):
        text = f"# {meta['title']}\n\n{text.lstrip()}"
    return meta, text


def _collect_labels(nb: dict, number: int | None) -> dict[str, str]:
    labels, n_fig, n_tbl = {}, 0, 0
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        label = _cell_options(_text(cell.get("source", "")))[0].get("label") or ""
        prefix = f"{number}." if number else ""
        if label.startswith("fig-"):
            n_fig += 1
            labels[label] = f"Figure {prefix}{n_fig}"
        elif label.startswith("tbl-"):
            n_tbl += 1
            labels[label] = f"Table {prefix}{n_tbl}"
    return labels


def _section_labels(markdown: str, number: int | None) -> dict[str, str]:
    """``sec-…`` ids of the headings of one page -> their cross-reference text, numbered as ``--number-sections`` with
    the chapter's offset numbers them: the chapter heading is "Chapter 3", a section "Section 3.2"; headings of an
    unnumbered page (or marked ``.unnumbered``) are referred to by their title. Headings in code blocks are skipped."""
    labels: dict[str, str] = {}
    counts = [0] * 6
    fence = None
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            ticks = stripped[:len(stripped) - len(stripped.lstrip(stripped[0]))]
            if fence is None:
                fence = ticks
            elif ticks.startswith(fence) and not stripped[len(ticks):].strip():
                fence = None
            continue
        if fence is not None or not (m := HEADING.match(line)):
            continue
        level, text, attrs = len(m.group(1)), m.group(2), (m.group(3) or "").split()
        unnumbered = number is None or ".unnumbered" in attrs or "-" in attrs
        if not unnumbered:
            counts[level - 1] += 1
            counts[level:] = [0] * (6 - level)
        ids = [a[1:] for a in attrs if a.startswith("#sec-")]
        if not ids:
            continue
        if unnumbered:
            labels[ids[0]] = text
        elif level == 1:
            labels[ids[0]] = f"Chapter {number}"
        else:
            labels[ids[0]] = "Section " + ".".join(str(c) for c in [number, *counts[1:level]])
    return labels


def _title(markdown: str, fallback: str) -> str:
    m = re.search(r"^#\s+(.+?)\s*(\{.*\})?\s*$", markdown, flags=re.M)
    return m.group(1) if m else fallback


# --------------------------------------------------------------------------------------------- fallback renderer
def load_pages(book_dir: Path, media_root: Path) -> tuple[dict, list[Page]]:
    config = an.quarto_config(book_dir)
    pages: list[Page] = []
    number = 0
    notebooks: dict[str, dict] = {}
    for part, source in an.chapter_entries(config):
        path = book_dir / source
        if not path.exists():
            hint = f" (run `rli run {source[6:-6]}`)" if source.endswith(".ipynb") else ""
            raise FileNotFoundError(f"chapter {source} listed in _quarto.yml does not exist{hint}")
        unnumbered = Path(source).stem in {"index", "references"}
        number += 0 if unnumbered else 1
        page = Page(source, part, None if unnumbered else number)
        if source.endswith(".ipynb"):
            notebooks[source] = json.loads(path.read_text())
            page.labels = _collect_labels(notebooks[source], page.number)
        pages.append(page)
    for page in pages:  # second pass: markdown needs every label for cross-references
        if page.source.endswith(".ipynb"):
            rel = Path(page.source).parent
            media = media_root / rel / "figures"
            page.markdown = notebook_markdown(notebooks[page.source], page, media, "figures", to="html")
            page.pdf_markdown = notebook_markdown(notebooks[page.source], page, media, "figures", to="typst")
        else:
            meta, page.markdown = _qmd_markdown((book_dir / page.source).read_text())
            page.pdf_markdown = page.markdown
        page.title = _title(page.markdown, Path(page.source).stem)
        page.labels.update(_section_labels(page.markdown, page.number))
    return config, pages


def _resolve_xrefs(markdown: str, pages: list[Page], here: Page | None) -> str:
    """Replace ``@fig-x``/``@tbl-x``/``@sec-x`` by numbered links (same page: ``#fig-x``; other pages: ``file.html#fig-x``)."""
    where = {label: (p, text) for p in pages for label, text in p.labels.items()}

    def sub(m: re.Match) -> str:
        label = m.group(1)
        if label not in where:
            return f"**??{label}??**"
        page, text = where[label]
        if here is None or page is here:
            return f"[{text}](#{label})"
        rel = Path(page.html_path).relative_to(Path(here.html_path).parent) if \
            Path(page.html_path).parent == Path(here.html_path).parent else \
            Path("../" * len(Path(here.html_path).parent.parts)) / page.html_path
        return f"[{text}]({rel}#{label})"

    return XREF.sub(sub, markdown)


CSS = """
body { max-width: 62em; margin: 0 auto; padding: 1em 1em 1em 17em; font-family: system-ui, sans-serif;
       line-height: 1.5; color: #222; }
nav#book { position: fixed; left: 0; top: 0; bottom: 0; width: 15em; overflow-y: auto; padding: 1em;
           background: #f6f7f9; border-right: 1px solid #ddd; font-size: 0.9em; }
nav#book .part { font-weight: 600; margin-top: 0.8em; color: #555; }
nav#book a.current { font-weight: 700; }
nav#book ul { list-style: none; padding-left: 0.6em; margin: 0.2em 0; }
img { max-width: 100%; } figure, div.figure { margin: 1.2em 0; }
figcaption, .figcaption { font-size: 0.9em; color: #444; display: block; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
table { border-collapse: collapse; margin: 0.8em 0; } th, td { border-bottom: 1px solid #ccc; padding: 0.2em 0.6em; }
.pager { display: flex; justify-content: space-between; margin-top: 3em; border-top: 1px solid #ddd; }
"""


def _nav(pages: list[Page], here: Page, title: str, tools: list[dict] | None = None) -> str:
    """The sidebar: the book's title, its ``book.sidebar.tools`` links (e.g. the PDF) and the chapters by part."""
    up = "../" * len(Path(here.html_path).parent.parts)
    lines = [f'<nav id="book"><div><a href="{up}index.html"><b>{html.escape(title)}</b></a></div>']
    for tool in tools or []:
        href = tool.get("href", "")
        href = href if re.match(r"^[a-z]+:", href) else up + href
        lines.append(f'<div class="tool"><a href="{html.escape(href)}">{html.escape(str(tool.get("text", href)))}'
                     f'</a></div>')
    lines.append("<ul>")
    part = None
    for p in pages:
        if p.part != part:
            part = p.part
            lines.append("</ul>" + (f'<div class="part">{html.escape(part)}</div>' if part else "") + "<ul>")
        label = f"{p.number}&nbsp; {html.escape(p.title)}" if p.number else html.escape(p.title)
        cls = ' class="current"' if p is here else ""
        lines.append(f'<li><a{cls} href="{up}{_html_target(p)}">{label}</a></li>')
    lines.append("</ul></nav>")
    return "\n".join(lines)


def _html_target(page: Page) -> str:
    return "index.html" if Path(page.source).stem == "index" else page.html_path


def render_fallback(book_dir: Path) -> RenderResult:
    import pypandoc

    config = an.quarto_config(book_dir)
    out = book_dir / _output_dir(book_dir)
    out.mkdir(parents=True, exist_ok=True)
    _, pages = load_pages(book_dir, out)
    book = config.get("book", {})
    title = book.get("title", "Book")
    bib = [str(book_dir / b) for b in _as_list(config.get("bibliography")) if (book_dir / b).exists()]
    cite = (["--citeproc"] + [f"--bibliography={b}" for b in bib]) if bib else []
    css = out / "book.css"
    css.write_text(CSS + (book_css.read_text() if (book_css := book_dir / BOOK_CSS).exists() else ""))
    outputs = []
    for i, page in enumerate(pages):
        target = out / _html_target(page)
        target.parent.mkdir(parents=True, exist_ok=True)
        md = _resolve_xrefs(page.markdown, pages, page)
        pager = ['<div class="pager">']
        if i > 0:
            pager.append(f'<a href="{_rel(page, pages[i - 1])}">← {html.escape(pages[i - 1].title)}</a>')
        if i + 1 < len(pages):
            pager.append(f'<a href="{_rel(page, pages[i + 1])}">{html.escape(pages[i + 1].title)} →</a>')
        pager.append("</div>")
        nav = out / ".nav.html"
        nav.write_text(_nav(pages, page, title, book.get("sidebar", {}).get("tools")))
        after = out / ".pager.html"
        after.write_text("\n".join(pager))
        extra = ["-M", "nocite=@*"] if Path(page.source).stem == "references" else []
        if page.number:  # headings numbered like the book's chapters: 2, 2.1, ... (figures are "Figure 2.1")
            extra += ["--number-sections", f"--number-offset={page.number - 1}"]
        media_dir = out / Path(page.source).parent
        pypandoc.convert_text(
            md, "html5", format="markdown", outputfile=str(target),
            extra_args=["--standalone", "--toc", "--toc-depth=2", "--mathml", "--embed-resources",
                        f"--css={css}", f"--resource-path={media_dir}:{out}",
                        f"--include-before-body={nav}", f"--include-after-body={after}",
                        "-M", f"pagetitle={page.title}", "-M", f"title-prefix={title}", *cite, *extra])
        outputs.append(target)
    for tmp in (out / ".nav.html", out / ".pager.html"):
        tmp.unlink(missing_ok=True)
    outputs.append(_render_pdf(book_dir, config, pages, out, cite))
    return RenderResult("pandoc+typst (fallback: quarto not on PATH)", outputs)


def _rel(here: Page, there: Page) -> str:
    up = "../" * len(Path(here.html_path).parent.parts)
    return up + _html_target(there)


def _as_list(x) -> list:
    return [] if x is None else (x if isinstance(x, list) else [x])


def _render_pdf(book_dir: Path, config: dict, pages: list[Page], out: Path, cite: list[str]) -> Path:
    """One Typst document of all pages (parts as headings), compiled to PDF with the typst wheel."""
    import pypandoc
    import typst

    book = config.get("book", {})
    chunks, part = [], None
    for page in pages:
        md = page.pdf_markdown
        # images are relative to each chapter's folder; make them relative to the output root for one document
        md = md.replace("](figures/", f"]({Path(page.source).parent}/figures/")
        if Path(page.source).stem == "references":
            md = "# References {.unnumbered}\n\n::: {#refs}\n:::\n"
        if page.part != part and page.part:
            chunks.append(f"```{{=typst}}\n#pagebreak()\n#align(center + horizon, text(size: 22pt, "
                          f"weight: \"bold\")[{_typst_escape(page.part)}])\n#pagebreak()\n```\n")
        part = page.part
        if page.number is None and Path(page.source).stem == "index" and "{.unnumbered}" not in md.split("\n", 1)[0]:
            md = re.sub(r"^(#\s+.+?)\s*$", r"\1 {.unnumbered}", md, count=1, flags=re.M)
        chunks.append(md)
    full = _resolve_xrefs("\n\n".join(chunks), pages, None)
    meta = ["-M", f"title={book.get('title', 'Book')}"]
    if book.get("author"):
        for a in _as_list(book["author"]):
            meta += ["-M", f"author={a if isinstance(a, str) else a.get('name', '')}"]
    if book.get("date"):
        meta += ["-M", f"date={_date(book['date'])}"]
    header = out / ".typst-header.typ"
    header.write_text(typst_header(book_dir))
    typ = out / "rlinterp.typ"
    pypandoc.convert_text(full, "typst", format="markdown", outputfile=str(typ),
                          extra_args=["--standalone", "--toc", "-V", "section-numbering=1.1", f"--resource-path={out}",
                                      f"--include-in-header={header}", *meta, *cite])
    header.unlink()
    pdf = out / pdf_name(config)
    typst.compile(str(typ), output=str(pdf), root=str(out))
    return pdf


#: the book's HTML rules (Quarto: ``format.html.css``), appended to the fallback's own style sheet :data:`CSS`
BOOK_CSS = "paper/book.css"
#: the book's Typst rules (tables that break across pages, table fonts by width): Quarto includes this file through
#: ``format.typst.include-in-header``, and so does the fallback
BOOK_TYP = "paper/book.typ"
# Figures and tables carry our own "Figure 2.1"-style numbers (the ones cross-references use).
TYPST_HEADER = "#set figure(numbering: none)\n"


def typst_header(book_dir: Path) -> str:
    """The Typst header of the fallback's PDF: our numbering rule plus the book's rules (:data:`BOOK_TYP`)."""
    rules = book_dir / BOOK_TYP
    return TYPST_HEADER + (rules.read_text() if rules.exists() else "")


def _date(value) -> str:
    """Quarto's date keywords (today, now, last-modified) resolved as Quarto does; anything else as written."""
    import datetime as dt

    if str(value) in {"today", "now", "last-modified"}:
        return dt.date.today().isoformat()
    return str(value)


def _typst_escape(s: str) -> str:
    return re.sub(r"([\[\]#*_`$\\<>@])", r"\\\1", s)


def pdf_name(config: dict) -> str:
    """The PDF's file name as Quarto names it: ``book.output-file`` (+ ``.pdf``), else the slug of the title."""
    book = config.get("book", {})
    stem = book.get("output-file") or _slug(book.get("title", "book"))
    return stem if stem.endswith(".pdf") else f"{stem}.pdf"


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "book"
