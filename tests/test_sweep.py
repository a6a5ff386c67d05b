"""`rli sweep` on the demo project: grid parsing and validation, isolated and cached points, failure reports, the
results table, the process-pool and Ray backends giving the same table, and a declared sweep read by a chapter."""
import json
import math
import os
import sys
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rlinterp.cli import main as rli
from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import report
from rlinterp.pipeline import run as runner
from rlinterp.pipeline import sweep

SWEEP_FIXTURE = Path(__file__).parent / "fixtures" / "sweep_project"


@pytest.fixture
def sproject(project: Path) -> Path:
    """The demo project plus the sweep fixtures: demo/02_noise (records results), demo/03_robust (reads the declared
    sweep demo/robustness of analyses/demo/sweeps.toml)."""
    shutil.copytree(SWEEP_FIXTURE, project, dirs_exist_ok=True)
    return project


def draws(n: int, scale: float, seed: int) -> np.ndarray:
    """What demo/02_noise computes."""
    return np.random.default_rng(seed).normal(0.0, scale, size=n)


# ------------------------------------------------------------------------------------------- grid and validation
def test_grid_expands_ranges_and_lists_and_applies_the_profile(sproject: Path):
    p = sweep.plan(sproject, "demo/02_noise", ["scale=0.5,2", "seed=0..2"])
    assert p.axes == {"scale": [0.5, 2.0], "seed": [0, 1, 2]}
    assert [pt.values for pt in p.points] == [{"scale": s, "seed": k} for s in (0.5, 2.0) for k in (0, 1, 2)]
    assert p.points[0].name == "scale=0.5,seed=0" and p.points[0].params["n"] == 50
    assert p.out == (sproject / "runs/sweeps/demo/02_noise").resolve()
    # a list parameter's values are separated by ';'; the profile applies to every point (smoke: n = 3)
    q = sweep.plan(sproject, "demo/01_x", ["offsets=0,1;2,-3", "style=line,dots"], profile="smoke")
    assert q.axes["offsets"] == [[0.0, 1.0], [2.0, -3.0]] and len(q.points) == 4
    assert all(pt.params["n"] == 3 for pt in q.points)
    assert len({pt.name for pt in q.points}) == 4  # distinct folders


@pytest.mark.parametrize("axes, message", [
    (["nope=1,2"], "has no parameter 'nope'"),
    (["n=2,0"], "parameter n = 0 (-p) is out of range: it must lie in [1, inf)"),
    (["scale=1..3"], "a range a..b is for int parameters and scale is a float"),
    (["seed=3..1"], "the range 3..1 is empty"),
    (["seed=0..x"], "write an inclusive range of integers as a..b"),
    (["seed=0,1,0"], "lists the value 0 twice"),
    (["seed=0,,1"], "has an empty value"),
    (["seed=0", "seed=1"], "is given twice"),
    (["seed=1.5"], "is not an integer"),
    (["seed=0", "save=true,false"], "a sweep never writes the shipped data/"),
    ([], "give at least one axis"),
])
def test_bad_grids_are_refused_before_anything_runs(sproject: Path, capsys, axes, message):
    args = ["--root", str(sproject), "sweep", "demo/02_noise", "--quiet", *[f"-p{a}" for a in axes]]
    assert rli(args) == 2
    assert message in capsys.readouterr().err
    assert not (sproject / "runs").exists()


def test_declared_sweeps_are_read_and_checked(sproject: Path):
    [d] = sweep.declared(sproject)
    assert (d.name, d.analysis, d.read_by, d.x, d.y) == ("demo/robustness", "demo/02_noise", ("demo/03_robust",),
                                                          "scale", "mean")
    assert d.plan().axes == {"scale": [0.5, 2.0], "seed": [0, 1]}
    assert d.plan("smoke").axes == {"scale": [0.5], "seed": [0, 1]}
    assert [s.name for s in sweep.declared_for(an.get(sproject, "demo/03_robust"))] == ["demo/robustness"]
    assert sweep.declared_for(an.get(sproject, "demo/01_x")) == []
    toml = sproject / "analyses/demo/sweeps.toml"
    for body, message in [("[r]\nanalysis = '02_noise'\n", "needs analysis"),
                          ("[r]\nanalysis = '02_noise'\ngrid = { seed = '0..1' }\nwhen = 1\n", "unknown key(s) when"),
                          ("[r]\nanalysis = '02_noise'\ngrid = { seed = {a = 1} }\n", "grid.seed"),
                          ("[01_x]\nanalysis = '02_noise'\ngrid = { seed = '0' }\n", "does not look like a chapter")]:
        toml.write_text(body)
        with pytest.raises(sweep.SweepError, match=message.replace("(", r"\(").replace(")", r"\)")):
            sweep.declared(sproject)


