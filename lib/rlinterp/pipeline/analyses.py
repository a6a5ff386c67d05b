"""Analyses: discovery from ``_quarto.yml``, parameters (papermill inspection), validation and profiles.

An analysis ``analyses/<study>/NN_topic.py`` (jupytext percent format) is the source of the book chapter
``paper/<study>/NN_topic.ipynb``; ``_quarto.yml`` lists the chapters, so it is the single list of analyses.
Its parameters are declared in one cell tagged ``parameters``, one per line, as ``name: type = default  # help``.
"""
from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
TYPES = {"int": int, "float": float, "str": str, "bool": bool}


class ParameterError(ValueError):
    """Bad parameters for an analysis (unknown name, value that does not cast); nothing was executed."""


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of TYPES
    default: Any
    help: str


@dataclass(frozen=True)
class Analysis:
    name: str  # "coinflip/01_game"
    root: Path  # project root (holds _quarto.yml)

    @property
    def source(self) -> Path:
        return self.root / "analyses" / f"{self.name}.py"

    def chapter(self, out: Path | None = None) -> Path:
        """The executed notebook (under ``out``/paper, default the project's own ``paper/``)."""
        return Path(out or self.root) / "paper" / f"{self.name}.ipynb"

    def failed(self, out: Path | None = None) -> Path:
        return self.chapter(out).with_suffix(".failed.ipynb")

    @property
    def study(self) -> str:
        return self.name.split("/")[0]


def find_root(start: Path | None = None) -> Path:
    """The project root: the nearest folder upwards from ``start`` (default: cwd, then the package) with _quarto.yml."""
    from rlinterp import ROOT

    for base in [Path(start or Path.cwd()).resolve(), ROOT]:
        for folder in [base, *base.parents]:
            if (folder / "_quarto.yml").exists():
                return folder
    raise FileNotFoundError("no _quarto.yml found in the current folder or its parents; run rli inside the repo")


def quarto_config(root: Path) -> dict:
    """``_quarto.yml`` as a dict, refusing a book Quarto itself would refuse.

    Quarto (measured with 1.10) accepts a book's home page only as ``index.*`` at the project root and stops with
    "Book contents must include a home page" otherwise; the fallback renderer applies the same rule so a book that
    renders here renders with Quarto too.
    """
    config = yaml.safe_load((root / "_quarto.yml").read_text())
    if config.get("project", {}).get("type") == "book":
        entries = [c for _, c in chapter_entries(config)]
        if not any(Path(c).stem == "index" and Path(c).parent == Path(".") for c in entries):
            raise ValueError(f"{root / '_quarto.yml'}: a Quarto book needs its home page as index.qmd (or index.md) at "
                             f"the project root, listed in book.chapters; found {entries[:1] or 'no chapters'}")
    return config


def chapter_entries(config: dict) -> list[tuple[str | None, str]]:
    """(part title or None, chapter file) for every chapter of the book, in order (appendices included)."""
    book = config.get("book", {})
    out: list[tuple[str | None, str]] = []
    for key in ("chapters", "appendices"):
        for entry in book.get(key, []) or []:
            if isinstance(entry, str):
                out.append((None, entry))
            elif isinstance(entry, dict) and "part" in entry:
                part = entry["part"]
                for ch in entry.get("chapters", []) or []:
                    out.append((part, ch))
            elif isinstance(entry, dict) and "href" in entry:
                out.append((None, entry["href"]))
    return out


def discover(root: Path, strict: bool = False) -> list[Analysis]:
    """Every analysis, in book order: the ``paper/**/*.ipynb`` chapters of ``_quarto.yml`` mapped to analyses/.

    A listed chapter whose analysis file does not exist is skipped, or an error with ``strict`` (building the book).
    """
    analyses = []
    for _, chapter in chapter_entries(quarto_config(root)):
        if chapter.endswith(".ipynb") and chapter.startswith("paper/"):
            a = Analysis(chapter[len("paper/"):-len(".ipynb")], root)
            if a.source.exists():
                analyses.append(a)
            elif strict:
                raise FileNotFoundError(f"_quarto.yml lists {chapter} but its analysis "
                                        f"{a.source.relative_to(root)} does not exist")
    return analyses


