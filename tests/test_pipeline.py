"""The `rli` pipeline on a small fixture project: parameters, cache, failures, data manifest, fallback renderer."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rlinterp.cli import main as rli
from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import manifest
from rlinterp.pipeline import run as runner

pytestmark = pytest.mark.xdist_group("pipeline")


def executed_values(chapter: Path) -> dict:
    return json.loads(chapter.read_text())["metadata"]["rlinterp"]


# ----------------------------------------------------------------------------------------------- parameters
def test_discover_and_parameters(project):
    [a] = an.discover(project)
    assert a.name == "demo/01_x" and a.chapter() == project / "paper/demo/01_x.ipynb"
    spec = an.parameters(a)
    assert {n: (p.type, p.default) for n, p in spec.items()} == {
        "n": ("int", 10), "scale": ("float", 1.0), "fail": ("bool", False), "offsets": ("list[float]", [0.0, 0.5]),
        "style": ("str", "line")}
    assert spec["n"].help == "number of points"  # the constraint tag is not part of the help
    assert spec["n"].range == an.Range(1, math.inf, True, False) and str(spec["n"].range) == "[1, inf)"
    assert str(spec["scale"].range) == "(0, 10]" and spec["style"].choices == ("line", "dots")
    assert spec["offsets"].constraint == "range: [-5, 5]" and spec["fail"].constraint == ""


def test_validation_casts_and_layers(project):
    [a] = an.discover(project)
    spec = an.parameters(a)
    params = an.validate(a, spec, an.profile(project, a, "smoke"), {"scale": "2.5", "fail": "no", "offsets": "1,-2"})
    assert params == {"n": 3, "scale": 2.5, "fail": False, "offsets": [1.0, -2.0], "style": "line"}


P_INT = an.Param("k", "int", 1, "h", an.Range(1, math.inf, True, False))
P_FLOAT = an.Param("x", "float", 0.5, "h", an.Range(0, 1, False, True))
P_FREE = an.Param("y", "float", 0.0, "h")
P_INF = an.Param("z", "float", 1.0, "h", an.Range(0, math.inf, True, True))
P_BOOL = an.Param("b", "bool", False, "h")
P_STR = an.Param("kind", "str", "ad", "h", choices=("ad", "ed"))
P_LF = an.Param("xs", "list[float]", [0.1], "h", an.Range(0, math.inf, False, False))
P_LI = an.Param("ns", "list[int]", [1], "h", an.Range(1, 65, True, True))
P_LS = an.Param("ks", "list[str]", ["ad"], "h", choices=("ad", "ed"))
NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("param, value, text, expected", [
    # from the command line (text)
    (P_INT, "3", True, 3), (P_INT, " 1_000 ", True, 1000), (P_INT, "+7", True, 7),
    (P_FLOAT, "0.25", True, 0.25), (P_FLOAT, "1", True, 1.0), (P_FLOAT, "1e-3", True, 0.001),
    (P_FREE, "-3.5", True, -3.5), (P_INF, "inf", True, INF),
    (P_BOOL, "true", True, True), (P_BOOL, "1", True, True), (P_BOOL, "Yes", True, True), (P_BOOL, "off", True, False),
    (P_BOOL, "0", True, False), (P_STR, "ed", True, "ed"),
    (P_LF, "0.1,0.3", True, [0.1, 0.3]), (P_LF, "[0.1, 0.3]", True, [0.1, 0.3]), (P_LF, " 2 ", True, [2.0]),
    (P_LI, "4,16,65", True, [4, 16, 65]), (P_LS, "ad,ed", True, ["ad", "ed"]),
    # from a profile or a default (typed TOML / Python values)
    (P_INT, 3, False, 3), (P_FLOAT, 1, False, 1.0), (P_FLOAT, 0.5, False, 0.5), (P_BOOL, True, False, True),
    (P_STR, "ad", False, "ad"), (P_LF, [1, 0.5], False, [1.0, 0.5]), (P_LF, (0.2,), False, [0.2]),
    (P_LI, [4, 65], False, [4, 65]), (P_INF, INF, False, INF),
    # typed values passed through the API are accepted on the command-line path too
    (P_INT, 5, True, 5), (P_LI, [2], True, [2]),
])
def test_cast_accepts(param, value, text, expected):
    out = an.cast(param, value, "test", text=text)
    assert out == expected and type(out) is type(expected)
    if isinstance(out, list):
        assert all(type(v) is type(e) for v, e in zip(out, expected))


@pytest.mark.parametrize("param, value, text, message", [
    (P_INT, "1.5", True, "is not an integer"), (P_INT, "1e3", True, "is not an integer"),
    (P_INT, "abc", True, "is not an integer"), (P_INT, "", True, "is not an integer"),
    (P_INT, "true", True, "is not an integer"), (P_INT, "0", True, "out of range: it must lie in [1, inf)"),
    (P_INT, "-5", True, "out of range"),
    (P_INT, True, False, "is an int; got True (bool"), (P_INT, 1.5, False, "is an int; got 1.5 (float"),
    (P_INT, 3.0, False, "is an int; got 3.0 (float"), (P_INT, "3", False, "is an int; got '3' (str"),
    (P_FLOAT, "nan", True, "is not a number"), (P_FLOAT, NAN, False, "is not a number"),
    (P_FLOAT, "0", True, "out of range: it must lie in (0, 1]"), (P_FLOAT, "1.5", True, "out of range"),
    (P_FLOAT, "fast", True, "is not a number"), (P_FLOAT, True, False, "is a float; got True (bool"),
    (P_FLOAT, "0.5", False, "is a float; got '0.5' (str"),
    (P_FREE, "inf", True, "must be finite"), (P_FREE, "-inf", True, "must be finite"),
    (P_FREE, "nan", True, "is not a number"), (P_INF, "-1", True, "out of range: it must lie in [0, inf]"),
    (P_BOOL, "maybe", True, "use true/false"), (P_BOOL, "2", True, "use true/false"),
    (P_BOOL, 1, False, "is a bool; got 1 (int"), (P_BOOL, "true", False, "is a bool; got 'true' (str"),
    (P_STR, "xd", True, "is not one of the choices: ad, ed"), (P_STR, 3, False, "is a str; got 3 (int"),
    (P_LF, "", True, "needs at least one element"), (P_LF, "1,,2", True, "has an empty element"),
    (P_LF, "0.1,x", True, "each element a float; 'x' (test) is not a number"),
    (P_LF, "0.1,0", True, "element 0.0 (test) is out of range: it must lie in (0, inf)"),
    (P_LF, "0.1,nan", True, "element nan (test) is not a number"), (P_LF, [], False, "needs at least one element"),
    (P_LF, "0.1,0.3", False, "write an array, xs = [1, 2, 3]"), (P_LF, 0.1, False, "is a list[float]"),
    (P_LF, [True], False, "got True (bool"), (P_LI, "4,8.5", True, "'8.5' (test) is not an integer"),
    (P_LI, [1.5], False, "got 1.5 (float"), (P_LI, "4,66", True, "element 66 (test) is out of range: it must lie in [1, 65]"),
    (P_LS, "ad,xd", True, "element 'xd' (test) is not one of the choices"),
])
def test_cast_refuses(param, value, text, message):
    with pytest.raises(an.ParameterError) as err:
        an.cast(param, value, "test", text=text)
    assert message in str(err.value) and param.name in str(err.value)


@pytest.mark.parametrize("line, message", [
    ('k: str = "a"  # h [range: [0, 1]]', "needs an int or float"),
    ("k: int = 1  # h [range: [x, 1]]", "bad range"),
    ("k: int = 1  # h [range: [2, 1]]", "need lo <= hi"),
    ("k: int = 1  # h [range: 0 .. 1]", "cannot read the constraint"),
    ("k: bool = True  # h [choices: a, b]", "needs no [choices"),
    ("k: int = 0  # h [range: [1, inf)]", "the default of 'k' is invalid"),
    ('k: str = "c"  # h [choices: a, b]', "the default of 'k' is invalid"),
    ("k: list[int] = []  # h", "the default of 'k' is invalid"),
    ("k: tuple = (1,)  # h", "needs a type annotation"),
    ("k: int = 1", "needs a `# help` comment"),
])
def test_bad_declarations_are_refused(project, line, message):
    src = project / "analyses/demo/01_x.py"
    src.write_text(src.read_text().replace("fail: bool = False  # raise on purpose\n",
                                           f"fail: bool = False  # raise on purpose\n{line}\n"))
    [a] = an.discover(project)
    with pytest.raises(an.ParameterError, match=re.escape(message)):
        an.parameters(a)


def test_profile_values_are_typed(project, capsys):
    """A profile is TOML: its values must have the declared type (a string is not a number, 1.5 is not an int)."""
    toml = project / "analyses/demo/profiles.toml"
    for body, message in [("n = 1.5", "is an int; got 1.5 (float, profile smoke, analyses/demo/profiles.toml)"),
                          ('n = "3"', "is an int; got '3' (str"), ("n = 0", "out of range"),
                          ("fail = 1", "is a bool; got 1 (int"), ('offsets = "1,2"', "write an array"),
                          ("offsets = [1, 9]", "element 9.0 (profile smoke"), ("scale = nan", "is not a number"),
                          ('style = "bars"', "is not one of the choices: line, dots"),
                          ("bogus = 1", "has no parameter 'bogus' (profile smoke")]:
        toml.write_text(f"[smoke.01_x]\n{body}\n")
        assert rli(["--root", str(project), "run", "demo/01_x", "--profile", "smoke", "--quiet"]) == 2, body
        err = capsys.readouterr().err
        assert message in err and "demo/01_x" in err, (body, err)
    assert not (project / "_build").exists()  # nothing was executed


@pytest.mark.parametrize("pairs, message", [
    (["bogus=1"], "has no parameter 'bogus'"),
    (["n=abc"], "is an int"),
    (["n=1.5"], "is an int"),
    (["scale=fast"], "is a float"),
    (["fail=maybe"], "is a bool"),
    (["n"], "must be written name=value"),
    (["n=0"], "parameter n = 0 (-p) is out of range: it must lie in [1, inf)"),
    (["scale=-1"], "parameter scale = -1.0 (-p) is out of range: it must lie in (0, 10]"),
    (["scale=nan"], "parameter scale = nan (-p) is not a number"),
    (["offsets=1,x"], "'x' (-p) is not a number"),
    (["style=bars"], "is not one of the choices: line, dots"),
])
def test_bad_parameters_fail_before_execution(project, capsys, pairs, message):
    args = ["--root", str(project), "run", "demo/01_x", "--quiet"]
    for p in pairs:
        args += ["-p", p]
    assert rli(args) == 2
    assert message in capsys.readouterr().err
    assert not (project / "paper/demo/01_x.ipynb").exists()  # nothing executed, nothing written


def test_unknown_analysis_and_profile(project, capsys):
    assert rli(["--root", str(project), "run", "demo/nope"]) == 2
    assert "unknown analysis" in capsys.readouterr().err
    assert rli(["--root", str(project), "run", "demo/01_x", "--profile", "huge"]) == 2
    assert "unknown profile" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- run + cache
def test_run_writes_chapter_hides_injected_cell_and_caches(project):
    res = runner.run(project, "demo/01_x", {"n": "4"}, progress=False)
    assert res.status == "executed"
    nb = json.loads(res.chapter.read_text())
    meta = nb["metadata"]["rlinterp"]
    assert meta["params"] == {"n": 4, "scale": 1.0, "fail": False, "offsets": [0.0, 0.5], "style": "line"}
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    assert "".join(injected[0]["source"]).startswith("#| include: false")
    assert "remove-cell" in injected[0]["metadata"]["tags"]
    outputs = json.dumps(nb["cells"])
    assert "The sum is **6**" in outputs  # the computed prose used the overridden n
    assert "Offsets total 0.5 (float), style line." in outputs  # a list parameter arrives as a list

    t0 = time.perf_counter()
    again = runner.run(project, "demo/01_x", {"n": "4"}, progress=False)
    assert again.status == "cached" and time.perf_counter() - t0 < 1.0
    # other parameters, an analysis edit, a lib/ edit and a data-manifest change all invalidate the cache
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False).status == "executed"
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False).status == "cached"
    (project / "lib/demo/helper.py").write_text("VALUE = 2\n")
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False).status == "executed"
    src = project / "analyses/demo/01_x.py"
    src.write_text(src.read_text() + "\n# %%\nprint('edited')\n")
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False).status == "executed"
    (project / "data").mkdir(exist_ok=True)
    (project / "data/x.bin").write_bytes(b"abc")
    manifest.register("x.bin", "make x", data_dir=project / "data")
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False).status == "executed"
    assert runner.run(project, "demo/01_x", {"n": "5"}, progress=False, force=True).status == "executed"


def test_failure_keeps_previous_chapter(project, capsys):
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet"]) == 0
    chapter = project / "paper/demo/01_x.ipynb"
    good = chapter.read_bytes()
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "fail=true"]) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: asked to fail" in err and 'raise RuntimeError("asked to fail")' in err  # cell + traceback
    assert chapter.read_bytes() == good
    failed = project / "paper/demo/01_x.failed.ipynb"
    assert failed.exists() and "asked to fail" in failed.read_text()
    assert f"the previous chapter {chapter} was left untouched" in err
    # a later success removes the stale failed notebook
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "n=2"]) == 0
    assert not failed.exists()
    # ... and so does a cache hit: the chapter is good for these inputs, the failure is history
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "fail=true"]) == 1
    assert failed.exists()
    capsys.readouterr()
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "n=2"]) == 0
    assert "up to date, skipped" in capsys.readouterr().out and not failed.exists()


def test_failure_without_a_previous_chapter_says_so(project, capsys):
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "fail=true"]) == 1
    err = capsys.readouterr().err
    assert "no chapter was written (there was no previous one)" in err and "left untouched" not in err
    assert not (project / "paper/demo/01_x.ipynb").exists() and (project / "paper/demo/01_x.failed.ipynb").exists()


def test_analysis_missing_from_quarto_yml_gets_a_hint(project, capsys):
    shutil.copy(project / "analyses/demo/01_x.py", project / "analyses/demo/02_y.py")
    assert rli(["--root", str(project), "run", "demo/02_y"]) == 2
    err = capsys.readouterr().err
    assert "analyses/demo/02_y.py exists but is not in the book" in err
    assert "list paper/demo/02_y.ipynb under book.chapters" in err and "_quarto.yml" in err
    assert rli(["--root", str(project), "run", "demo/nope"]) == 2
    assert "unknown analysis 'demo/nope'" in capsys.readouterr().err


def _text(html: str) -> str:
    """An HTML page's text, whitespace collapsed (pandoc wraps long lines)."""
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


