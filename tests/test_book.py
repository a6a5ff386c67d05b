"""The real book: conventions every analysis must follow, and an end-to-end smoke build (HTML + PDF, fallback renderer)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from rlinterp import ROOT
from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import reproduce

ANALYSES = an.discover(ROOT)


def test_quarto_config_follows_the_book_schema():
    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert cfg["project"]["type"] == "book"
    assert cfg["execute"]["enabled"] is False  # papermill already executed the notebooks
    assert {"html", "typst"} <= set(cfg["format"])
    assert (ROOT / cfg["bibliography"]).exists()
    entries = [c for _, c in an.chapter_entries(cfg)]
    assert entries[0] == "index.qmd" and "paper/references.qmd" in entries
    for entry in entries:
        assert entry.endswith((".qmd", ".ipynb"))
        if entry.endswith(".qmd"):
            assert (ROOT / entry).exists() or entry == reproduce.APPENDIX, entry
    # every analysis file is in the book, and every chapter notebook has an analysis
    on_disk = {str(p.relative_to(ROOT / "analyses"))[:-3] for p in (ROOT / "analyses").rglob("*.py")}
    assert on_disk == {a.name for a in ANALYSES}


def test_labels_unique_across_the_book():
    """Quarto cross-references are book-wide: a label used in two chapters is ambiguous (and breaks the PDF)."""
    seen: dict[str, str] = {}
    for a in ANALYSES:
        for label in re.findall(r"^#\| label: ((?:fig|tbl)-[\w-]+)", a.source.read_text(), flags=re.M):
            assert label not in seen, f"{label} is used in {seen[label]} and {a.name}"
            seen[label] = a.name


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_analysis_conventions(analysis):
    text = analysis.source.read_text()
    assert re.match(r"# %% \[markdown\]\n# # \S", text), "first cell must be markdown starting with a # title"
    spec = an.parameters(analysis)  # exactly one parameters cell; every parameter typed and with help
    assert "seed" in spec, "every analysis takes a seed"
    smoke = an.profile(ROOT, analysis, "smoke")
    assert smoke, f"analyses/{analysis.study}/profiles.toml needs a [smoke.{analysis.name.split('/')[1]}] table"
    an.validate(analysis, spec, smoke)  # the smoke overrides name real parameters with valid values
    labels = re.findall(r"^#\| label: ((?:fig|tbl)-[\w-]+)", text, flags=re.M)
    assert len(labels) == len(set(labels)), "duplicate figure/table labels"
    for ref in set(re.findall(r"@((?:fig|tbl)-[\w-]+)", text)):
        assert ref in labels, f"@{ref} refers to no label in this chapter"


# ---------------------------------------------------------------------- citations and cross-references (never typed)
PAPER_PAGES = sorted((ROOT / "paper").glob("*.qmd")) + [ROOT / "index.qmd"]
CITATION = re.compile(r"(?<![\w@.])@([A-Za-z][\w:.#$%&+?<>~/-]*[\w])")
PLAIN_CITATION = re.compile(r"\bet al\.?,?\s*\(?(?:19|20)\d\d|\b[A-Z][a-z]+,? (?:and|&) [A-Z][a-z]+,? \(?(?:19|20)\d\d"
                            r"|\b[A-Z][a-z]+,? \(?(?:19|20)\d\d\b")
TYPED_NUMBER_HEADING = re.compile(r"^#{1,6}\s+\d+(?:\.\d+)*[.)]?\s", flags=re.M)


def _markdown_cells(source: str) -> list[str]:
    """The markdown cells of a jupytext percent file, without the ``# `` comment prefix."""
    cells = re.split(r"^# %%.*$", source, flags=re.M)
    heads = re.findall(r"^# %%.*$", source, flags=re.M)
    return ["\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.strip("\n").splitlines())
            for head, body in zip(heads, cells[1:]) if "[markdown]" in head]


def _code_strings(source: str) -> list[str]:
    """String literals of the code (the sentences ``md(...)`` prints), f-strings included."""
    import io
    import tokenize

    return [t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.STRING]


