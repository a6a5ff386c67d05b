"""The `rli` pipeline on a small fixture project: parameters, cache, failures, data manifest, fallback renderer."""
from __future__ import annotations

import json
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

FIXTURE = Path(__file__).parent / "fixtures" / "demo_project"
pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    shutil.copytree(FIXTURE, root)
    return root


def executed_values(chapter: Path) -> dict:
    return json.loads(chapter.read_text())["metadata"]["rlinterp"]


# ----------------------------------------------------------------------------------------------- parameters
def test_discover_and_parameters(project):
    [a] = an.discover(project)
    assert a.name == "demo/01_x" and a.chapter() == project / "paper/demo/01_x.ipynb"
    spec = an.parameters(a)
    assert {n: (p.type, p.default) for n, p in spec.items()} == {
        "n": ("int", 10), "scale": ("float", 1.0), "fail": ("bool", False)}
    assert spec["n"].help == "number of points"


def test_validation_casts_and_layers(project):
    [a] = an.discover(project)
    spec = an.parameters(a)
    params = an.validate(a, spec, an.profile(project, a, "smoke"), {"scale": "2.5", "fail": "no"})
    assert params == {"n": 3, "scale": 2.5, "fail": False}


@pytest.mark.parametrize("pairs, message", [
    (["bogus=1"], "has no parameter 'bogus'"),
    (["n=abc"], "is an int"),
    (["n=1.5"], "is an int"),
    (["scale=fast"], "is a float"),
    (["fail=maybe"], "is a bool"),
    (["n"], "must be written name=value"),
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
    assert meta["params"] == {"n": 4, "scale": 1.0, "fail": False}
    injected = [c for c in nb["cells"] if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1
    assert "".join(injected[0]["source"]).startswith("#| include: false")
    assert "remove-cell" in injected[0]["metadata"]["tags"]
    outputs = json.dumps(nb["cells"])
    assert "The sum is **6**" in outputs  # the computed prose used the overridden n

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
    # a later success removes the stale failed notebook
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet", "-p", "n=2"]) == 0
    assert not failed.exists()


def test_list_reports_status(project, capsys):
    assert rli(["--root", str(project), "list"]) == 0
    assert "[not built]" in capsys.readouterr().out
    assert rli(["--root", str(project), "run", "demo/01_x", "--quiet"]) == 0
    capsys.readouterr()
    assert rli(["--root", str(project), "list"]) == 0
    out = capsys.readouterr().out
    assert "[up to date]" in out and "n: int = 10" in out and "number of points" in out


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


def test_cli_entry_point_installed():
    out = subprocess.run([sys.executable, "-m", "rlinterp.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "rli build" in out.stdout


def test_save_refused_under_a_non_default_profile(project, capsys):
    src = project / "analyses/demo/01_x.py"
    src.write_text(src.read_text().replace("fail: bool = False  # raise on purpose",
                                           "fail: bool = False  # raise on purpose\nsave: bool = False  # write data/"))
    assert rli(["--root", str(project), "run", "demo/01_x", "--profile", "smoke", "-p", "save=true"]) == 2
    assert "would replace the shipped" in capsys.readouterr().err