def _parameters_cell(chapter: Path) -> str:
    nb = json.loads(chapter.read_text())
    [cell] = [c for c in nb["cells"] if "parameters" in c["metadata"].get("tags", [])]
    return "".join(cell["source"])


def test_chapter_shows_the_parameters_actually_used(project):
    """Quarto renders the .ipynb as is and the fallback renders the same cells: the visible parameters cell must hold
    the effective values (profile + -p), not the defaults, and the injected cell stays hidden."""
    res = runner.run(project, "demo/01_x", {"offsets": "1,2", "style": "dots"}, profile="smoke", progress=False)
    src = _parameters_cell(res.chapter)
    assert src.splitlines()[0].startswith("# parameters as executed (profile smoke")
    assert "n: int = 3  # number of points [range: [1, inf)] (default: 10)" in src
    assert "offsets: list[float] = [1.0, 2.0]  # vertical offsets of the reported lines [range: [-5, 5]] " \
           "(default: [0.0, 0.5])" in src
    assert "style: str = \"dots\"  # how the points are joined [choices: line, dots] (default: \"line\")" in src
    assert "scale: float = 1.0  # slope [range: (0, 10]]\n" in src + "\n"  # unchanged: no default note
    assert "The sum is **3**" in res.chapter.read_text()
    from rlinterp.pipeline.render import render

    render(project, res.chapter.parents[2], renderer="pandoc", profile="smoke")
    html = (res.chapter.parents[2] / "_book/paper/demo/01_x.html").read_text()
    text = _text(html)
    assert "n: int = 3" in text and "n: int = 10" not in text and "offsets: list[float] = [1.0, 2.0]" in text
    assert "# Parameters" not in text  # papermill's injected cell is not shown

    default = runner.run(project, "demo/01_x", {}, progress=False)  # the default build shows the cell as written
    written = next(c.source for c in an.load_notebook(an.get(project, "demo/01_x")).cells
                   if "parameters" in c.metadata.get("tags", []))
    assert _parameters_cell(default.chapter) == written