def _book_prose() -> dict[str, str]:
    """Everything the book prints as prose: markdown cells and md() strings of the analyses, and the .qmd pages."""
    prose = {str(p.relative_to(ROOT)): p.read_text() for p in PAPER_PAGES}
    for a in ANALYSES:
        text = a.source.read_text()
        prose[a.name] = "\n\n".join(_markdown_cells(text) + _code_strings(text))
    return prose


def _bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "paper/references.bib").read_text(), flags=re.M))


def test_citations_resolve_to_references_bib():
    keys = _bib_keys()
    assert {"strens2000bayesian", "osband2013more", "dhamdhere2018important", "miller2024transformer",
            "scheurer2023practical"} <= keys
    for where, text in _book_prose().items():
        for key in CITATION.findall(text):
            if key.split("-")[0] in {"fig", "tbl", "sec", "eq"}:
                continue
            assert key in keys, f"{where}: @{key} is not an entry of paper/references.bib"


def test_no_plain_text_citations():
    """Works are cited with [@key] (Quarto/Pandoc citeproc), never typed as "Author et al. 2020"."""
    for where, text in _book_prose().items():
        if where.endswith(".qmd") or where in {a.name for a in ANALYSES}:
            prose = re.sub(r"\s+", " ", text)
            hits = PLAIN_CITATION.findall(prose)
            assert not hits, f"{where}: typed citation(s) {hits}; cite with [@key] from paper/references.bib"


def test_bibliography_fields_print_well():
    """A URL belongs in ``url`` (in note/howpublished citeproc capitalises it: "Https://…"); a Distill article needs
    its volume and number, or Chicago style prints "Distill, ahead of print"."""
    bib = (ROOT / "paper/references.bib").read_text()
    assert not re.search(r"(?:note|howpublished)\s*=\s*\{[^}]*(?:https?://|\\url|www\.|\.io\b)", bib, flags=re.I)
    for entry in re.findall(r"^@\w+\{[^@]*", bib, flags=re.M):
        if re.search(r"journal\s*=\s*\{Distill\}", entry):
            assert re.search(r"volume\s*=", entry) and not re.search(r"\b(?:note|pubstate)\s*=", entry), entry


def test_section_references_resolve_and_headings_are_not_numbered_by_hand():
    prose = _book_prose()
    ids = {i for text in prose.values() for i in re.findall(r"^#{1,6}\s.*\{[^}]*#(sec-[\w-]+)", text, flags=re.M)}
    for where, text in prose.items():
        for ref in re.findall(r"(?<![\w@])@(sec-[\w-]*\w)", text):
            assert ref in ids, f"{where}: @{ref} refers to no heading with {{#{ref}}}"
        headings = TYPED_NUMBER_HEADING.findall(text)
        assert not headings, f"{where}: heading(s) numbered by hand {headings}; Quarto numbers sections"
        typed = re.findall(r"\b(?:[Cc]hapters?|[Ss]ections?) \d", re.sub(r"\s+", " ", text))
        assert not typed, f"{where}: typed chapter/section numbers {typed}; use @sec- cross-references"


# ----------------------------------------------------------------------------- figures, tables and outputs of chapters
FIGURE_CALL = re.compile(r"\bplt\.show\(\)|\banimation\(|\.savefig\(")
TABLE_CALL = re.compile(r"\b(?:md_table|config_table)\(")
# what a progress bar, a logger or a warning leaves in a stream output
NOISE = re.compile(r"TqdmWarning|IProgress not found|\d+it/s\]|s/it\]|\|[█▏▎▍▌▋▊▉ ]{5,}\||\r|Warning:|WARNING|"
                   r"Traceback \(most recent call last\)")


def _code_cells(source: str) -> list[str]:
    cells = re.split(r"^# %%.*$", source, flags=re.M)
    heads = re.findall(r"^# %%.*$", source, flags=re.M)
    return [body for head, body in zip(heads, cells[1:]) if "[markdown]" not in head]