def get(root: Path, name: str) -> Analysis:
    name = name.removeprefix("analyses/").removesuffix(".py")
    known = discover(root)
    for a in known:
        if a.name == name:
            return a
    raise ParameterError(f"unknown analysis {name!r}; known analyses: {', '.join(a.name for a in known)} "
                         f"(see `rli list`)")


def load_notebook(analysis: Analysis):
    """The analysis as an (unexecuted) notebook, converted in memory with jupytext."""
    import jupytext

    nb = jupytext.read(analysis.source, fmt="py:percent")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def parameters(analysis: Analysis, nb=None) -> dict[str, Param]:
    """The declared parameters (papermill's inspection), checked to have a known type and a help comment."""
    import papermill as pm

    nb = nb if nb is not None else load_notebook(analysis)
    n_cells = sum("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    if n_cells != 1:
        raise ParameterError(f"{analysis.source} must have exactly one cell tagged 'parameters' (has {n_cells})")
    inspected = pm.inspect_notebook(nb)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for node in ast.parse(cell.source).body:  # papermill silently skips lines it cannot parse: refuse them
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id not in inspected:
            raise ParameterError(f"{analysis.source}: papermill cannot parse parameter line {node.lineno} "
                                 f"({target.id}); write `name: type = value  # help` with no '=' in the help text")
    out = {}
    for name, p in inspected.items():
        typ = p["inferred_type_name"]
        if typ not in TYPES:
            raise ParameterError(f"{analysis.source}: parameter {name!r} needs a type annotation among "
                                 f"{list(TYPES)} (write `{name}: int = ...  # help`)")
        if not p["help"]:
            raise ParameterError(f"{analysis.source}: parameter {name!r} needs a `# help` comment")
        out[name] = Param(name, typ, _cast(TYPES[typ], ast.literal_eval(p["default"]), name), p["help"])
    return out


def _cast(typ: type, value: Any, name: str) -> Any:
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "1", "yes", "on"}:
            return True
        if isinstance(value, str) and value.strip().lower() in {"false", "0", "no", "off"}:
            return False
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise ParameterError(f"parameter {name!r} is a bool; got {value!r} (use true/false)")
    if typ is int:
        if isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} is an int; got the bool {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip().replace("_", ""))
        except ValueError:
            raise ParameterError(f"parameter {name!r} is an int; {value!r} is not an integer") from None
    if typ is float:
        if isinstance(value, bool):
            raise ParameterError(f"parameter {name!r} is a float; got the bool {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"parameter {name!r} is a float; {value!r} is not a number") from None
    return value if isinstance(value, str) else str(value)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["n=3", "sigma=0.2"]`` → ``{"n": "3", "sigma": "0.2"}`` (values are cast later against the declared types)."""
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ParameterError(f"parameter {pair!r} must be written name=value")
        k, v = pair.split("=", 1)
        out[k.strip()] = v
    return out


def validate(analysis: Analysis, spec: dict[str, Param], *overrides: dict[str, Any]) -> dict[str, Any]:
    """Defaults, then each overrides dict in turn, cast to the declared types. Unknown names are an error."""
    params = {name: p.default for name, p in spec.items()}
    for layer in overrides:
        for name, value in (layer or {}).items():
            if name not in spec:
                raise ParameterError(f"{analysis.name} has no parameter {name!r}; its parameters are: "
                                     f"{', '.join(spec) or '(none)'} (see `rli list`)")
            params[name] = _cast(TYPES[spec[name].type], value, f"{analysis.name}:{name}")
    return params


def profile(root: Path, analysis: Analysis, name: str | None) -> dict[str, Any]:
    """Overrides that profile ``name`` sets for ``analysis``: ``analyses/<study>/profiles.toml`` → ``[name.NN_topic]``."""
    if not name or name == "default":
        return {}
    path = root / "analyses" / analysis.study / "profiles.toml"
    if not path.exists():
        return {}
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ParameterError(f"{path} is not valid TOML: {e}") from e
    return dict(table.get(name, {}).get(analysis.name.split("/", 1)[1], {}))


def known_profiles(root: Path) -> set[str]:
    names = {"default"}
    for path in (root / "analyses").glob("*/profiles.toml"):
        names |= set(tomllib.loads(path.read_text()))
    return names
