"""Mutation testing with mutmut: ``make mutation`` (the whole scope) or ``make mutation MODULE=...`` (one module).

mutmut (configured in ``pyproject.toml``, ``[tool.mutmut]``) copies the code into ``mutants/``, plants one small bug
at a time (a flipped comparison, a changed constant, a dropped argument, ...) and runs the tests that cover the mutated
function; a mutant that no test notices *survives*. This module runs mutmut in a work folder per target,
``_build/mutation/<target>/`` (links to the repository plus its own ``pyproject.toml``), so a one-module run, with
its own small test selection, keeps its own cache and never invalidates the whole-scope run. Then it writes
``report.md`` there: the score per module and every surviving mutant with its diff.

``[tool.rlinterp.mutation]`` in ``pyproject.toml`` holds ``tests`` (for each module, the test files a one-module run
uses; by default the tests named after the module) and ``equivalent`` (mutant name -> why no test can tell it from
the original), which are excluded from the score and listed in the report.

    python -m rlinterp.pipeline.mutation [--module rlinterp.pipeline.analyses] [--tests "tests/a.py tests/b.py"]
    python -m rlinterp.pipeline.mutation --survivors --module rlinterp.pipeline.analyses  # after adding tests
    python -m rlinterp.pipeline.mutation --report-only --module rlinterp.pipeline.analyses
"""
from __future__ import annotations

import argparse
import fnmatch
import os
import subprocess
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

# what the tests read from the repository root besides lib/ and tests/ (mutmut copies these into mutants/)
LINKED_EXCLUDE = {".git", ".venv", "_build", "_book", "mutants", "runs", "pyproject.toml", ".pytest_cache",
                  ".hypothesis", ".rli-cache"}
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_RUN = {"not checked", "skipped"}


def pyproject(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text())


def resolve(module: str | None, root: Path) -> tuple[str, list[str]]:
    """(slug, only_mutate globs) for a dotted module/package name or a path; ``None`` is the whole configured scope."""
    scope = pyproject(root)["tool"]["mutmut"]["only_mutate"]
    if not module:
        return "all", list(scope)
    path = module.rstrip("/").removeprefix("src/").removeprefix("lib/")
    if not path.endswith(".py") and not (root / "lib" / path).is_dir():  # a dotted name
        dotted = path.replace(".", "/")
        path = f"{dotted}.py" if (root / "lib" / f"{dotted}.py").is_file() else dotted
    if not (root / "lib" / path).exists():
        sys.exit(f"make mutation: MODULE={module}: no lib/{path} (write e.g. MODULE=rlinterp.pipeline.analyses "
                 f"or MODULE=lib/rlinterp/pipeline/analyses.py)")
    glob = f"src/{path}" if path.endswith(".py") else f"src/{path}/*"
    if not any(fnmatch.fnmatch(glob, s) or fnmatch.fnmatch(f"src/{path}", s) for s in scope):
        print(f"note: lib/{path} is outside the configured scope {scope}", file=sys.stderr)
    return path.removesuffix(".py").replace("/", "."), [glob]


def related_tests(slug: str, root: Path) -> list[str]:
    """The test files of a one-module run: ``[tool.rlinterp.mutation.tests]``, else ``tests/test_<name>*.py``."""
    table = pyproject(root).get("tool", {}).get("rlinterp", {}).get("mutation", {}).get("tests", {})
    if slug in table:
        return list(table[slug])
    stem = slug.rsplit(".", 1)[-1]
    found = sorted(str(p.relative_to(root)) for p in (root / "tests").glob(f"test_*{stem}*.py"))
    if not found:
        sys.exit(f"make mutation: no tests known for {slug}: list them under [tool.rlinterp.mutation.tests] in "
                 f"pyproject.toml or pass TESTS='tests/test_a.py tests/test_b.py'")
    return found


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def prepare(root: Path, slug: str, only_mutate: list[str], tests: list[str] | None) -> Path:
    """The work folder ``_build/mutation/<slug>``: links to the repository and a pyproject.toml for this target."""
    work = root / "_build" / "mutation" / slug
    # mutants/src exists before mutmut starts: Python caches a PYTHONPATH entry that is missing at start-up as
    # unimportable, and the tests would then import the unmutated package
    (work / "mutants" / "src").mkdir(parents=True, exist_ok=True)
    for entry in root.iterdir():
        link = work / entry.name
        if entry.name in LINKED_EXCLUDE or link.is_symlink() or link.exists():
            continue
        link.symlink_to(os.path.relpath(entry, work))
    # the package as mutmut expects it, under src/: mutants/src goes on sys.path and the mutants are named
    # rlinterp.pipeline.analyses.x_cast__mutmut_1 (from lib/ they would be lib.rlinterp..., which no test imports)
    if not (work / "src").is_symlink():
        (work / "src").symlink_to(os.path.relpath(root / "lib", work))
    cfg = pyproject(root)["tool"]
    mut = dict(cfg["mutmut"], only_mutate=only_mutate)
    if tests:
        mut["pytest_add_cli_args_test_selection"] = list(tests)
    lines = ["# written by rlinterp.pipeline.mutation for this target; edit the repository's pyproject.toml instead",
             "[tool.pytest.ini_options]"]
    lines += [f"{k} = {_toml(v)}" for k, v in cfg.get("pytest", {}).get("ini_options", {}).items()]
    lines += ["", "[tool.mutmut]"] + [f"{k} = {_toml(v)}" for k, v in mut.items()]
    text = "\n".join(lines) + "\n"
    target = work / "pyproject.toml"
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return work