# ----------------------------------------------------------------------------------------------------- record()
def test_record_keeps_scalars_and_writes_strict_json(tmp_path: Path, monkeypatch):
    torch = pytest.importorskip("torch")
    path = tmp_path / "results.json"
    monkeypatch.setenv(report.RESULTS_ENV, str(path))
    monkeypatch.setattr(report, "recorded", {})
    assert report.record("a", np.float32(0.5)) == np.float32(0.5)  # returns the value unchanged
    report.record("b", torch.tensor(3))
    report.record("c", float("nan"))
    report.record("d", "label")
    report.record("a", 1.25)  # recording again replaces
    stored = json.loads(path.read_text())  # strict JSON: no bare NaN
    assert stored == {"a": 1.25, "b": 3, "c": {"float": "nan"}, "d": "label"}
    assert math.isnan(report.decode_result(stored["c"])) and report.decode_result(stored["b"]) == 3
    for name, value, error in [("1x", 1, "identifier"), ("status", 1, "column of every sweep table"),
                               ("v", [1, 2], "one number, bool or string"), ("v", np.ones(2), "one number")]:
        with pytest.raises((ValueError, TypeError), match=error):
            report.record(name, value)


# ------------------------------------------------------------------------------- running, caching, failures, table
def test_sweep_isolates_points_reports_failures_and_reruns_only_failed(sproject: Path, capsys, monkeypatch):
    args = ["--root", str(sproject), "sweep", "demo/02_noise", "-p", "scale=0.5,2", "-p", "seed=0..1", "--jobs", "2",
            "--quiet"]
    monkeypatch.setenv("DEMO_FAIL_SEED", "1")  # a transient failure of the seed-1 points
    assert rli(args) == 1  # a failed point: nonzero exit, the others still ran
    err = capsys.readouterr().err
    assert "--- point scale=0.5,seed=1 of sweep demo/02_noise failed ---" in err
    assert "failed in cell" in err and "raise ValueError" in err and "ValueError: seed 1 fails on purpose" in err
    out = sproject / "runs/sweeps/demo/02_noise"
    failed_dir = out / "points/scale=2.0,seed=1"
    assert "seed 1 fails on purpose" in (failed_dir / "error.txt").read_text()
    assert (failed_dir / "paper/demo/02_noise.failed.ipynb").exists()
    assert not (failed_dir / "paper/demo/02_noise.ipynb").exists()
    table = pd.read_csv(out / "results.csv")
    assert list(table["status"]) == ["ok", "failed", "ok", "failed"]
    assert table.loc[table.status == "failed", "mean"].isna().all()
    log = json.loads((out / "sweep.json").read_text())
    assert [p["status"] for p in log["points"]] == ["executed", "failed", "executed", "failed"]

    # isolation: each point wrote its relative file into its own work/, nothing into the project
    for scale in (0.5, 2.0):
        for seed in (0, 1):
            written = (out / f"points/scale={scale},seed={seed}/work/draws.txt").read_text().split()
            np.testing.assert_allclose([float(v) for v in written], draws(50, scale, seed), atol=1e-6)
    assert not (sproject / "draws.txt").exists() and not (sproject / "paper/demo/02_noise.ipynb").exists()
    assert not (sproject / "data").exists()
    good = out / "points/scale=0.5,seed=0/paper/demo/02_noise.ipynb"
    stamp = good.stat().st_mtime_ns

    # the failure is gone: a rerun executes only the two failed points
    monkeypatch.delenv("DEMO_FAIL_SEED")
    res = sweep.execute(sweep.plan(sproject, "demo/02_noise", ["scale=0.5,2", "seed=0..1"]), jobs=2, progress=False)
    assert [s.status for s in res.points] == ["cached", "executed", "cached", "executed"]
    assert good.stat().st_mtime_ns == stamp and not (failed_dir / "error.txt").exists()
    assert not (failed_dir / "paper/demo/02_noise.failed.ipynb").exists()

    # the table: one row per point in grid order, its parameters, then the recorded results by name
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == ["point", "scale", "seed", "status", "label", "mean", "n_draws", "sd"]
    assert list(table["point"]) == ["scale=0.5,seed=0", "scale=0.5,seed=1", "scale=2.0,seed=0", "scale=2.0,seed=1"]
    for row in table.itertuples():
        x = draws(50, row.scale, row.seed)
        assert row.status == "ok" and row.label == f"s{row.seed}" and row.n_draws == 50
        assert row.mean == pytest.approx(x.mean(), rel=1e-12) and row.sd == pytest.approx(x.std(ddof=1), rel=1e-6)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), res.table)
    assert str(res.table["n_draws"].dtype) == "Int64"
    assert (out / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # a changed input (lib/ source) makes every point stale again
    (sproject / "lib/demo/helper.py").write_text("VALUE = 2\n")
    stale = sweep.plan(sproject, "demo/02_noise", ["scale=0.5,2", "seed=0..1"])
    assert not any(runner.is_fresh(stale.analysis, pt.params, pt.folder(stale.out)) for pt in stale.points)
    assert set(sweep.gather(stale)["status"]) == {"failed"}


@pytest.fixture
def local_ray():
    """A local Ray instance with 2 CPUs (or the cluster at RLI_TEST_RAY_ADDRESS: on a machine too loaded for Ray's
    start-up deadlines, start one beforehand with `ray start --head --num-cpus 2`)."""
    ray = pytest.importorskip("ray", reason="the Ray backend is the [cluster] extra: pip install -e '.[cluster]'")
    address = os.environ.get("RLI_TEST_RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        except Exception as e:  # Ray's raylet gives its agents 15 s to start (ray-project/ray#65983)
            ray.shutdown()
            if "timed out during startup" not in str(e):
                raise
            pytest.skip(f"Ray could not start on this loaded machine ({e}); the stand-in test below still runs "
                        f"the Ray driver code; set RLI_TEST_RAY_ADDRESS to a running `ray start --head` to test it")
    yield ray
    ray.shutdown()


class _StandInRay:
    """Ray's API as sweep._ray uses it, run in this process: remote() returns a ref, wait() hands back refs in
    reverse submission order (so completion order differs from submission order), get() returns or raises."""

    def __init__(self):
        self.initialised, self.inits, self.shutdowns, self.remote_options = False, [], 0, None

    def is_initialized(self):
        return self.initialised

    def init(self, address=None, **kw):
        self.inits.append(address)
        self.initialised = True

    def shutdown(self):
        self.shutdowns += 1
        self.initialised = False

    def remote(self, **options):
        self.remote_options = options

        def wrap(fn):
            class Task:
                @staticmethod
                def remote(*args):
                    return _Ref(fn, args)
            return Task
        return wrap

    def wait(self, refs, num_returns=1):
        return [refs[-1]], refs[:-1]

    def get(self, ref):
        return ref.fn(*ref.args)


class _Ref:
    """An object reference: hashable by identity, like ray.ObjectRef."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args


def test_ray_driver_with_a_stand_in_gives_the_pool_table(sproject: Path, tmp_path: Path, monkeypatch):
    fake = _StandInRay()
    monkeypatch.setitem(sys.modules, "ray", fake)
    grid = ["scale=0.5,2", "seed=0..1"]
    pool = sweep.execute(sweep.plan(sproject, "demo/02_noise", grid, out=tmp_path / "pool"), jobs=2, progress=False)
    on_ray = sweep.execute(sweep.plan(sproject, "demo/02_noise", grid, out=tmp_path / "ray"),
                           ray_address="ray://head:10001", progress=False)
    assert fake.inits == ["ray://head:10001"] and fake.shutdowns == 1  # started by the sweep, so stopped by it
    assert fake.remote_options == {"num_cpus": 1, "max_retries": 0}
    assert [s.status for s in on_ray.points] == ["executed"] * 4
    assert (tmp_path / "pool/results.csv").read_bytes() == (tmp_path / "ray/results.csv").read_bytes()
    assert (tmp_path / "ray/points/scale=2.0,seed=1/work/draws.txt").exists()


def test_process_pool_and_ray_give_identical_tables(sproject: Path, local_ray, tmp_path: Path):
    grid = ["scale=0.5,2", "seed=0..1"]
    pool = sweep.execute(sweep.plan(sproject, "demo/02_noise", grid, out=tmp_path / "pool"), jobs=2, progress=False)
    on_ray = sweep.execute(sweep.plan(sproject, "demo/02_noise", grid, out=tmp_path / "ray"), use_ray=True,
                           progress=False)
    assert [s.status for s in on_ray.points] == ["executed"] * 4 and not pool.failed
    assert (tmp_path / "pool/results.csv").read_bytes() == (tmp_path / "ray/results.csv").read_bytes()
    pd.testing.assert_frame_equal(pool.table, on_ray.table)
    assert (tmp_path / "ray/points/scale=2.0,seed=1/work/draws.txt").exists()  # the task's files came back


# ------------------------------------------------------------------------------------------------ declared sweep
def test_a_declared_sweep_runs_before_the_chapter_that_reads_it(sproject: Path, capsys, monkeypatch):
    build = sproject / "_build/smoke"
    assert rli(["--root", str(sproject), "run", "demo/03_robust", "--profile", "smoke", "--quiet"]) == 0
    assert "sweep demo/robustness: 2 points: 2 executed" in capsys.readouterr().out
    folder = build / "runs/sweeps/demo/robustness"
    table = pd.read_csv(folder / "results.csv")
    assert list(table["point"]) == ["scale=0.5,seed=0", "scale=0.5,seed=1"]
    chapter = json.loads((build / "paper/demo/03_robust.ipynb").read_text())
    results = chapter["metadata"]["rlinterp"]["results"]
    assert results["points"] == 2
    assert results["grand_mean"] == pytest.approx((draws(50, 0.5, 0).mean() + draws(50, 0.5, 1).mean()) / 2)

    # the table is an input of the reading chapter: another table makes it stale
    a = an.get(sproject, "demo/03_robust")
    _, _, params = runner.resolve(sproject, "demo/03_robust", {}, "smoke")
    assert runner.is_fresh(a, params, build)
    (folder / "results.csv").write_text((folder / "results.csv").read_text().replace("0.5,0,ok", "0.5,0,failed"))
    assert not runner.is_fresh(a, params, build)

    # rli build runs the declared sweep first (its table is gathered again from the points: the chapter is up to
    # date again), then the chapters; a grown grid changes the table and so reruns the chapter that reads it
    toml = sproject / "analyses/demo/sweeps.toml"
    toml.write_text(toml.read_text().replace("seed = [0, 1] }", "seed = [0, 1, 2] }"))
    assert rli(["--root", str(sproject), "build", "--profile", "smoke", "--no-render", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "sweep demo/robustness: 3 points: 1 executed, 2 up to date, 0 failed" in out
    assert "demo/03_robust: executed" in out and runner.is_fresh(a, params, build)
    chapter = json.loads((build / "paper/demo/03_robust.ipynb").read_text())
    assert chapter["metadata"]["rlinterp"]["results"]["points"] == 3
    assert "sweep demo/robustness: 3 points: 0 executed, 3 up to date" in _run_quiet(sproject, capsys)
    monkeypatch.setenv("RLI_OUT", str(build))  # what `rli run` tells the chapter's kernel
    assert len(sweep.load("demo/robustness")) == 3
    (folder / "results.csv").write_text((folder / "results.csv").read_text().replace(",ok", ",failed", 1))
    with pytest.raises(sweep.SweepError, match="1 of 3 points failed"):  # a chapter refuses a table with failures
        sweep.load("demo/robustness")
    assert len(sweep.load("demo/robustness", allow_failed=True)) == 3


def _run_quiet(root: Path, capsys) -> str:
    """`rli run demo/03_robust --profile smoke` once more: its sweep and the chapter are up to date."""
    assert rli(["--root", str(root), "run", "demo/03_robust", "--profile", "smoke", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "demo/03_robust: up to date" in out
    return out
