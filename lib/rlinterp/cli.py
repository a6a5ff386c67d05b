"""``rli``: the command line of the book pipeline.

    rli list                                   analyses, their parameters, and whether each chapter is up to date
    rli run coinflip/01_game -p sigma=0.2      execute one analysis (validated parameters, cached, atomic output)
    rli sweep demo/01_x -p n=2,3 -p seed=0..4  the analysis over a grid (process pool, or --ray ADDRESS) -> table
    rli build [--profile smoke] [-j 2]         every analysis of _quarto.yml, then render the book
    rli render                                 quarto if on PATH, else pandoc HTML + pandoc→Typst PDF
    rli play coinflip                          play the coin-flip game against the Bayes-optimal policy and the DQN
    rli explore ad                             interactive Algorithm-Distillation explorer (Streamlit, local)
    rli bench [STUDY ...]                      the studies' target numbers (agent vs optimum, ...)
    rli data list                              the shipped artifacts: name, files, size, description
    rli data verify                            check data/ against data/MANIFEST.json and the artifact registry
    rli data rebuild NAME [--save]             rebuild one artifact (default profile); --save replaces data/ files
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline import build_times
from rlinterp.pipeline import run as runner
from rlinterp.pipeline import sweep
from rlinterp.pipeline.manifest import DataError


def _root(args) -> Path:
    return an.find_root(Path(args.root) if args.root else None)


def _out(args, root: Path) -> Path | None:
    """Where chapters go: --out, or a build folder per non-default profile (the paper's chapters stay intact)."""
    if getattr(args, "out", None):
        return Path(args.out).resolve()
    profile = getattr(args, "profile", None)
    if profile and profile != "default":
        return root / "_build" / profile
    return None


def cmd_list(args) -> int:
    root = _root(args)
    for a in an.discover(root):
        nb = an.load_notebook(a)
        spec = an.parameters(a, nb)
        params = an.validate(a, spec, an.profile(root, a, args.profile))
        chapter = a.chapter(_out(args, root))
        state = ("up to date" if runner.is_fresh(a, params, _out(args, root)) else "stale") if chapter.exists() \
            else "not built"
        last = build_times.lookup(a.name, args.profile or "default", _out(args, root) or root, root)
        if last and state != "up to date":
            state += f"; last build {build_times.describe(last['seconds'])}"
        print(f"{a.name}  [{state}]  {a.source.relative_to(root)} -> {chapter.relative_to(root)}")
        for p in spec.values():
            shown = params[p.name]
            flag = "" if shown == p.default else f"  (profile {args.profile}: {shown!r})"
            rule = f"  [{p.constraint}]" if p.constraint else ""
            print(f"    {p.name}: {p.type} = {p.default!r}{flag}  — {p.help}{rule}")
    return 0


def cmd_run(args) -> int:
    root = _root(args)
    overrides = an.parse_overrides(args.param)
    analysis = an.get(root, args.analysis)
    failed = _run_declared_sweeps(args, root, sweep.declared_for(analysis))
    if failed:
        print(f"rli: {analysis.name} reads the failed sweep(s) {', '.join(failed)}; not run", file=sys.stderr)
        return 1
    res = runner.run(root, args.analysis, overrides, profile=args.profile, force=args.force, out=_out(args, root),
                     progress=not args.quiet)
    _report(res, root)
    return 0


def _run_declared_sweeps(args, root: Path, sweeps: list, plans: dict | None = None) -> list[str]:
    """Run declared sweeps (cached points are not rerun) under the command's profile and build folder; return the
    names of those with a failed point (their failures are printed)."""
    failed = []
    for s in sweeps:
        plan = (plans or {}).get(s.name) or s.plan(args.profile, _out(args, root))
        res = sweep.execute(plan, jobs=getattr(args, "jobs", None) or None, ray_address=os.environ.get("RAY_ADDRESS"),
                            progress=not args.quiet)
        _report_sweep(res, root, s.name)
        failed += [s.name] if res.failed else []
    return failed


def _report_sweep(res, root: Path, name: str) -> None:
    for p in res.failed:
        print(f"--- point {p.point.name} of sweep {name} failed ---\n{p.error}", file=sys.stderr)
    where = res.plan.out
    where = where.relative_to(root) if where.is_relative_to(root) else where
    print(f"sweep {name}: {len(res.points)} points: {res.count('executed')} executed, {res.count('cached')} "
          f"up to date, {len(res.failed)} failed -> {where}/ ({', '.join(p.name for p in res.outputs)})")


def cmd_sweep(args) -> int:
    root = _root(args)
    declared = sweep.get_declared(root, args.analysis)
    if declared is not None:
        if args.param or args.out:
            raise an.ParameterError(f"{args.analysis} is a sweep declared in analyses/{declared.study}/sweeps.toml: "
                                    f"its grid and folder are declared there (no -p or --out)")
        plan = declared.plan(args.profile, _out(args, root))
        plan.x, plan.y = args.x or plan.x, args.y or plan.y
        name = declared.name
    else:
        out = Path(args.out).resolve() if args.out else None
        if out is None:
            analysis = an.get(root, args.analysis)
            out = (_out(args, root) or root) / "runs" / "sweeps" / analysis.name
        plan = sweep.plan(root, args.analysis, args.param, profile=args.profile, out=out, x=args.x, y=args.y)
        name = plan.analysis.name
    address = args.ray or os.environ.get("RAY_ADDRESS")
    if args.jobs is not None and args.jobs < 1:
        raise an.ParameterError(f"--jobs must be at least 1, got {args.jobs}")
    res = sweep.execute(plan, jobs=args.jobs, ray_address=address, force=args.force, progress=not args.quiet)
    _report_sweep(res, root, name)
    return 1 if res.failed else 0


def _report(res: runner.RunResult, root: Path) -> None:
    where = res.chapter.relative_to(root) if res.chapter.is_relative_to(root) else res.chapter
    if res.status == "cached":
        print(f"{res.analysis}: up to date, skipped ({where}; --force to rerun)")
    else:
        print(f"{res.analysis}: executed in {res.seconds:.1f} s -> {where}")


def cmd_build(args) -> int:
    root = _root(args)
    out = _out(args, root)
    todo = [a.name for a in an.discover(root, strict=True)]
    for name in todo:  # validate every analysis's parameters (and declared sweep) before executing anything
        runner.resolve(root, name, {}, args.profile)
    sweeps = sweep.declared(root)
    plans = {s.name: s.plan(args.profile, out) for s in sweeps}
    t0 = time.perf_counter()
    failed_sweeps = _run_declared_sweeps(args, root, sweeps, plans)  # before the chapters that read them
    blocked = [a.name for a in an.discover(root) if any(s.name in failed_sweeps for s in sweep.declared_for(a))]
    if blocked:
        print(f"not run: {', '.join(blocked)} (they read the failed sweep(s) {', '.join(failed_sweeps)})",
              file=sys.stderr)
    failures = list(blocked)
    todo = [name for name in todo if name not in blocked]
    if args.jobs <= 1:
        for name in todo:
            try:
                _report(runner.run(root, name, profile=args.profile, force=args.force, out=out,
                                   progress=not args.quiet), root)
            except runner.AnalysisFailed as e:
                print(e, file=sys.stderr)
                failures.append(name)
    else:  # each analysis in its own `rli run` process (each runs its own kernel)
        def one(name: str) -> tuple[str, int]:
            cmd = [sys.executable, "-m", "rlinterp.cli", "--root", str(root), "run", name, "--quiet"]
            cmd += ["--profile", args.profile] if args.profile else []
            cmd += ["--out", str(out)] if out else []
            cmd += ["--force"] if args.force else []
            proc = subprocess.run(cmd, capture_output=True, text=True)
            sys.stdout.write(proc.stdout)
            sys.stderr.write(proc.stderr)
            return name, proc.returncode

        with ThreadPoolExecutor(args.jobs) as pool:
            failures += [name for name, rc in pool.map(one, todo) if rc != 0]
    print(f"analyses done in {time.perf_counter() - t0:.1f} s")
    if failures:
        print(f"FAILED: {', '.join(failures)}; the book was not rendered", file=sys.stderr)
        return 1
    if not args.no_render:
        return cmd_render(args)
    return 0


def cmd_render(args) -> int:
    from rlinterp.pipeline.render import render

    root = _root(args)
    res = render(root, _out(args, root), renderer=getattr(args, "renderer", "auto"),
                 profile=getattr(args, "profile", None))
    print(f"rendered with {res.renderer}:")
    for path in res.outputs:
        print(f"  {path}")
    if res.placeholders:
        print(f"{len(res.placeholders)} chapter(s) not built yet, rendered as a page saying how to build them: "
              f"{', '.join(res.placeholders)}")
    return 0


def cmd_play(args) -> int:
    if args.game != "coinflip":
        print(f"unknown game {args.game!r}; available: coinflip", file=sys.stderr)
        return 2
    import math

    from rlinterp.play import play_coinflip

    problems = [f"--n-coins must be at least 1, got {args.n_coins}"] * (args.n_coins < 1)
    problems += [f"--n-flips must be at least 1, got {args.n_flips}"] * (args.n_flips < 1)
    if not (math.isfinite(args.sigma) and args.sigma > 0):
        problems.append(f"--sigma (prior sd of the coin weights) must be a finite number > 0, got {args.sigma}")
    if problems:
        print("rli play: " + "; ".join(problems), file=sys.stderr)
        return 2
    agent = None
    if not args.no_agent:
        if args.n_coins < 2:
            print("(DQN agent not playing: the DQN needs at least 2 coins)")
        else:
            try:
                from rlinterp import artifacts
                from rlinterp.studies.coinflip import find_agent

                model, where = find_agent(args.n_coins, args.n_flips, args.sigma)
                shipped = artifacts.get("coinflip/dqn").config
                if model is not None:
                    agent = model.policy
                    print(f"(the DQN plays: {where})")
                else:
                    print(f"(DQN agent not playing: no DQN has been trained for {args.n_coins} coins, {args.n_flips} "
                          f"flips and sigma = {args.sigma:g} (the shipped one plays {shipped.n_coins} coins, "
                          f"{shipped.n_flips} flips, sigma = {shipped.sigma:g}). "
                          f"Train one with `{where}`; it is kept under runs/coinflip/ and plays here next time.)")
            except Exception as e:  # the game stays playable without the agent
                print(f"(DQN agent not available: {e})")
    play_coinflip(n_coins=args.n_coins, n_flips=args.n_flips, sigma=args.sigma, seed=args.seed, agent=agent)
    return 0


EXPLORERS = {"ad": "lib/rlinterp/explore/ad.py"}


def cmd_explore(args) -> int:
    """Launch a study's interactive Streamlit app (the computations behind it are plain, tested functions)."""
    root = _root(args)
    if args.study not in EXPLORERS:
        print(f"no explorer for {args.study!r}; available: {', '.join(EXPLORERS)}", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / EXPLORERS[args.study]),
           "--browser.gatherUsageStats", "false", "--server.port", str(args.port)]
    if args.headless:
        cmd += ["--server.headless", "true"]
    print("running:", " ".join(cmd))
    return subprocess.run(cmd, cwd=root).returncode