def env_for(work: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(work / "mutants" / "src"), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTEST_ADDOPTS", None)
    return env


def statuses(work: Path) -> dict[str, str]:
    """``mutmut results --all true`` as {mutant name: status}."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env_for(work),
                         capture_output=True, text=True, check=True).stdout
    result = {}
    for line in out.splitlines():
        name, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in name:
            result[name] = status
    return result


def module_of(mutant: str) -> str:
    from mutmut.utils.format_utils import get_module_from_key, mangled_name_from_mutant_name

    return get_module_from_key(mangled_name_from_mutant_name(mutant))


def diff(work: Path, mutant: str) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=work, env=env_for(work),
                         capture_output=True, text=True)
    return "\n".join(out.stdout.splitlines()[1:]).strip()


def report(root: Path, work: Path, slug: str, with_diffs: bool = True) -> str:
    """The report (markdown): score per module, equivalent mutants, survivors (with diffs)."""
    equivalent = pyproject(root).get("tool", {}).get("rlinterp", {}).get("mutation", {}).get("equivalent", {})
    by_module: dict[str, Counter] = defaultdict(Counter)
    survivors: dict[str, list[tuple[str, str]]] = defaultdict(list)
    seen = statuses(work)
    for name, status in sorted(seen.items()):
        mod = module_of(name)
        if name in equivalent:
            by_module[mod]["equivalent"] += 1
            continue
        by_module[mod][status] += 1
        if status not in KILLED | NOT_RUN:
            survivors[mod].append((name, status))
    lines = [f"# Mutation testing: {slug}", "",
             "Score = killed / (mutants - equivalent - not run); a mutant with no covering test counts as surviving.",
             "", "| module | killed | survived | no tests | equivalent | not run | score |", "|---|---:|---:|---:|---:|---:|---:|"]
    total = Counter()
    for mod, c in sorted(by_module.items()):
        total += c
        lines.append(_row(mod, c))
    if len(by_module) > 1:
        lines.append(_row("**all**", total))
    stale = sorted(set(equivalent) - set(seen))
    if any(module_of(n) in by_module for n in equivalent):
        lines += ["", "## Equivalent mutants (excluded from the score)", ""]
        lines += [f"- `{n}`: {why}" for n, why in sorted(equivalent.items()) if n in seen]
    if stale and slug == "all":
        lines += ["", "Listed as equivalent but no longer generated (the function changed; re-check the list): "
                  + ", ".join(f"`{n}`" for n in stale)]
    for mod, items in sorted(survivors.items()):
        lines += ["", f"## Survivors in {mod} ({len(items)})", ""]
        for name, status in items:
            lines.append(f"### `{name}` ({status})")
            if with_diffs:
                lines += ["", "```diff", diff(work, name), "```", ""]
    return "\n".join(lines) + "\n"


def _row(mod: str, c: Counter) -> str:
    killed = sum(c[s] for s in KILLED)
    not_run = sum(c[s] for s in NOT_RUN)
    counted = sum(c.values()) - c["equivalent"] - not_run
    score = f"{100 * killed / counted:.0f}%" if counted else "-"
    survived = counted - killed - c["no tests"]
    return f"| {mod} | {killed} | {survived} | {c['no tests']} | {c['equivalent']} | {not_run} | {score} |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlinterp.pipeline.mutation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--module", default=None, help="a dotted module/package (rlinterp.pipeline.analyses) or a path; "
                                                   "default: the whole scope of [tool.mutmut] only_mutate")
    ap.add_argument("--tests", default=None, help="test files for this run, space-separated (default: "
                                                  "[tool.rlinterp.mutation.tests], else tests/test_<module>*.py)")
    ap.add_argument("--jobs", type=int, default=2, help="mutants tested in parallel")
    ap.add_argument("--survivors", action="store_true", help="re-test only the mutants that survived the last run "
                                                             "(after adding tests; killed mutants stay killed)")
    ap.add_argument("--report-only", action="store_true", help="only write the report of the last run")
    ap.add_argument("--no-diffs", action="store_true", help="list survivors without their diffs")
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[3])
    args = ap.parse_args(argv)
    root = args.root.resolve()
    slug, only_mutate = resolve(args.module, root)
    tests = args.tests.split() if args.tests else (related_tests(slug, root) if args.module else None)
    work = prepare(root, slug, only_mutate, tests)
    if not args.report_only:
        print(f"mutmut in {work.relative_to(root)}: mutating {', '.join(only_mutate)}; tests: "
              f"{' '.join(tests) if tests else 'the [tool.mutmut] selection'}", flush=True)
        equivalent = pyproject(root).get("tool", {}).get("rlinterp", {}).get("mutation", {}).get("equivalent", {})
        names = sorted(n for n, s in statuses(work).items() if s not in KILLED and n not in equivalent) \
            if args.survivors else []
        if args.survivors and not names:
            print("no surviving mutants to re-test")
        rc = 0 if args.survivors and not names else subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", str(args.jobs), *names], cwd=work,
            env=env_for(work)).returncode
        if rc != 0:
            print(f"mutmut run failed (exit {rc}); set debug = true under [tool.mutmut] to see pytest's output",
                  file=sys.stderr)
            return rc
    text = report(root, work, slug, with_diffs=not args.no_diffs)
    (work / "report.md").write_text(text)
    print(text.split("\n## Survivors")[0])
    print(f"report with the surviving mutants: {(work / 'report.md').relative_to(root)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
