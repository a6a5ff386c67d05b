"""``rli sweep``: one analysis over a grid of parameters, each point an isolated, cached ``rli run``.

    rli sweep coinflip/01_game -p sigma=0.1,0.3,0.5 -p seed=0..4    # 15 points on a local process pool
    rli sweep coinflip/01_game -p sigma=0.1,0.3 --ray auto          # as Ray tasks on a running cluster
    rli sweep STUDY/NAME                                            # a sweep declared in analyses/STUDY/sweeps.toml

**Grid.** Each ``-p name=v1,v2,…`` is an axis; the grid is the product of the axes, in the order given. ``a..b`` is
the inclusive range of ints (``seed=0..4``; only for int parameters); a list parameter's values are separated by
``;`` (``-p offsets="0,1;2,3"``: two points). Every value is cast and checked by the code that checks ``rli run -p``
(:func:`rlinterp.pipeline.analyses.validate`), every point before anything runs; ``save=true`` is refused (a
sweep never replaces the shipped ``data/``).

**Points.** A point is ``rli run ANALYSIS -p …`` (:func:`rlinterp.pipeline.run.run`: papermill, the parameters as
executed, the cache key) executed in a private temporary folder that becomes ``OUT/points/<point>/``: the executed
notebook ``paper/<study>/NN_topic.ipynb`` (``.failed.ipynb`` and ``error.txt`` on failure) and ``work/``, the kernel's
working directory (whatever the chapter writes with a relative path). A point whose notebook records the current
cache key is not run again, so a rerun redoes only failed or changed points (``force`` redoes all).

**Results.** A chapter declares its scalar results with :func:`rlinterp.pipeline.report.record`; ``rli run``
stores them in the notebook's metadata and the sweep gathers them, with each point's parameters, into
``OUT/results.csv`` (and ``results.parquet`` if pyarrow is installed): columns ``point``, one per axis, ``status``
(``ok``/``failed``), then the results. ``OUT/summary.png`` plots one result against one axis (means over the seeds
with a t interval, one line per value of the other axes); ``OUT/sweep.json`` logs the grid and each point's status,
time and error.

**Backends.** A local process pool (``jobs`` processes, default: the CPUs this process may use), or with
``ray_address`` (``--ray ADDRESS`` or ``RAY_ADDRESS``) one Ray task per point on that cluster
(``ray.init(address=...)``; Ray is the optional extra ``pip install -e .[cluster]``). A task returns its files to
the driver, which writes them, so the nodes need the project and its environment at the same path but no shared
output folder. Both backends run the same function (:func:`execute_point`) and give the same table.

**Declared sweeps.** ``analyses/<study>/sweeps.toml`` declares a sweep that chapters read::

    [robustness]
    analysis = "01_x"                 # the swept chapter of this study
    grid = { n = "2..4", seed = [0, 1] }   # a string as after `-p name=`, or an array of values
    read_by = ["02_y"]                # chapters that read the table: sweep.load("demo/robustness")
    x = "n"                           # optional: the summary figure's axis and result
    y = "total"

    [robustness.profiles.smoke]       # optional: another grid under a profile
    grid = { n = "2..3", seed = [0] }

Its points run with the build's profile and its table lives at ``<build>/runs/sweeps/<study>/<name>/``. ``rli
build`` runs every declared sweep before the chapters, ``rli run`` of a reading chapter runs its sweeps first, and
the table is part of the reading chapter's cache key, so the chapter reruns when the table changes.
"""
from __future__ import annotations

import hashlib
import importlib.util
import io
import itertools
import json
import math
import os
import re
import shutil
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import run as runner
from rlinterp.pipeline.manifest import atomic_write_bytes

INT_RANGE = re.compile(r"^([+-]?\d+)\s*\.\.\s*([+-]?\d+)$")
TABLE = "results.csv"


class SweepError(ValueError):
    """A sweep that cannot run as declared (a bad sweeps.toml, a missing table); nothing was executed."""