@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_figure_and_table_cells_have_labels_and_captions(analysis):
    """A cell that draws a figure (plt.show(), an animation) is a numbered figure — ``#| label: fig-…`` and
    ``#| fig-cap`` — and a cell that shows a computed table has ``#| label: tbl-…`` and ``#| tbl-cap``; one figure
    per cell, so the label names one image."""
    for cell in _code_cells(analysis.source.read_text()):
        opts = dict(re.findall(r"^#\|\s*([\w-]+)\s*:\s*(.*)$", cell, flags=re.M))
        label = opts.get("label", "")
        if FIGURE_CALL.search(cell):
            assert label.startswith("fig-") and opts.get("fig-cap", "").strip(), \
                f"{analysis.name}: a figure cell needs #| label: fig-… and #| fig-cap:\n{cell[:300]}"
            assert len(FIGURE_CALL.findall(cell)) == 1, f"{analysis.name}: {label} draws more than one figure"
        if TABLE_CALL.search(cell):
            assert label.startswith("tbl-") and opts.get("tbl-cap", "").strip(), \
                f"{analysis.name}: a table cell needs #| label: tbl-… and #| tbl-cap:\n{cell[:300]}"


def test_progress_bars_are_one_helper_switched_off_in_chapter_runs(monkeypatch):
    """Every bar of the package comes from rlinterp.progress (never tqdm.auto, whose import prints "TqdmWarning:
    IProgress not found" in a kernel without ipywidgets); `rli run` switches the bars off in the chapter's kernel."""
    import io

    from rlinterp import progress
    from rlinterp.pipeline import run

    lib = ROOT / "lib" / "rlinterp"
    for path in lib.rglob("*.py"):
        if path.name != "progress.py":
            assert not re.search(r"^\s*(?:from tqdm\S* import|import tqdm)", path.read_text(), flags=re.M), \
                f"{path.relative_to(ROOT)} imports tqdm directly; use `from rlinterp.progress import tqdm`"
    buf = io.StringIO()
    monkeypatch.delenv(progress.ENV, raising=False)
    list(progress.tqdm(range(3), file=buf, desc="x"))
    assert "3/3" in buf.getvalue()
    monkeypatch.setenv(progress.ENV, "off")
    buf = io.StringIO()
    list(progress.tqdm(range(3), file=buf, desc="x"))
    assert buf.getvalue() == "" and not progress.enabled()
    src = (lib / "pipeline" / "run.py").read_text()
    assert 'PROGRESS_ENV: "off"' in src and "IProgress not found" in run.KERNEL_WARNINGS


def executed_output_problems(nb: dict) -> list[str]:
    """What is wrong with the outputs of an executed chapter: stderr streams and progress/log/warning noise in any
    stream; image outputs without a ``fig-`` label and caption; pipe tables without a ``tbl-`` label and caption;
    outputs that print an object's repr where a figure was meant (``<IPython.core.display.HTML object>``)."""
    from rlinterp.pipeline.render import _cell_options, _text

    problems = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or "injected-parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        opts, _ = _cell_options(_text(cell.get("source", "")))
        label = opts.get("label") or ""
        for out in cell.get("outputs", []):
            kind, data = out.get("output_type"), out.get("data", {})
            if kind == "stream":
                text = _text(out.get("text", ""))
                if out.get("name") == "stderr":
                    problems.append(f"cell {i}: stderr output {text[:120]!r}")
                elif NOISE.search(text):
                    problems.append(f"cell {i}: progress/log noise on stdout {text[:120]!r}")
            elif kind == "error":
                problems.append(f"cell {i}: error {out.get('ename')}")
            elif kind in {"display_data", "execute_result"}:
                if any(m.startswith("image/") for m in data) and not (label.startswith("fig-")
                                                                     and opts.get("fig-cap")):
                    problems.append(f"cell {i}: an image output without #| label: fig-… and #| fig-cap")
                if re.search(r"^\|.*\|\s*\n\|[-:| ]+\|", _text(data.get("text/markdown", "")), flags=re.M) and not \
                        (label.startswith("tbl-") and opts.get("tbl-cap")):
                    problems.append(f"cell {i}: a table output without #| label: tbl-… and #| tbl-cap")
                plain = _text(data.get("text/plain", ""))
                if set(data) <= {"text/plain"} and re.match(r"<\S+ object( at 0x[0-9a-f]+)?>", plain):
                    problems.append(f"cell {i}: prints {_text(data['text/plain'])!r} (display a figure or table)")
    return problems


