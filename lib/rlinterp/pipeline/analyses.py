"""Analyses: discovery from ``_quarto.yml``, parameters (papermill inspection), validation and profiles.

An analysis ``analyses/<study>/NN_topic.py`` (jupytext percent format) is the source of the book chapter
``paper/<study>/NN_topic.ipynb``; ``_quarto.yml`` lists the chapters, so it is the single list of analyses.
Its parameters are declared in one cell tagged ``parameters``, one per line, as ``name: type = default  # help``::

    n_coins: int = 5  # number of coins [range: [1, inf)]
    sigma: float = 0.3  # prior sd of the coin weights [range: (0, inf)]
    p_head: float = 0.5  # a probability [range: [0, 1]]
    sweep: list[float] = [0.1, 0.3]  # prior sds of the sweep [range: (0, inf)]
    kind: str = "ad"  # which model [choices: ad, ed]

Types: ``int``, ``float``, ``str``, ``bool``, ``list[int]``, ``list[float]``, ``list[str]`` (a list has at least one
element; on the command line it is written ``-p sweep=0.1,0.3``). Constraints are tags at the end of the help
comment: ``[range: LO, HI]`` with ``[``/``]`` for a closed and ``(``/``)`` for an open end (``inf``/``-inf`` for no
bound; infinity is a valid value only at a closed ``inf`` end) on ints and floats, ``[choices: a, b, c]`` on any
type but bool; on a list they constrain every element. NaN is never a valid float. The syntax avoids ``=`` so that
papermill (which skips a line with two ``=``) still reads every line. Values from the command line, from profiles
and the defaults themselves are checked before anything executes (see :func:`cast`).
"""
from __future__ import annotations

import ast
import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SCALARS = {"int": int, "float": float, "str": str, "bool": bool}
TYPES = [*SCALARS, *(f"list[{t}]" for t in ("int", "float", "str"))]
# constraint tags at the end of the help comment; no '=' anywhere (papermill skips a line with two '=')
RANGE = re.compile(r"\[range:\s*([\[(])\s*([^,\s]+)\s*,\s*([^\])\s]+)\s*([\])])\s*\]")
CHOICES = re.compile(r"\[choices:\s*([^\]]*)\]")
TRUE, FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}


class ParameterError(ValueError):
    """Bad parameters for an analysis (unknown name, wrong type, out of range); nothing was executed."""


@dataclass(frozen=True)
class Range:
    """An interval ``[lo, hi]``, ``(lo, hi)``, ... ; ``-inf``/``inf`` for an open side (admitted only if closed)."""
    lo: float
    hi: float
    lo_closed: bool
    hi_closed: bool

    def __contains__(self, x: float) -> bool:
        return (self.lo <= x if self.lo_closed else self.lo < x) and (x <= self.hi if self.hi_closed else x < self.hi)

    def __str__(self) -> str:
        def num(v: float) -> str:
            return str(int(v)) if math.isfinite(v) and float(v).is_integer() else str(v)

        return f"{'[' if self.lo_closed else '('}{num(self.lo)}, {num(self.hi)}{']' if self.hi_closed else ')'}"


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of TYPES
    default: Any
    help: str  # the help comment without its constraint tags
    range: Range | None = None
    choices: tuple | None = None

    @property
    def element(self) -> str:
        """The scalar type (the element type of a list)."""
        return self.type[5:-1] if self.type.startswith("list[") else self.type

    @property
    def constraint(self) -> str:
        """The declared constraint as written in the parameters cell ('' if none)."""
        parts = [f"range: {self.range}"] if self.range else []
        parts += [f"choices: {', '.join(map(str, self.choices))}"] if self.choices else []
        return "; ".join(parts)


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
    # the book's chapter list only: a book Quarto would refuse to render (e.g. an older commit's, read by `rli diff`)
    # still lists its analyses
    for _, chapter in chapter_entries(yaml.safe_load((root / "_quarto.yml").read_text())):
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
    if (root / "analyses" / f"{name}.py").exists():
        raise ParameterError(f"analyses/{name}.py exists but is not in the book: list paper/{name}.ipynb under "
                             f"book.chapters (in its study's part) in {root / '_quarto.yml'}; rli runs the analyses "
                             f"that _quarto.yml lists")
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
    """The declared parameters (papermill's inspection), each with a known type, a help comment and valid constraints;
    every default must satisfy its own declaration."""
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
        typ = re.sub(r"\s+", "", p["inferred_type_name"])
        where = f"{analysis.source}: parameter {name!r}"
        if typ not in TYPES:
            raise ParameterError(f"{where} needs a type annotation among {TYPES} (write `{name}: int = ...  # help`)")
        help_, rng, choices = _constraints(p["help"], typ, where)
        if not help_:
            raise ParameterError(f"{where} needs a `# help` comment")
        param = Param(name, typ, None, help_, rng, choices)
        try:
            default = cast(param, ast.literal_eval(p["default"]), "the parameters cell", text=False)
        except (ValueError, SyntaxError) as e:
            raise ParameterError(f"{analysis.source}: the default of {name!r} is invalid: {e}") from None
        out[name] = Param(name, typ, default, help_, rng, choices)
    return out