def cmd_bench(args) -> int:
    from rlinterp.bench import bench

    from rlinterp.bench import STUDIES

    unknown = [n for n in args.studies if n not in STUDIES]
    if unknown:
        print(f"rli bench: unknown study {', '.join(unknown)}; choose from {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    results = bench(fast=args.fast, studies=args.studies or None)
    missed = [f"{study}: {row[0]}" for study, rows in results.items() for row in rows if row[3] is False]
    if missed:
        print(f"rli bench: {len(missed)} target(s) not met or not measurable: {'; '.join(missed)}", file=sys.stderr)
        return 1
    return 0


def cmd_data(args) -> int:
    from rlinterp import artifacts

    data_dir = Path(args.data_dir) if args.data_dir else None
    if args.action == "list":
        for row in artifacts.table(data_dir):
            print(f"{row['name']:<26} {row['kind']:<6} {row['size'] / 1024:8.0f} KiB  {row['description']}")
            print(f"    files: {', '.join('data/' + f for f in row['files'])}")
        return 0
    if args.action == "verify":
        problems = artifacts.verify(data_dir)
        for p in problems:
            print(p, file=sys.stderr)
        n_files = sum(len(a.files) for a in artifacts.ARTIFACTS.values())
        print(f"{len(problems)} problem(s) in data/ (see above)" if problems
              else f"{n_files} data files verified ({len(artifacts.ARTIFACTS)} artifacts, no unknown files)")
        return 1 if problems else 0
    if not args.name:
        print("rli data rebuild: give the artifact's NAME (see `rli data list`)", file=sys.stderr)
        return 2
    artifacts.rebuild(args.name, save=args.save, device=args.device, progress=not args.quiet, data_dir=data_dir)
    return 0


def cmd_diff(args) -> int:
    from rlinterp.pipeline.diff import diff

    root = _root(args)
    chapters = diff(root, args.base, profile=args.profile, out=Path(args.out) if args.out else None,
                    run=not args.no_run, names=args.only or None)
    return 1 if any(ch.error for ch in chapters) else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rli", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="project root (default: the folder with _quarto.yml above the current one)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="analyses, parameters and chapter status")
    s.add_argument("--profile", default=None, help="show parameters as this profile sets them (e.g. smoke)")
    s.add_argument("--out", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="execute one analysis into its chapter")
    s.add_argument("analysis", help="e.g. coinflip/01_game (see `rli list`)")
    s.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    s.add_argument("--profile", default=None, help="named parameter overrides (analyses/<study>/profiles.toml)")
    s.add_argument("--force", action="store_true", help="execute even if the chapter is up to date")
    s.add_argument("--out", help="write chapters under OUT/paper instead of the project's paper/")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("sweep", help="run one analysis over a grid of parameters and gather its results",
                       description="Run ANALYSIS for every point of the grid (the product of the -p axes), each point "
                                   "an isolated, cached `rli run`; gather the results the chapter records with "
                                   "report.record(name, value) into OUT/results.csv (+ .parquet) and "
                                   "OUT/summary.png. ANALYSIS may also be a sweep declared in "
                                   "analyses/<study>/sweeps.toml (e.g. demo/robustness). Exit status 1 if a "
                                   "point failed.")
    s.add_argument("analysis", help="an analysis (e.g. coinflip/02_agent) or a declared sweep (study/name)")
    s.add_argument("-p", "--param", action="append", default=[], metavar="NAME=V1,V2,...",
                   help="an axis: values separated by ',' (';' for a list parameter), a..b an inclusive int range")
    s.add_argument("--profile", default=None, help="named parameter overrides applied to every point")
    s.add_argument("--jobs", type=int, default=None, help="local processes (default: the CPUs available)")
    s.add_argument("--ray", metavar="ADDRESS", default=None,
                   help="run the points as tasks on this Ray cluster (ray.init(address=ADDRESS); also RAY_ADDRESS)")
    s.add_argument("--out", help="the sweep's folder (default: runs/sweeps/<analysis>/ of the build folder)")
    s.add_argument("--force", action="store_true", help="rerun every point, even up-to-date ones")
    s.add_argument("--x", default=None, help="summary figure: the swept parameter on the x axis")
    s.add_argument("--y", default=None, help="summary figure: the recorded result plotted")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("build", help="run every analysis, then render the book")
    s.add_argument("--profile", default=None, help="e.g. smoke: tiny sizes (chapters go to _build/<profile>/)")
    s.add_argument("-j", "--jobs", type=int, default=1, help="analyses executed in parallel")
    s.add_argument("--force", action="store_true", help="ignore the cache")
    s.add_argument("--out", help="build folder (default: the project for the default profile)")
    s.add_argument("--no-render", action="store_true", help="execute the analyses only")
    s.add_argument("--renderer", default="auto", choices=["auto", "quarto", "pandoc"])
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("render", help="render the executed chapters into HTML + PDF")
    s.add_argument("--profile", default=None, help="render the chapters of this profile's build folder")
    s.add_argument("--out", help="build folder holding paper/ (default: the project)")
    s.add_argument("--renderer", default="auto", choices=["auto", "quarto", "pandoc"])
    s.set_defaults(func=cmd_render)

    s = sub.add_parser("play", help="play a game in the terminal")
    s.add_argument("game", help="coinflip")
    s.add_argument("--n-coins", type=int, default=5)
    s.add_argument("--n-flips", type=int, default=20)
    s.add_argument("--sigma", type=float, default=0.3)
    s.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh game each time)")
    s.add_argument("--no-agent", action="store_true", help="play against the Bayes-optimal policy only")
    s.set_defaults(func=cmd_play)

    s = sub.add_parser("explore", help="launch a study's interactive app in the browser (Streamlit)")
    s.add_argument("study", help="ad")
    s.add_argument("--port", type=int, default=8501)
    s.add_argument("--headless", action="store_true", help="do not open a browser")
    s.set_defaults(func=cmd_explore)

    s = sub.add_parser("bench", help="report the studies' target numbers")
    s.add_argument("--fast", action="store_true", help="fewer Monte-Carlo games / evaluation rollouts")
    s.add_argument("studies", nargs="*", help="studies to run (default: all)")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("diff", help="review a change: which chapters it moves and how (HTML + Markdown report)")
    s.add_argument("base", nargs="?", default=None, help="git ref to compare with (default: merge base with main)")
    s.add_argument("--profile", default=None, help="run both sides with this profile (default: the paper's)")
    s.add_argument("--out", help="report folder (default: _build/diff)")
    s.add_argument("--no-run", action="store_true", help="only list the chapters whose inputs changed, and why")
    s.add_argument("--only", action="append", default=[], metavar="ANALYSIS", help="compare only these analyses")
    s.set_defaults(func=cmd_diff)

    s = sub.add_parser("data", help="the shipped artifacts in data/: list, verify, rebuild")
    s.add_argument("action", choices=["list", "verify", "rebuild"])
    s.add_argument("name", nargs="?", help="with rebuild: the artifact (e.g. highway/mlp; see `rli data list`)")
    s.add_argument("--save", action="store_true",
                   help="with rebuild: replace the shipped files in data/ and register them (else runs/rebuild/NAME/)")
    s.add_argument("--device", default="cpu", help="with rebuild: torch device")
    s.add_argument("--quiet", action="store_true", help="with rebuild: no progress bars")
    s.add_argument("--data-dir", help=argparse.SUPPRESS)  # tests: another data folder
    s.set_defaults(func=cmd_data)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
        sys.stdout.flush()  # a closed pipe (`rli list | head`) shows up here at the latest
        return rc
    except BrokenPipeError:  # the reader went away: stop quietly, as other Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141  # 128 + SIGPIPE, what a shell reports for a tool that the closed pipe stopped
    except (an.ParameterError, FileNotFoundError, ValueError, DataError) as e:
        print(f"rli: error: {e}", file=sys.stderr)
        return 2
    except runner.AnalysisFailed as e:
        print(f"rli: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rli: interrupted; outputs written so far are complete (writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