# ------------------------------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Point:
    values: dict[str, Any]  # the axis values, typed
    overrides: dict[str, str]  # the same as `rli run -p` text
    params: dict[str, Any]  # every effective parameter (defaults, profile, overrides)
    name: str  # the folder under OUT/points/: "n=3,seed=0"

    def folder(self, out: Path) -> Path:
        return Path(out) / "points" / self.name


@dataclass
class Plan:
    """A validated sweep: the analysis, its profile, the axes and every point, and where it writes."""
    root: Path
    analysis: an.Analysis
    profile: str | None
    axes: dict[str, list[Any]]
    points: list[Point]
    out: Path
    x: str | None = None  # summary figure: the axis and the result (None: chosen from the table)
    y: str | None = None

    def chapter(self, point: Point) -> Path:
        return self.analysis.chapter(point.folder(self.out))


def parse_axes(pairs: list[str]) -> dict[str, str]:
    """``["n=2,3", "seed=0..4"]`` -> ``{"n": "2,3", "seed": "0..4"}`` (split and cast later, by declared type)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise an.ParameterError(f"sweep parameter {pair!r} must be written name=v1,v2,... (or name=a..b)")
        name, text = (s.strip() for s in pair.split("=", 1))
        if name in out:
            raise an.ParameterError(f"sweep parameter {name!r} is given twice; give all its values in one "
                                    f"-p {name}=v1,v2,...")
        out[name] = text
    return out


def split_values(param: an.Param, text: str) -> list[str]:
    """The values of one axis as ``-p`` texts: split at ``,`` (``;`` for a list parameter), ``a..b`` expanded."""
    is_list = param.type.startswith("list[")
    sep = ";" if is_list else ","
    tokens = [t.strip() for t in text.split(sep)]
    if not text.strip() or any(t == "" for t in tokens):
        raise an.ParameterError(f"sweep parameter {param.name}={text!r} has an empty value; write "
                                + (f"{param.name}=1,2;3,4 (lists separated by ';')" if is_list else
                                   f"{param.name}=v1,v2,... or {param.name}=a..b"))
    values: list[str] = []
    for token in tokens:
        m = INT_RANGE.match(token)
        if m and not is_list:
            if param.type != "int":
                raise an.ParameterError(f"sweep parameter {param.name}={text!r}: a range a..b is for int parameters "
                                        f"and {param.name} is a {param.type}; list its values")
            lo, hi = int(m.group(1)), int(m.group(2))
            if lo > hi:
                raise an.ParameterError(f"sweep parameter {param.name}={text!r}: the range {token} is empty "
                                        f"(write a..b with a <= b; both ends are included)")
            values += [str(v) for v in range(lo, hi + 1)]
        elif ".." in token and param.type == "int":
            raise an.ParameterError(f"sweep parameter {param.name}={text!r}: cannot read {token!r}; write an "
                                    f"inclusive range of integers as a..b, e.g. {param.name}=0..4")
        else:
            values.append(token)
    return values


def _slug(values: dict[str, Any]) -> str:
    """A point's folder name from its axis values: ``n=3,sigma=0.3``; odd characters or a long name add a hash."""
    def text(v: Any) -> str:
        return ";".join(text(e) for e in v) if isinstance(v, list) else (str(v).lower() if isinstance(v, bool)
                                                                         else str(v))

    raw = ",".join(f"{k}={text(v)}" for k, v in values.items())
    safe = re.sub(r"[^A-Za-z0-9._=,+-]", "_", raw)
    if safe != raw or len(safe) > 120:
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:10]
        safe = f"{safe[:100]}-{digest}"
    return safe


