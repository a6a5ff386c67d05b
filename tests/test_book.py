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
        html = (out / "_book" / f"paper/{a.name}.html").read_text()
        assert "??fig-" not in html and "??tbl-" not in html  # every cross-reference resolved
    index = (out / "_book/index.html").read_text()
    for a in ANALYSES:
        assert f"paper/{a.name}.html" in index
    [pdf] = (out / "_book").glob("*.pdf")
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 50_000
    assert not list((ROOT / "paper").rglob("*.failed.ipynb"))