def _constraints(text: str, typ: str, where: str) -> tuple[str, Range | None, tuple | None]:
    """Split a help comment into (help, range, choices); the tags are ``[range: (0, 1]]`` and ``[choices: a, b]``."""
    rng = choices = None
    if m := RANGE.search(text):
        if typ.removeprefix("list[").rstrip("]") not in {"int", "float"}:
            raise ParameterError(f"{where}: a [range: ...] needs an int or float parameter, not {typ}")
        try:
            lo, hi = (float(v) for v in (m.group(2), m.group(3)))
        except ValueError:
            raise ParameterError(f"{where}: bad range {m.group(0)}; write e.g. [range: (0, 1]] or [range: [1, inf)]") \
                from None
        if math.isnan(lo) or math.isnan(hi) or lo > hi:
            raise ParameterError(f"{where}: bad range {m.group(0)} (need lo <= hi)")
        rng = Range(lo, hi, m.group(1) == "[", m.group(4) == "]")
        text = text[:m.start()] + text[m.end():]
    if m := CHOICES.search(text):
        elem = SCALARS[typ.removeprefix("list[").rstrip("]")]
        if elem is bool:
            raise ParameterError(f"{where}: a bool needs no [choices: ...]")
        probe = Param("choice", typ.removeprefix("list[").rstrip("]"), None, "")
        try:
            choices = tuple(_scalar(probe, v.strip(), "[choices]", True) for v in m.group(1).split(",") if v.strip())
        except ParameterError as e:  # name the file and the parameter, not the probe
            raise ParameterError(f"{where}: bad {m.group(0)}: {str(e).replace('parameter choice ', 'a value ')}") \
                from None
        if not choices:
            raise ParameterError(f"{where}: [choices: ...] lists no value")
        text = text[:m.start()] + text[m.end():]
    elif "[range" in text or "[choices" in text:
        raise ParameterError(f"{where}: cannot read the constraint in {text!r}; write [range: (0, 1]], "
                             f"[range: [1, inf)] or [choices: a, b]")
    return " ".join(text.split()), rng, choices


def cast(param: Param, value: Any, origin: str = "-p", text: bool = True) -> Any:
    """``value`` as ``param``'s type, checked against its range/choices; ``ParameterError`` naming all three otherwise.

    With ``text`` (a command line) a string is parsed: ``"1_000"`` for an int, ``"true"``/``"1"``/``"no"`` for a bool,
    ``"0.1,0.3"`` or ``"[0.1, 0.3]"`` for a list. Without it (a TOML profile, a default) the value must already have
    the type: an int is not a bool, a bool is not an int, 1.5 is not an int, a string is not a number or a list.
    A float may be an int (1 -> 1.0). NaN is never a valid value; ±inf only where the range includes it.
    """
    if param.type.startswith("list["):
        if isinstance(value, str) and text:
            body = value.strip()
            if body.startswith("[") and body.endswith("]"):
                body = body[1:-1]
            items = [v.strip() for v in body.split(",")] if body.strip() else []
            if any(v == "" for v in items):
                raise ParameterError(f"parameter {param.name} = {value!r} ({origin}) has an empty element; "
                                     f"write comma-separated values, e.g. {param.name}=1,2,3")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ParameterError(f"parameter {param.name} is a {param.type}; got {value!r} ({origin}); write "
                                 + (f"{param.name}=1,2,3 on the command line" if text else
                                    f"an array, {param.name} = [1, 2, 3]"))
        if not items:
            raise ParameterError(f"parameter {param.name} is a {param.type} and needs at least one element; "
                                 f"got {value!r} ({origin})")
        return [_scalar(param, v, origin, text) for v in items]
    return _scalar(param, value, origin, text)