def plan(root: Path, name: str, pairs: list[str] | dict[str, str], *, profile: str | None = None,
         out: Path | None = None, x: str | None = None, y: str | None = None) -> Plan:
    """Validate a sweep of analysis ``name`` over the axes ``pairs`` (``-p`` texts); nothing is executed.

    ``out`` defaults to ``root/runs/sweeps/<study>/<NN_topic>``."""
    axes_text = parse_axes(pairs) if isinstance(pairs, list) else dict(pairs)
    analysis, nb, _ = runner.resolve(root, name, {}, profile)
    if not axes_text:
        raise an.ParameterError(f"rli sweep {analysis.name}: give at least one axis, e.g. -p seed=0..4 "
                                f"(parameters: {', '.join(an.parameters(analysis, nb))})")
    if declared_for(analysis):
        raise SweepError(f"{analysis.name} reads a declared sweep ({', '.join(s.name for s in declared_for(analysis))})"
                         f"; a swept analysis cannot read another sweep's table")
    spec = an.parameters(analysis, nb)
    layer = an.profile(root, analysis, profile)
    axes: dict[str, list[Any]] = {}
    texts: dict[str, list[str]] = {}
    for pname, text in axes_text.items():
        if pname not in spec:
            an.validate(analysis, spec, {pname: text})  # the error `rli run -p` gives for an unknown name
        texts[pname] = split_values(spec[pname], text)
        axes[pname] = [an.validate(analysis, spec, {pname: t})[pname] for t in texts[pname]]
        for i, v in enumerate(axes[pname]):
            if v in axes[pname][:i]:
                raise an.ParameterError(f"sweep parameter {pname}={text!r} lists the value {v!r} twice")
    points = []
    for combo in itertools.product(*(range(len(v)) for v in axes.values())):
        overrides = {p: texts[p][i] for p, i in zip(axes, combo)}
        values = {p: axes[p][i] for p, i in zip(axes, combo)}
        params = an.validate(analysis, spec, layer, overrides)
        if params.get("save") is True:
            raise an.ParameterError(f"{analysis.name}: a sweep never writes the shipped data/, and point "
                                    f"{_slug(values)} has save=true; sweep without save")
        points.append(Point(values, overrides, params, _slug(values)))
    default_out = Path(root) / "runs" / "sweeps" / analysis.name
    return Plan(Path(root), analysis, profile, axes, points, Path(out or default_out).resolve(), x, y)