def test_build_times_recorded_for_profile_builds_only(project):
    from rlinterp.pipeline import build_times

    runner.run(project, "demo/01_x", {"n": "4"}, progress=False)  # -p overrides: not a profile's own build
    assert build_times.read(project) == {}
    res = runner.run(project, "demo/01_x", {}, progress=False)
    entry = build_times.read(project)["demo/01_x"]["default"]
    assert entry["seconds"] == round(res.seconds, 1) and entry["machine"] == build_times.machine()
    out = project / "elsewhere"
    runner.run(project, "demo/01_x", {}, profile="smoke", out=out, progress=False)
    assert set(build_times.read(out)["demo/01_x"]) == {"smoke"}  # recorded in the build folder it was written to
    assert set(build_times.read(project)["demo/01_x"]) == {"default"}


def test_list_reports_status(project, capsys):
    assert rli(["--root", str(project), "list"]) == 0
    assert "[not built]" in capsys.readouterr().out
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet"]) == 0
    capsys.readouterr()
    assert rli(["--root", str(project), "list"]) == 0
    out = capsys.readouterr().out
    assert "[up to date]" in out and "n: int = 10" in out and "number of points  [range: [1, inf)]" in out
    assert "style: str = 'line'  — how the points are joined  [choices: line, dots]" in out


