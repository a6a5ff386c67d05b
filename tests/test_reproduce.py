"""The generated appendix "Reproducing this book": every number in it comes from the build's own records."""
from __future__ import annotations

import json

import pytest

from rlinterp.pipeline import reproduce
from rlinterp.pipeline import run as runner

pytestmark = pytest.mark.xdist_group("pipeline")


def test_unbuilt_chapters_are_listed_as_not_built(project):
    text = reproduce.appendix_markdown(project)
    assert "| demo/01_x | — | not built |" in text
    assert "0 of 1 chapters are built here, 0 s of execution" in text
    assert f"| torch | {reproduce._version('torch')} |" in text


def test_built_chapter_row_comes_from_its_metadata(project):
    res = runner.run(project, "demo/01_x", {"n": 4}, progress=False)
    meta = json.loads(res.chapter.read_text())["metadata"]["rlinterp"]
    text = reproduce.appendix_markdown(project)
    row = next(line for line in text.splitlines() if line.startswith("| demo/01_x |"))
    assert f"`{meta['cache_key'][:12]}`" in row
    assert f"| {meta['seconds']:.0f} |" in row
    assert "`n=4`" in row and "scale=" not in row  # only the parameters that differ from their defaults
    assert "1 of 1 chapters are built here" in text


def test_render_writes_the_appendix_when_the_book_lists_it(project):
    cfg = project / "_quarto.yml"
    cfg.write_text(cfg.read_text().replace("bibliography:", "  appendices:\n    - paper/reproducing.qmd\nbibliography:"))
    runner.run(project, "demo/01_x", {}, progress=False)
    from rlinterp.pipeline.render import render

    render(project, renderer="pandoc")
    assert (project / reproduce.APPENDIX).read_text().startswith("# Reproducing this book")
    html = (project / "_book/paper/reproducing.html").read_text()
    assert "Reproducing this book" in html and "demo/01_x" in html