# --------------------------------------------------------------------------------------------- one point, anywhere
def execute_point(root: str, analysis: str, overrides: dict[str, str], profile: str | None) -> dict[str, Any]:
    """Run one point (``rli run`` into a private temporary folder) and return its outcome and every file it wrote.

    This is the task of both backends (a process of the pool or a Ray task on any node): ``{"status": "executed" |
    "failed", "seconds", "error" (failing cell and traceback), "files": {relative path: bytes}, "tmp"}``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="rli-sweep-") as tmp:
        work = Path(tmp) / "work"
        work.mkdir()
        status, error = "executed", None
        try:
            runner.run(Path(root), analysis, overrides, profile=profile, force=True, out=Path(tmp),
                       progress=False, workdir=work)
        except runner.AnalysisFailed as e:
            status, error = "failed", str(e)
        except Exception as e:  # noqa: BLE001 -- any error of one point is reported with the point, not raised
            import traceback

            status, error = "failed", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"
        files = {p.relative_to(tmp).as_posix(): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
    return {"status": status, "seconds": time.perf_counter() - t0, "error": error, "files": files, "tmp": tmp}


def _install(folder: Path, outcome: dict[str, Any]) -> None:
    """Replace ``folder`` by the files of ``outcome`` (written beside it first, then swapped in)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.new-"))
    for rel, payload in outcome["files"].items():
        target = staging / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(payload)
    (staging / "work").mkdir(exist_ok=True)
    if outcome["error"]:
        (staging / "error.txt").write_text(outcome["error"] + "\n")
    old = None
    if folder.exists():
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        folder.rename(old)
    staging.rename(folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------------------- backends
def default_jobs() -> int:
    """The CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _local(todo: list[tuple[Point, tuple]], jobs: int, done) -> None:
    if jobs <= 1 or len(todo) <= 1:
        for point, args in todo:
            done(point, execute_point(*args))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    # spawn: a fresh interpreter per worker (no forked threads of the driver); each point starts its own kernel
    with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(execute_point, *args): point for point, args in todo}
        try:
            for fut in as_completed(futures):
                try:
                    outcome = fut.result()
                except Exception as e:  # noqa: BLE001 -- the worker process died (killed, out of memory)
                    outcome = _lost(f"the worker process of this point died: {type(e).__name__}: {e}")
                done(futures[fut], outcome)
        except BaseException:
            pool.shutdown(cancel_futures=True)
            raise


def _lost(error: str) -> dict[str, Any]:
    """The outcome of a point whose worker died before returning one."""
    return {"status": "failed", "seconds": 0.0, "files": {}, "tmp": "", "error": error}


def _ray(todo: list[tuple[Point, tuple]], address: str | None, done) -> None:
    try:
        import ray
    except ImportError:
        raise SweepError("the Ray backend needs Ray: pip install -e '.[cluster]' (or drop --ray / unset "
                         "RAY_ADDRESS to use the local process pool)") from None
    started = False
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False)
        started = True
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(execute_point)
        pending = {task.remote(*args): point for point, args in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                point = pending.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as e:  # noqa: BLE001 -- the task itself died (node lost, worker killed)
                    outcome = _lost(f"the Ray task of this point failed: {type(e).__name__}: {e}")
                done(point, outcome)
    finally:
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------------- the sweep
@dataclass
class PointStatus:
    point: Point
    status: str  # "executed" | "cached" | "failed"
    seconds: float = 0.0
    error: str | None = None


@dataclass
class SweepResult:
    plan: Plan
    points: list[PointStatus] = field(default_factory=list)
    table: Any = None  # pandas DataFrame
    outputs: list[Path] = field(default_factory=list)

    @property
    def failed(self) -> list[PointStatus]:
        return [p for p in self.points if p.status == "failed"]

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.points)


def execute(p: Plan, *, jobs: int | None = None, ray_address: str | None = None, use_ray: bool = False,
            force: bool = False, progress: bool = True) -> SweepResult:
    """Run every point of ``p`` that is not up to date, then gather the table, the figure and the log.

    ``use_ray`` (or a ``ray_address``) runs the points as Ray tasks (on the already initialised Ray, else
    ``ray.init(address=ray_address)``); otherwise a local process pool of ``jobs`` (default :func:`default_jobs`)."""
    from rlinterp.progress import tqdm

    result = SweepResult(p)
    statuses: dict[str, PointStatus] = {}
    todo = []
    for point in p.points:
        if not force and runner.is_fresh(p.analysis, point.params, point.folder(p.out)):
            statuses[point.name] = PointStatus(point, "cached")
        else:
            todo.append((point, (str(p.root), p.analysis.name, point.overrides, p.profile)))
    bar = tqdm(total=len(p.points), initial=len(p.points) - len(todo), desc=f"sweep {p.analysis.name}",
               unit="point", disable=not progress)

    def done(point: Point, outcome: dict[str, Any]) -> None:
        folder = point.folder(p.out)
        error = outcome["error"]
        if error and outcome.get("tmp"):
            error = error.replace(outcome["tmp"], str(folder))  # the failed notebook's final place
        outcome = dict(outcome, error=error)
        status = outcome["status"]
        if status == "executed" and _recorded_key(p, outcome) != runner.cache_key(
                p.analysis, point.params, runner.sweep_inputs(p.analysis, folder)):
            status = "failed"  # the task saw other sources than this checkout (a cluster node, an edit meanwhile)
            outcome["error"] = (f"point {point.name} ran on sources that differ from this checkout's (its cache key "
                                f"differs): every Ray node needs this project at {p.root} with the same files, and "
                                f"nothing may change during a sweep")
        _install(folder, outcome)
        statuses[point.name] = PointStatus(point, status, outcome["seconds"], outcome["error"])
        bar.update(1)
        bar.set_postfix(failed=sum(s.status == "failed" for s in statuses.values()), refresh=False)

    try:
        if todo and (use_ray or ray_address):
            _ray(todo, ray_address, done)
        elif todo:
            _local(todo, jobs or default_jobs(), done)
    finally:
        bar.close()
    result.points = [statuses[pt.name] for pt in p.points]
    result.table = gather(p)
    result.outputs = write_outputs(p, result)
    return result


def _recorded_key(p: Plan, outcome: dict[str, Any]) -> str | None:
    """The cache key recorded in the executed chapter among an outcome's files (None: there is none)."""
    payload = outcome["files"].get(p.analysis.chapter(Path("out")).relative_to("out").as_posix())
    try:
        return json.loads(payload)["metadata"]["rlinterp"]["cache_key"] if payload else None
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def point_results(chapter: Path) -> dict[str, Any]:
    """The results recorded (:func:`rlinterp.pipeline.report.record`) in an executed chapter."""
    from rlinterp.pipeline.report import decode_result

    meta = json.loads(chapter.read_text())["metadata"].get("rlinterp", {})
    return {k: decode_result(v) for k, v in meta.get("results", {}).items()}


def _cell(v: Any) -> Any:
    return json.dumps(v) if isinstance(v, list) else v


def gather(p: Plan):
    """The sweep's table, read from the points' notebooks: one row per point in grid order (``point``, the axes,
    ``status``, the results); a point is ``ok`` when its notebook holds the current cache key."""
    import pandas as pd

    rows = []
    for point in p.points:
        ok = runner.is_fresh(p.analysis, point.params, point.folder(p.out))
        results = point_results(p.chapter(point)) if ok else {}
        clash = sorted(set(results) & set(p.axes))
        if clash:
            raise SweepError(f"{p.analysis.name} records result(s) named like swept parameters: {', '.join(clash)}; "
                             f"rename them in the record(...) calls")
        rows.append({"point": point.name, **{k: _cell(v) for k, v in point.values.items()},
                     "status": "ok" if ok else "failed", **results})
    table = pd.DataFrame(rows)
    for col in table.columns[2 + len(p.axes):]:  # a result missing at a failed point keeps its ints ints
        present = [r[col] for r in rows if col in r]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            table[col] = pd.array([r.get(col) for r in rows], dtype="Int64")
    return table


def write_outputs(p: Plan, result: SweepResult) -> list[Path]:
    """``results.csv`` (+ ``.parquet`` with pyarrow), ``summary.png`` (when the table has a number to plot) and
    ``sweep.json`` under the sweep's folder; returns the paths written."""
    table = result.table
    p.out.mkdir(parents=True, exist_ok=True)
    outputs = [p.out / TABLE]
    atomic_write_bytes(outputs[0], table.to_csv(index=False).encode())
    if importlib.util.find_spec("pyarrow") is not None:  # Parquet only where pyarrow is installed
        atomic_write_bytes(p.out / "results.parquet", _parquet_bytes(table))
        outputs.append(p.out / "results.parquet")
    fig_path = p.out / "summary.png"
    if summary_figure(table, p, fig_path):
        outputs.append(fig_path)
    log = {"analysis": p.analysis.name, "profile": p.profile or "default",
           "axes": {k: [_cell(v) for v in vs] for k, vs in p.axes.items()},
           "points": [{"point": s.point.name, "status": s.status, "seconds": round(s.seconds, 2),
                       "error": s.error, "folder": str(s.point.folder(p.out).relative_to(p.out))}
                      for s in result.points],
           "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    atomic_write_bytes(p.out / "sweep.json", (json.dumps(log, indent=2) + "\n").encode())
    outputs.append(p.out / "sweep.json")
    return outputs


def _parquet_bytes(table) -> bytes:
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return buf.getvalue()


def _numeric(series) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def summary_figure(table, p: Plan, path: Path) -> bool:
    """Plot result ``p.y`` against axis ``p.x``: the mean over the seeds (and any axis not drawn) with its 95% t
    interval, one line per combination of the other axes. Defaults: the first axis other than ``seed`` with more
    than one value, the first numeric result. Returns False (nothing written) when there is nothing to plot."""
    from matplotlib.figure import Figure

    from rlinterp.stats import mean_interval

    ok = table[table["status"] == "ok"] if len(table) else table
    results = [c for c in table.columns if c not in {"point", "status", *p.axes}]
    for given, known, what in ((p.x, list(p.axes), "axis"), (p.y, results, "result")):
        if given is not None and given not in known:
            raise SweepError(f"summary figure: {given!r} is not a swept {what} of {p.analysis.name}; "
                             f"choose from {', '.join(known) or '(none)'}")
    y = p.y or next((c for c in results if _numeric(ok[c])), None)
    varied = [a for a in p.axes if len(p.axes[a]) > 1]
    x = p.x or next((a for a in varied if a != "seed"), varied[0] if varied else None)
    if y is None or x is None or ok.empty or not _numeric(ok[y]):
        return False
    others = [a for a in varied if a not in (x, "seed")]
    groups = list(ok.groupby(others, sort=False)) if others else [((), ok)]
    if len(groups) > 8:  # too many lines to read: average over the other axes too
        groups, others = [((), ok)], []
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.add_subplot()
    xs_all = list(dict.fromkeys(ok[x]))
    numeric_x = _numeric(ok[x])
    for key, g in groups:
        key = key if isinstance(key, tuple) else (key,)
        xs, means, halves = [], [], []
        for xv in xs_all:
            vals = g.loc[g[x] == xv, y].astype(float).to_numpy()
            vals = vals[~(vals != vals)]  # drop NaN
            if len(vals) == 0:
                continue
            m, lo, hi = mean_interval(vals, method="t")
            xs.append(xv if numeric_x else xs_all.index(xv))
            means.append(m)
            halves.append(0.0 if math.isnan(hi) else (hi - lo) / 2)
        label = ", ".join(f"{a}={v}" for a, v in zip(others, key)) or None
        ax.errorbar(xs, means, yerr=halves, marker="o", capsize=3, label=label)
    if not numeric_x:
        ax.set_xticks(range(len(xs_all)), [str(v) for v in xs_all])
    elif len(xs_all) <= 12:  # the swept values themselves, not matplotlib's round numbers between them
        ax.set_xticks(xs_all, [f"{v:g}" for v in xs_all])
    n_seeds = len(p.axes.get("seed", [None]))
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{p.analysis.name}: {y} vs {x}" + (f" (mean ± 95% t interval, {n_seeds} seeds)"
                                                     if n_seeds > 1 else ""), fontsize=9)
    if others:
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    atomic_write_bytes(path, buf.getvalue())
    return True