# ----------------------------------------------------------------------------------------------- data manifest
def test_manifest_roundtrip_and_corruption(tmp_path):
    torch = pytest.importorskip("torch")
    data = tmp_path / "data"
    ckpt = {"state_dict": {"w": torch.arange(4.0)}, "config": {"n": 1}}
    manifest.save_checkpoint(ckpt, "s/model.pt", command="rli run s/01 -p retrain=True", metrics={"score": 1.0},
                             data_dir=data)
    entry = manifest.read_manifest(data)["s/model.pt"]
    assert entry["size"] == (data / "s/model.pt").stat().st_size and entry["metrics"] == {"score": 1.0}
    assert torch.equal(manifest.load_checkpoint("s/model.pt", data_dir=data)["state_dict"]["w"], torch.arange(4.0))
    raw = bytearray((data / "s/model.pt").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (data / "s/model.pt").write_bytes(bytes(raw))
    with pytest.raises(manifest.DataError, match=r"corrupt.*rli run s/01 -p retrain=True"):
        manifest.load_checkpoint("s/model.pt", data_dir=data)
    (data / "s/model.pt").unlink()
    with pytest.raises(manifest.DataError, match="missing"):
        manifest.data_path("s/model.pt", data_dir=data)
    with pytest.raises(manifest.DataError, match="not in data/MANIFEST.json"):
        manifest.data_path("other.pt", data_dir=data)
    assert len(manifest.verify_all(data)) == 1
    # a checkpoint that weights_only loading could not read is refused before anything is written
    np = pytest.importorskip("numpy")
    with pytest.raises(manifest.DataError, match="refusing to save.*float"):
        manifest.save_checkpoint({"score": np.float64(0.5)}, "s/bad.pt", command="x", data_dir=data)
    assert not (data / "s/bad.pt").exists() and "s/bad.pt" not in manifest.read_manifest(data)


def test_shipped_data_matches_manifest():
    assert manifest.verify_all() == []


def test_shipped_checkpoints_load_safely():
    """Every shipped .pt loads with torch.load(weights_only=True): no numpy scalars or classes in checkpoints (a
    retraining run that saved one would otherwise only fail later, when a chapter loads the file)."""
    names = [n for n in manifest.read_manifest() if n.endswith(".pt")]
    assert names
    for name in names:
        assert isinstance(manifest.load_checkpoint(name), dict), name


# ----------------------------------------------------------------------------------------------- rendering
def test_fallback_render_html_and_pdf(project):
    runner.run(project, "demo/01_x", {}, progress=False)
    from rlinterp.pipeline.render import render

    res = render(project, renderer="pandoc")
    assert res.renderer.startswith("pandoc")
    html = (project / "_book/paper/demo/01_x.html").read_text()
    assert '<figure id="fig-line">' in html and "Figure 1.1: A line." in html
    assert 'href="#fig-line">Figure 1.1</a>' in html and "Table 1.1: A table." in html
    assert "data:image/png;base64," in html  # figures embedded: the page is self-contained
    assert "# Parameters" not in html  # injected-parameters cell hidden
    index = (project / "_book/index.html").read_text()
    assert "paper/demo/01_x.html" in index and "B, C" not in html  # nav links; citations resolved on index only
    pdf = project / "_book/demo-book.pdf"
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.stat().st_size > 10_000


def test_section_labels_numbered_as_quarto_numbers_them():
    from rlinterp.pipeline.render import _section_labels

    md = ("# Title {#sec-t}\n\n```python\n# ## a code comment {#sec-no}\n```\n\n## A\n\n### A.1 {#sec-a1}\n\n"
          "## B {#sec-b}\n\n## Aside {.unnumbered #sec-aside}\n")
    assert _section_labels(md, 3) == {"sec-t": "Chapter 3", "sec-a1": "Section 3.1.1", "sec-b": "Section 3.2",
                                      "sec-aside": "Aside"}
    assert _section_labels("# Preface {.unnumbered #sec-pre}\n\n## Why {#sec-why}\n", None) == \
        {"sec-pre": "Preface", "sec-why": "Why"}


def test_fallback_render_resolves_section_references(project):
    """``@sec-x`` (CI renders with the fallback) becomes a link to the heading with ``{#sec-x}``, as in Quarto."""
    from rlinterp.pipeline.render import render

    src = project / "analyses/demo/01_x.py"
    text = src.read_text().replace("# # Demo chapter\n", "# # Demo chapter {#sec-demo}\n")
    src.write_text(text + "\n# %% [markdown]\n# ## First\n#\n# Back to @sec-demo.\n#\n"
                          "# ## Second {#sec-second}\n#\n# See @sec-second.\n")
    (project / "index.qmd").write_text("# Hello {.unnumbered}\n\nSee [@a1] and @sec-second.\n")
    runner.run(project, "demo/01_x", {}, progress=False)
    render(project, renderer="pandoc")
    html = (project / "_book/paper/demo/01_x.html").read_text()
    assert 'href="#sec-demo">Chapter 1</a>' in html and 'href="#sec-second">Section 1.2</a>' in html
    assert 'id="sec-second"' in html and "??" not in html
    index = (project / "_book/index.html").read_text()
    assert 'href="paper/demo/01_x.html#sec-second">Section 1.2</a>' in index


def test_render_with_unbuilt_chapters_shows_how_to_build_them(project):
    """`rli render` renders whatever is built: an unexecuted chapter is a page with its build command and cost."""
    from rlinterp.pipeline import build_times
    from rlinterp.pipeline.render import render

    res = render(project, renderer="pandoc")
    assert res.placeholders == ["paper/demo/01_x.ipynb"]
    text = _text((project / "_book/paper/demo/01_x.html").read_text())
    assert "Demo chapter" in text and "Not built yet." in text and "rli run demo/01_x" in text
    assert "no build on record for the default profile" in text
    assert not (project / "paper/demo/01_x.ipynb").exists()  # the placeholder notebook is gone again
    assert rli(["--root", str(project), "list"]) == 0  # so rli list still says "not built"

    build_times.record(project, "demo/01_x", "default", 2025.0)
    out = project / "_build/smoke"
    build_times.record(out, "demo/01_x", "smoke", 3.2)
    render(project, renderer="pandoc")
    text = _text((project / "_book/paper/demo/01_x.html").read_text())
    assert f"last measured: 2025 s (about 34 min) on {build_times.machine()}" in text
    res = render(project, out, renderer="pandoc", profile="smoke")
    text = _text((out / "_book/paper/demo/01_x.html").read_text())
    assert "rli run demo/01_x --profile smoke builds" in text and "last measured: 3 s" in text
    assert [p.suffix for p in res.outputs] == [".html", ".html", ".pdf"]


def test_list_into_a_closed_pipe_is_quiet():
    """`rli list | head`: the reader goes away early; rli must stop without a BrokenPipeError traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "rlinterp.cli", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=Path(__file__).parents[1])
    proc.stdout.close()  # like `head` exiting before rli writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    piped = subprocess.run(f"{sys.executable} -m rlinterp.cli list | head -3", shell=True, capture_output=True,
                           text=True, cwd=Path(__file__).parents[1])
    assert len(piped.stdout.splitlines()) == 3 and "Traceback" not in piped.stderr, piped.stderr


def test_cli_entry_point_installed():
    out = subprocess.run([sys.executable, "-m", "rlinterp.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "rli build" in out.stdout


def test_save_refused_under_a_non_default_profile(project, capsys):
    src = project / "analyses/demo/01_x.py"
    src.write_text(src.read_text().replace("fail: bool = False  # raise on purpose",
                                           "fail: bool = False  # raise on purpose\nsave: bool = False  # write data/"))
    assert rli(["--root", str(project), "run", "demo/01_x", "--profile", "smoke", "-p", "save=true"]) == 2
    assert "would replace the shipped" in capsys.readouterr().err


def test_book_without_root_home_page_is_refused_for_rendering_but_lists_its_analyses(project):
    """Quarto 1.10 stops with "Book contents must include a home page" unless index.* is at the project root; our
    renderers refuse the same book, while `rli diff` can still list an old commit's analyses."""
    (project / "index.qmd").rename(project / "paper/index.qmd")
    cfg = project / "_quarto.yml"
    cfg.write_text(cfg.read_text().replace("    - index.qmd", "    - paper/index.qmd"))
    with pytest.raises(ValueError, match="home page as index.qmd"):
        an.quarto_config(project)
    assert [a.name for a in an.discover(project)] == ["demo/01_x"]


# ----------------------------------------------------------------------------------------------- mutation target
def test_mutation_target_resolves_prepares_and_scores(tmp_path, monkeypatch):
    """`make mutation MODULE=...`: the module's file, its own work folder and config, and the score per module."""
    import tomllib

    from rlinterp import ROOT
    from rlinterp.pipeline import mutation as mt

    assert mt.resolve("rlinterp.pipeline.analyses", ROOT) == ("rlinterp.pipeline.analyses",
                                                             ["src/rlinterp/pipeline/analyses.py"])
    assert mt.resolve("lib/rlinterp/envs/coinflip.py", ROOT) == ("rlinterp.envs.coinflip",
                                                                ["src/rlinterp/envs/coinflip.py"])
    assert mt.resolve("rlinterp.interp", ROOT) == ("rlinterp.interp", ["src/rlinterp/interp/*"])
    slug, scope = mt.resolve(None, ROOT)
    assert slug == "all" and "src/rlinterp/learners/*" in scope
    with pytest.raises(SystemExit, match="no lib/rlinterp/nope.py|no lib/rlinterp/nope"):
        mt.resolve("rlinterp.nope", ROOT)
    assert mt.related_tests("rlinterp.envs.coinflip", ROOT) == ["tests/test_coinflip_env.py"]

    root = tmp_path / "repo"
    (root / "lib/rlinterp").mkdir(parents=True)
    (root / "tests").mkdir()
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    work = mt.prepare(root, "rlinterp.x", ["src/rlinterp/x.py"], ["tests/test_x.py::test_a"])
    assert work == root / "_build/mutation/rlinterp.x"
    assert (work / "src").resolve() == (root / "lib").resolve() and (work / "tests").resolve() == root / "tests"
    assert (work / "mutants/src").is_dir() and not (work / "_build").exists()
    cfg = tomllib.loads((work / "pyproject.toml").read_text())["tool"]
    main = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]
    assert cfg["mutmut"] == dict(main["mutmut"], only_mutate=["src/rlinterp/x.py"],
                                 pytest_add_cli_args_test_selection=["tests/test_x.py::test_a"])
    assert cfg["pytest"] == main["pytest"]

    found = {"rlinterp.a.x_f__mutmut_1": "killed", "rlinterp.a.x_f__mutmut_2": "survived",
             "rlinterp.a.xǁCǁm__mutmut_1": "timeout", "rlinterp.a.x_g__mutmut_1": "no tests",
             "rlinterp.b.x_h__mutmut_1": "killed", "rlinterp.b.x_h__mutmut_2": "survived",
             "rlinterp.b.x_h__mutmut_3": "not checked"}
    monkeypatch.setattr(mt, "statuses", lambda w: found)
    monkeypatch.setattr(mt, "pyproject", lambda r: {"tool": {"rlinterp": {"mutation": {"equivalent": {
        "rlinterp.b.x_h__mutmut_2": "same result"}}}}})
    text = mt.report(root, work, "all", with_diffs=False)
    assert "| rlinterp.a | 2 | 1 | 1 | 0 | 0 | 50% |" in text
    assert "| rlinterp.b | 1 | 0 | 0 | 1 | 1 | 100% |" in text
    assert "| **all** | 3 | 1 | 1 | 1 | 1 | 60% |" in text
    assert "- `rlinterp.b.x_h__mutmut_2`: same result" in text
    assert "### `rlinterp.a.x_f__mutmut_2` (survived)" in text and "### `rlinterp.a.x_g__mutmut_1` (no tests)" in text
    assert "x_h__mutmut_3`" not in text and "x_f__mutmut_1`" not in text
