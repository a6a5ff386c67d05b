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