def test_executed_output_problems_finds_noise_and_missing_labels():
    def cell(src, *outs):
        return {"cell_type": "code", "source": src, "metadata": {}, "outputs": list(outs)}

    png = {"output_type": "display_data", "data": {"image/png": "", "text/plain": "<Figure>"}, "metadata": {}}
    table = {"output_type": "display_data", "metadata": {},
             "data": {"text/markdown": "| a | b |\n|:--|--:|\n| x | 1 |"}}
    good = {"cells": [cell("#| label: fig-a\n#| fig-cap: A.\nplt.show()", png),
                      cell("#| label: tbl-a\n#| tbl-cap: A.\nmd_table(x)", table),
                      cell("print(1)", {"output_type": "stream", "name": "stdout", "text": "1\n"})]}
    assert executed_output_problems(good) == []
    bad = {"cells": [cell("plt.show()", png), cell("#| label: fig-b\nplt.show()", png), cell("md_table(x)", table),
                     cell("import tqdm", {"output_type": "stream", "name": "stderr", "text": "TqdmWarning: IProgress"}),
                     cell("x", {"output_type": "stream", "name": "stdout",
                                "text": "\rtrain: 100%|██████████| 3/3 [00:00<00:00, 9.1it/s]"}),
                     cell("display(HTML(x))", {"output_type": "display_data", "metadata": {},
                                               "data": {"text/plain": "<IPython.core.display.HTML object>"}})]}
    found = executed_output_problems(bad)
    assert len(found) == 6, found
    assert [p.split(":")[0] for p in found] == [f"cell {i}" for i in range(6)]


def _fake_page(source="paper/hw/01_a.ipynb", number=5, labels=None):
    from rlinterp.pipeline.render import Page

    return Page(source, "Highway", number, labels=labels or {})


def test_animation_renders_as_the_gif_in_html_and_the_still_in_the_pdf(tmp_path):
    """One display bundle (report.animation): Quarto shows text/html in HTML and image/png in Typst; the fallback
    does the same, each as a numbered, captioned figure — never the object's repr."""
    import base64
    import io

    import pypandoc
    from IPython.core.formatters import DisplayFormatter
    from PIL import Image

    from rlinterp.pipeline import render
    from rlinterp.pipeline.report import animation

    frames = [Image.new("RGB", (16, 8), c) for c in ("red", "blue")]
    gif, png = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    frames[1].save(png, format="PNG")
    data, _ = DisplayFormatter().format(animation(gif.getvalue(), png.getvalue(), alt="an episode"))
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": "#| echo: false\n#| label: fig-anim\n"
                     "#| fig-cap: The episode, step by step.\ndisplay(animation(...))",
                     "outputs": [{"output_type": "display_data", "metadata": {}, "data": data}]}]}
    page = _fake_page(labels={"fig-anim": "Figure 5.3"})
    media = tmp_path / "figures"
    html_md = render.notebook_markdown(nb, page, media, "figures", to="html")
    assert "data:image/gif;base64," in html_md and "Figure 5.3: The episode, step by step." in html_md
    html = pypandoc.convert_text(html_md, "html5", format="markdown")
    assert re.search(r'id="fig-anim"[^>]*>\s*<img src="data:image/gif;base64,', html), html[:500]
    assert "IPython" not in html and not list(tmp_path.glob("figures/*"))
    pdf_md = render.notebook_markdown(nb, page, media, "figures", to="typst")
    assert "gif" not in pdf_md
    [still] = media.glob("*.png")
    assert still.read_bytes() == png.getvalue() and base64.b64decode(data["image/png"]) == png.getvalue()
    assert f"![Figure 5.3: The episode, step by step.](figures/{still.name}){{#fig-anim" in pdf_md
    typ = pypandoc.convert_text(pdf_md, "typst", format="markdown")
    assert "image(" in typ and "<fig-anim>" in typ
    with pytest.raises(ValueError, match="to must be"):
        render.notebook_markdown(nb, page, media, "figures", to="latex")