# --------------------------------------------------------------------------------------------- declared sweeps
@dataclass(frozen=True)
class Declared:
    """A sweep declared in ``analyses/<study>/sweeps.toml`` (see the module docstring)."""
    study: str
    key: str  # the table's name in sweeps.toml
    analysis: str  # "study/NN_topic"
    grid: dict[str, str]  # default grid, -p texts
    profile_grids: dict[str, dict[str, str]]
    read_by: tuple[str, ...]  # "study/NN_topic" of the chapters that read it
    x: str | None
    y: str | None
    root: Path

    @property
    def name(self) -> str:
        return f"{self.study}/{self.key}"

    def folder(self, out: Path | None = None) -> Path:
        return Path(out or self.root) / "runs" / "sweeps" / self.study / self.key

    def table_path(self, out: Path | None = None) -> Path:
        return self.folder(out) / TABLE

    def plan(self, profile: str | None = None, out: Path | None = None) -> Plan:
        grid = self.profile_grids.get(profile or "default", self.grid)
        return plan(self.root, self.analysis, grid, profile=profile, out=self.folder(out), x=self.x, y=self.y)


def _grid_text(value: Any, where: str) -> str:
    def one(v: Any) -> str:
        if isinstance(v, bool):
            return str(v).lower()
        if isinstance(v, list):
            return ",".join(one(e) for e in v)
        if isinstance(v, (int, float, str)):
            return str(v)
        raise SweepError(f"{where}: cannot read the value {v!r}")

    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        sep = ";" if any(isinstance(v, list) for v in value) else ","
        return sep.join(one(v) for v in value)
    raise SweepError(f"{where}: give the values as a string (as after -p name=) or a non-empty array, "
                     f"got {value!r}")