def _scalar(param: Param, value: Any, origin: str, text: bool) -> Any:
    typ, name = param.element, param.name
    is_list = param.type != typ
    article = "an" if typ == "int" else "a"
    what = f"parameter {name} is a {param.type} and each element {article} {typ}" if is_list else \
        f"parameter {name} is {article} {typ}"
    if text and isinstance(value, str) and typ != "str":
        raw = value.strip()
        if typ == "bool":
            if raw.lower() in TRUE | FALSE:
                return raw.lower() in TRUE
            raise ParameterError(f"{what}; got {value!r} ({origin}); use true/false (or 1/0, yes/no, on/off)")
        if typ == "int":
            if not re.fullmatch(r"[+-]?\d+(_\d+)*", raw):
                raise ParameterError(f"{what}; {value!r} ({origin}) is not an integer")
            out: Any = int(raw)
        else:
            try:
                out = float(raw)
            except ValueError:
                raise ParameterError(f"{what}; {value!r} ({origin}) is not a number") from None
    elif typ == "bool":
        if not isinstance(value, bool):
            raise ParameterError(f"{what}; got {value!r} ({type(value).__name__}, {origin}); write true or false")
        return value
    elif typ == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterError(f"{what}; got {value!r} ({type(value).__name__}, {origin})")
        out = value
    elif typ == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParameterError(f"{what}; got {value!r} ({type(value).__name__}, {origin})")
        out = float(value)
    else:
        if not isinstance(value, str):
            raise ParameterError(f"{what}; got {value!r} ({type(value).__name__}, {origin}); quote it")
        out = value
    subject = f"parameter {name} ({param.type}): element {out!r}" if is_list else f"parameter {name} = {out!r}"
    if typ == "float" and math.isnan(out):
        raise ParameterError(f"{subject} ({origin}) is not a number; give a finite value"
                             + (f" in {param.range}" if param.range else ""))
    if param.range is not None and out not in param.range:
        raise ParameterError(f"{subject} ({origin}) is out of range: it must lie in {param.range}")
    if typ == "float" and math.isinf(out) and param.range is None:
        raise ParameterError(f"{subject} ({origin}) must be finite")
    if param.choices is not None and out not in param.choices:
        raise ParameterError(f"{subject} ({origin}) is not one of the choices: "
                             f"{', '.join(map(str, param.choices))}")
    return out


class Profile(dict):
    """A profile's overrides for one analysis (typed TOML values), remembering where they come from."""

    def __init__(self, values: dict, origin: str):
        super().__init__(values)
        self.origin = origin


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
    """Defaults, then each overrides dict in turn, cast to the declared types and checked against the declared
    constraints. A :class:`Profile` layer holds typed TOML values; any other dict is command-line text (``-p``)."""
    params = {name: p.default for name, p in spec.items()}
    for layer in overrides:
        typed = isinstance(layer, Profile)
        origin = layer.origin if typed else "-p"
        for name, value in (layer or {}).items():
            if name not in spec:
                raise ParameterError(f"{analysis.name} has no parameter {name!r} ({origin}); its parameters are: "
                                     f"{', '.join(spec) or '(none)'} (see `rli list`)")
            try:
                params[name] = cast(spec[name], value, origin, text=not typed)
            except ParameterError as e:
                raise ParameterError(f"{analysis.name}: {e}") from None
    return params


def profile(root: Path, analysis: Analysis, name: str | None) -> Profile:
    """Overrides that profile ``name`` sets for ``analysis``: ``analyses/<study>/profiles.toml`` → ``[name.NN_topic]``."""
    if not name or name == "default":
        return Profile({}, "default profile")
    path = root / "analyses" / analysis.study / "profiles.toml"
    if not path.exists():
        return Profile({}, f"profile {name}")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ParameterError(f"{path} is not valid TOML: {e}") from e
    return Profile(table.get(name, {}).get(analysis.name.split("/", 1)[1], {}),
                   f"profile {name}, {path.relative_to(root)}")


def known_profiles(root: Path) -> set[str]:
    names = {"default"}
    for path in (root / "analyses").glob("*/profiles.toml"):
        names |= set(tomllib.loads(path.read_text()))
    return names