def test_the_site_links_the_pdf_under_the_name_both_renderers_give_it():
    from rlinterp.pipeline import render

    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    tools = cfg["book"]["sidebar"]["tools"]
    assert render.pdf_name(cfg) == "rlinterp.pdf" and "rlinterp.pdf" in [t["href"] for t in tools]
    assert render.pdf_name({"book": {"title": "Demo Book"}}) == "demo-book.pdf"
    page = _fake_page()
    nav = render._nav([page], page, "Book", tools)
    assert '<a href="../../rlinterp.pdf">The book as PDF</a>' in nav


def test_display_outputs_follow_quartos_choice_per_format():
    from rlinterp.pipeline.render import display_mime

    table_html = {"text/html": "<table></table>", "text/plain": "df"}
    assert display_mime(table_html, "html") == "text/html" and display_mime(table_html, "typst") == "text/plain"
    fig = {"image/png": "", "text/plain": "<Figure size 640x480 with 1 Axes>"}
    assert display_mime(fig, "html") == display_mime(fig, "typst") == "image/png"
    prose = {"text/markdown": "x", "text/plain": "<IPython.core.display.Markdown object>"}
    assert display_mime(prose, "html") == display_mime(prose, "typst") == "text/markdown"


def test_image_files_are_named_by_position_so_both_formats_link_the_right_image(tmp_path):
    """The HTML pass skips the still of an animation, the PDF pass writes it: a running counter would give a later
    figure different names in the two passes and one pass would overwrite the other's file."""
    from rlinterp.pipeline import render

    a, b = base64_png("red"), base64_png("blue")
    nb = {"cells": [
        {"cell_type": "code", "metadata": {}, "source": "#| label: fig-a\n#| fig-cap: A.",
         "outputs": [{"output_type": "display_data", "metadata": {},
                      "data": {"text/html": "<b>anim</b>", "image/png": a}}]},
        {"cell_type": "code", "metadata": {}, "source": "#| label: fig-b\n#| fig-cap: B.",
         "outputs": [{"output_type": "display_data", "metadata": {}, "data": {"image/png": b}}]}]}
    page = _fake_page(labels={"fig-a": "Figure 5.1", "fig-b": "Figure 5.2"})
    html_md = render.notebook_markdown(nb, page, tmp_path, "figures", to="html")
    pdf_md = render.notebook_markdown(nb, page, tmp_path, "figures", to="typst")
    link = re.compile(r"!\[Figure 5\.2: B\.\]\(figures/([^)]+)\)")
    assert link.search(html_md).group(1) == link.search(pdf_md).group(1)
    import base64

    assert (tmp_path / link.search(html_md).group(1)).read_bytes() == base64.b64decode(b)


def base64_png(color: str) -> str:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_typst_rules_break_long_tables_across_pages_and_shrink_wide_ones(tmp_path):
    """paper/book.typ (Quarto's include-in-header; the fallback includes it too): a 60-row table in a figure spans
    pages instead of running into the footer, and a 10-column table is set smaller than a 3-column one."""
    import pypandoc
    import typst

    from rlinterp.pipeline import render
    from rlinterp.pipeline.report import md_table_text

    header = render.typst_header(ROOT)
    assert (ROOT / "paper/book.typ").read_text() in header
    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    assert cfg["format"]["typst"]["include-in-header"] == render.BOOK_TYP
    assert cfg["format"]["html"]["css"] == render.BOOK_CSS
    long = md_table_text([[i, f"row {i}", 0.5] for i in range(60)], columns=["n", "name", "value"])
    wide = md_table_text([[f"v{j}" for j in range(10)]], columns=[f"column {j}" for j in range(10)])
    md = f"::: {{#tbl-long}}\n{long}\n\n: A long table.\n:::\n\n{wide}\n"
    (tmp_path / "h.typ").write_text(header)
    typ = tmp_path / "t.typ"
    pypandoc.convert_text(md, "typst", format="markdown", outputfile=str(typ),
                          extra_args=["--standalone", f"--include-in-header={tmp_path / 'h.typ'}"])
    pdf = typst.compile(str(typ))
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 2  # the 60 rows continue on a second page
    # the font rule: 6.5pt for 8 or more columns, 8pt otherwise
    assert re.search(r"n >= 8.*6\.5pt.*8pt", header)