def _read_declared(root: Path, path: Path) -> list[Declared]:
    study = path.parent.name
    where = str(path.relative_to(root))
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{where} is not valid TOML: {e}") from None
    out = []
    for key, entry in table.items():
        at = f"{where} [{key}]"
        if not isinstance(entry, dict):
            raise SweepError(f"{at} must be a table with analysis, grid and read_by")
        unknown = sorted(set(entry) - {"analysis", "grid", "read_by", "x", "y", "profiles"})
        if unknown:
            raise SweepError(f"{at}: unknown key(s) {', '.join(unknown)}; known: analysis, grid, read_by, x, y, "
                             f"profiles")
        if not re.fullmatch(r"[A-Za-z0-9_-]+", key) or re.fullmatch(r"\d\d_.*", key):
            raise SweepError(f"{at}: a sweep's name is letters, digits, '_' or '-' and does not look like a "
                             f"chapter (NN_topic)")
        if not isinstance(entry.get("analysis"), str) or not isinstance(entry.get("grid"), dict) \
                or not entry["grid"]:
            raise SweepError(f"{at} needs analysis = \"NN_topic\" (a chapter of {study}) and a non-empty "
                             f"grid = {{ name = \"v1,v2\", ... }}")
        read_by = entry.get("read_by", [])
        if not isinstance(read_by, list) or not all(isinstance(r, str) for r in read_by):
            raise SweepError(f"{at}: read_by is a list of chapters, e.g. read_by = [\"02_summary\"]")

        def grid(g: dict, at: str) -> dict[str, str]:
            return {k: _grid_text(v, f"{at} grid.{k}") for k, v in g.items()}

        profiles = {}
        for prof, sub in (entry.get("profiles") or {}).items():
            if not isinstance(sub, dict) or set(sub) != {"grid"} or not isinstance(sub["grid"], dict):
                raise SweepError(f"{at}.profiles.{prof} holds one key, grid = {{ ... }}")
            profiles[prof] = grid(sub["grid"], f"{at}.profiles.{prof}")
        qualify = (lambda c: c if "/" in c else f"{study}/{c}")
        out.append(Declared(study, key, qualify(entry["analysis"]), grid(entry["grid"], at), profiles,
                            tuple(qualify(r) for r in read_by), entry.get("x"), entry.get("y"), root))
    return out


