"""`rli diff`: a throwaway git repository (the demo project) with a change to a chapter and to a lib/ function."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rlinterp.cli import main as rli
from rlinterp.pipeline import diff as rdiff

FIXTURE = Path(__file__).parent / "fixtures" / "demo_project"
pytestmark = pytest.mark.xdist_group("pipeline")

SECOND = '''# %% [markdown]
# # Second chapter
#
# Uses nothing from lib/demo.

# %% tags=["parameters"]
k: int = 2  # a number

# %%
from rlinterp.pipeline.report import md
md(f"Twice k is **{2 * k}**.")
'''


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(FIXTURE, root)
    chapter = root / "analyses/demo/01_x.py"
    text = chapter.read_text().replace(
        "from rlinterp.pipeline.report import md, md_table",
        "import sys\nsys.path.insert(0, 'lib')\nfrom demo.helper import VALUE\nfrom rlinterp.pipeline.report import md, md_table")
    chapter.write_text(text + '\n# %%\nmd(f"The helper says **{VALUE}** and the mean is {sum(range(n)) / n:.2f}.")\n')
    (root / "analyses/demo/02_y.py").write_text(SECOND)
    quarto = root / "_quarto.yml"
    quarto.write_text(quarto.read_text().replace("        - paper/demo/01_x.ipynb",
                                                 "        - paper/demo/01_x.ipynb\n        - paper/demo/02_y.ipynb"))
    (root / "lib/demo/__init__.py").write_text("")
    git(root, "init", "-q", "-b", "main")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    git(root, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "base")
    return root


def test_import_closure_follows_lib_packages(repo):
    code = "from demo.helper import VALUE\nimport json\n"
    files = [p.relative_to(repo).as_posix() for p in rdiff.import_closure(repo, code)]
    assert files == ["lib/demo/__init__.py", "lib/demo/helper.py"]


def test_unchanged_tree_lists_nothing(repo):
    chapters = rdiff.diff(repo, "main", profile="smoke", out=repo / "_review", run=False, log=lambda *_: None)
    assert chapters == []
    assert "No chapter's inputs changed" in (repo / "_review/summary.md").read_text()


def test_lib_and_chapter_change_are_reported_with_numbers(repo, capsys):
    (repo / "lib/demo/helper.py").write_text("VALUE = 7\n")  # a lib/ change: only 01_x imports it
    src = repo / "analyses/demo/01_x.py"
    src.write_text(src.read_text().replace("sum(range(n))}**", "sum(range(n + 1))}**")
                   + '\n# %%\nmd("A new closing sentence.")\n')
    assert rli(["--root", str(repo), "diff", "main", "--profile", "smoke", "--out", str(repo / "_list"),
                "--no-run"]) == 0
    assert "demo/01_x: changed (analysis source; lib: lib/demo/helper.py)" in capsys.readouterr().out
    out = repo / "_review"
    [ch] = rdiff.diff(repo, "main", profile="smoke", out=out, log=lambda *_: None)
    assert ch.name == "demo/01_x" and ch.reasons == ["analysis source", "lib: lib/demo/helper.py"]
    summary = (out / "summary.md").read_text()
    assert "demo/01_x" in summary and "demo/02_y" not in summary.split("Unchanged")[0]
    assert "Unchanged inputs (not re-run): demo/02_y" in summary
    assert "3 → 6" in summary  # smoke n=3: sum(range(3)) = 3 became sum(range(4)) = 6
    assert "1 → 7" in summary  # the helper's value
    assert "1 added" in summary  # the closing cell
    report = (out / "report.html").read_text()
    assert "A new closing sentence." in report and "lib/demo/helper.py" in report
    assert "data:image/png;base64," not in report  # the figure did not change
    assert not (out / "new/paper/demo/02_y.ipynb").exists()  # unchanged chapters are not re-run


def test_parameter_change_and_figure_change(repo):
    prof = repo / "analyses/demo/profiles.toml"
    prof.write_text(prof.read_text().replace("n = 3", "n = 4"))
    out = repo / "_review"
    chapters = rdiff.diff(repo, "main", profile="smoke", out=out, log=lambda *_: None)
    [ch] = chapters
    assert ch.reasons == ["parameter n: 3 → 4"]
    assert ch.n_figures == 1  # the line plot has one more point
    assert "data:image/png;base64," in (out / "report.html").read_text()


def test_compare_text_pairs_numbers_within_sentences():
    changes = rdiff.compare_text("The agent wins 61.2% of games. It is fast.",
                                 "The agent wins 63.0% of games. It is fast. A new line.")
    assert [(c.old, c.new, c.numbers) for c in changes] == [
        ("The agent wins 61.2% of games.", "The agent wins 63.0% of games.", [("61.2%", "63.0%")]),
        (None, "A new line.", [])]


def test_align_cells_marks_added_and_removed():
    def nb(*sources):
        return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": s} for s in sources],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    pairs = rdiff.align_cells(nb("intro", "alpha beta gamma", "end"), nb("intro", "new cell entirely", "end"))
    assert (1, None) in pairs and (None, 1) in pairs and (0, 0) in pairs and (2, 2) in pairs