def _visible_width(tex: str) -> int:
    """Rough width of one line of TeX math in characters: a command is one glyph, \\qquad four, thin spaces none."""
    v = tex.replace("\\qquad", "xxxx").replace("\\quad", "xx")
    v = re.sub(r"\\(?:text|mathrm|operatorname|mathbb|mathcal|big|Big|bigg|left|right|begin|end)\b", "", v)
    v = re.sub(r"\\[a-zA-Z]+", "x", v)
    v = re.sub(r"\\[,;:! ]", "", v)
    return len(re.sub(r"[{}_^&\s]|aligned", "", v))


def test_display_equations_fit_the_column():
    """A display equation line is at most ~55 glyphs (the Bellman equation, 64 on one line, overflowed the HTML
    column); longer ones are split with aligned, and paper/book.css lets any remaining one scroll in its column."""
    assert "overflow-x: auto" in (ROOT / "paper/book.css").read_text()
    assert _visible_width(r"Q^*(s, i) = q_i\,\big(1 + V^*(s + \text{head}_i)\big) + (1 - q_i)\, V^*(s + \text{tail}_i), "
                          r"\qquad V^*(s) = \max_i Q^*(s, i),") > 55
    for where, text in _book_prose().items():
        for eq in re.findall(r"\$\$(.+?)\$\$", text, flags=re.S):
            for line in re.split(r"\\\\", eq):
                assert _visible_width(line) <= 55, f"{where}: display equation line too wide: {line.strip()}"


@pytest.mark.slow
def test_an_executed_chapter_is_free_of_noise_and_its_figures_render(tmp_path):
    """highway/01 (progress bars in training and evaluation, transformer_lens's tqdm.auto import, the episode
    animation) executed at smoke size: no stderr, no progress/log noise, every figure and table labelled and
    captioned; rendered, its HTML page shows the GIF as a numbered figure and the PDF shows the still."""
    from rlinterp.pipeline import render, run

    res = run.run(ROOT, "highway/01_agent", profile="smoke", out=tmp_path, force=True, progress=False)
    nb = json.loads(res.chapter.read_text())
    assert executed_output_problems(nb) == []
    labels = {render._cell_options(render._text(c["source"]))[0].get("label") for c in nb["cells"]}
    assert "fig-highway-episode-gif" in labels
    page = render.Page("paper/highway/01_agent.ipynb", "Highway", 5, labels=render._collect_labels(nb, 5))
    html_md = render.notebook_markdown(nb, page, tmp_path / "media", "figures", to="html")
    pdf_md = render.notebook_markdown(nb, page, tmp_path / "media", "figures", to="typst")
    assert re.search(r"::: \{#fig-highway-episode-gif \.figure\}\n```\{=html\}\n"
                     r"<img src=\"data:image/gif;base64,", html_md)
    assert re.search(r"!\[Figure 5\.\d+: The same episode step by step[^\]]*\]\(figures/[\w-]+\.png\)"
                     r"\{#fig-highway-episode-gif", pdf_md)
    assert "IPython.core.display" not in html_md + pdf_md


@pytest.mark.slow
@pytest.mark.xdist_group("book")
def test_smoke_build_renders_html_and_pdf(tmp_path):
    """`rli build --profile smoke` executes every analysis and renders the whole book with the fallback renderer."""
    out = tmp_path / "build"
    proc = subprocess.run([sys.executable, "-m", "rlinterp.cli", "build", "--profile", "smoke", "--out", str(out),
                           "-j", "2", "--quiet", "--renderer", "pandoc"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]
    assert "rendered with pandoc+typst" in proc.stdout
    for a in ANALYSES:
        nb = json.loads(a.chapter(out).read_text())
        assert nb["metadata"]["rlinterp"]["profile"] == "smoke"
        errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors
        assert executed_output_problems(nb) == [], a.name  # no stderr/progress noise; figures and tables labelled
        html = (out / "_book" / f"paper/{a.name}.html").read_text()
        assert "??fig-" not in html and "??tbl-" not in html  # every cross-reference resolved
    index = (out / "_book/index.html").read_text()
    for a in ANALYSES:
        assert f"paper/{a.name}.html" in index
    [pdf] = (out / "_book").glob("*.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000
    assert not list((ROOT / "paper").rglob("*.failed.ipynb"))