def declared(root: Path) -> list[Declared]:
    """Every sweep declared in ``analyses/*/sweeps.toml``, by study and name."""
    out = []
    for path in sorted((Path(root) / "analyses").glob("*/sweeps.toml")):
        out += _read_declared(Path(root), path)
    return out


def get_declared(root: Path, name: str) -> Declared | None:
    return next((s for s in declared(root) if s.name == name), None)


def declared_for(analysis: an.Analysis) -> list[Declared]:
    """The declared sweeps whose table ``analysis`` reads."""
    path = analysis.root / "analyses" / analysis.study / "sweeps.toml"
    if not path.exists():
        return []
    return [s for s in _read_declared(analysis.root, path) if analysis.name in s.read_by]


def load(name: str, *, allow_failed: bool = False):
    """A declared sweep's table (pandas DataFrame), for a chapter listed in its ``read_by``: ``load("demo/robust")``.

    Reads ``<RLI_OUT>/runs/sweeps/<study>/<name>/results.csv`` (``RLI_OUT`` is set by ``rli run``: the build folder
    of the chapter; outside it, the project root). A table with failed points is an error unless ``allow_failed``."""
    import pandas as pd

    study, _, key = name.partition("/")
    base = Path(os.environ.get("RLI_OUT") or an.find_root())
    path = base / "runs" / "sweeps" / study / key / TABLE
    if not path.exists():
        raise SweepError(f"sweep {name} has no table at {path}; run it with `rli sweep {name}` (rli build runs a "
                         f"declared sweep before the chapters that read it)")
    table = pd.read_csv(path)
    failed = table[table["status"] != "ok"]
    if len(failed) and not allow_failed:
        raise SweepError(f"sweep {name}: {len(failed)} of {len(table)} points failed ({', '.join(failed['point'])});"
                         f" see {path.parent / 'sweep.json'} and rerun `rli sweep {name}`")
    return table
