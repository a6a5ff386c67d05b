"""Chapter helpers: computed tables and prose as Markdown outputs.

Quarto and the pandoc fallback both render ``text/markdown`` outputs natively (HTML *and* Typst/PDF), so every table
and every sentence with a number in it is emitted from code with these helpers instead of being typed into the prose.
:func:`claim` fails the chapter when a sentence of the prose stops being true of its results, and
:func:`config_table` renders a config dataclass (value and documentation of each field) so hyper-parameter tables
are never retyped.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.display import Markdown


SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def fmt(x: Any, digits: int = 4) -> str:
    """Format a table cell by the book's one number rule.

    Floats get ``digits`` decimals with trailing zeros dropped (``0.3``, not ``0.3000``; ``14.007``), at least one
    decimal so a float never reads as an integer (``2.0``); values that would round to zero at ``digits`` decimals,
    and values of 10⁷ or more, are written in scientific notation as a reader writes it (``5.628 × 10⁻⁵``, never
    ``5.628e-05``); NaN is a dash. Integers and strings are shown as they are; numpy scalars like their Python kin.
    """
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if math.isinf(x):
            return "∞" if x > 0 else "−∞"
        if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e7):
            mantissa, exponent = f"{x:.{max(digits - 1, 0)}e}".split("e")
            if "." in mantissa:
                mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa} × 10{str(int(exponent)).translate(SUPERSCRIPT)}"
        text = f"{x:.{digits}f}"
        if "." in text:
            text = text.rstrip("0")
            text = text + "0" if text.endswith(".") else text
        return "0.0" if text in ("-0.0", "−0.0") else text
    try:  # numpy scalars
        import numpy as np

        if isinstance(x, np.integer):
            return str(int(x))
        if isinstance(x, np.floating):
            return fmt(float(x), digits)
    except ImportError:  # pragma: no cover
        pass
    return str(x)


def md_table_text(rows: Any, columns: Sequence[str] | None = None, digits: int = 4) -> str:
    """A pipe table from a pandas DataFrame, a list of dicts or a list of sequences (with ``columns``)."""
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        columns = [str(c) for c in rows.columns]
        rows = rows.to_dict("records")
    rows = list(rows)
    if rows and isinstance(rows[0], Mapping):
        columns = list(columns or rows[0].keys())
        body = [[r.get(c, "") for c in columns] for r in rows]
    else:
        if columns is None:
            raise ValueError("md_table_text: pass `columns` when rows are sequences")
        body = [list(r) for r in rows]
    cells = [[fmt(v, digits) for v in r] for r in body]
    numeric = [all(_is_number(r[j]) for r in body) if body else False for j in range(len(columns))]
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join(("-" * (w - 1) + ":") if num else (":" + "-" * (w - 1))
                         for num, w in zip(numeric, column_weights(columns, cells))) + "|"
    lines = [head, sep] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
    return "\n".join(lines)


def column_weights(columns: Sequence[str], cells: Sequence[Sequence[str]], cap: int = 40, line: int = 100) \
        -> list[int]:
    """Relative widths of a pipe table's columns, written as the number of dashes of its separator line.

    Pandoc (and so Quarto) sizes the columns of a pipe table whose lines are long by the dashes of each column; equal
    separators would give every column the same width, so a column of long text squeezes and a short one wraps
    one word per line. Each column needs its longest word (header included) and wants its longest cell (at most
    ``cap`` characters), plus 3 for the cell's padding (5 pt each side). When the wants exceed a ``line`` of about
    100 characters (the PDF's text width in the 8 pt table font), every column keeps its need and the rest of the
    line is shared in proportion to what each still wants, so no word is broken while long text wraps."""
    need, want = [], []
    for j, name in enumerate(columns):
        texts = [str(r[j]) for r in cells if j < len(r)]
        longest_word = max((len(w) for t in [name, *texts] for w in t.split()), default=0)
        longest_cell = max((len(t) for t in texts), default=0)
        need.append(3 + max(3, longest_word))
        want.append(3 + max(3, longest_word, min(longest_cell, cap)))
    if sum(want) <= line or sum(need) >= line:
        return want if sum(want) <= line else need
    share = (line - sum(need)) / (sum(want) - sum(need))
    return [n + round((w - n) * share) for n, w in zip(need, want)]


def md_table(rows: Any, columns: Sequence[str] | None = None, digits: int = 4) -> Markdown:
    """Display a table (use in a cell with ``#| label: tbl-...`` and ``#| tbl-cap: ...``)."""
    return Markdown(md_table_text(rows, columns, digits))


def md(text: str) -> Markdown:
    """Display computed prose, e.g. ``md(f"The agent reaches {frac:.1%} of the optimum.")``.

    Only for sentences that carry computed numbers; fixed prose belongs in a Markdown cell. Do not choose the verdict
    text with ``if``/``else`` inside the f-string (a reviewer never sees the branch that did not fire): state the
    criterion and the measured value, and guard the sentence with :func:`claim`."""
    return Markdown(text)


class Animation:
    """An animated figure for the book: the HTML page shows the GIF, the PDF a still (see :func:`animation`)."""

    def __init__(self, gif: bytes | None, still_png: bytes, alt: str):
        if gif is not None and (not isinstance(gif, bytes) or not gif.startswith((b"GIF87a", b"GIF89a"))):
            raise ValueError("animation: gif must be the bytes of a GIF file (or None for the still alone)")
        if not isinstance(still_png, bytes) or not still_png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError("animation: still_png must be the bytes of a PNG file")
        if not isinstance(alt, str) or not alt.strip():
            raise TypeError(f"animation: alt must be a non-empty description of the animation, got {alt!r}")
        self.gif, self.still_png, self.alt = gif, still_png, alt

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict[str, str]:
        import base64
        import html

        bundle = {"image/png": base64.b64encode(self.still_png).decode(), "text/plain": self.alt}
        if self.gif is not None:
            bundle["text/html"] = (f'<img src="data:image/gif;base64,{base64.b64encode(self.gif).decode()}" '
                                   f'alt="{html.escape(self.alt)}" style="max-width:100%">')
        return bundle


def animation(gif: bytes | None, still_png: bytes, alt: str) -> Animation:
    """Display an animation as one figure output (use in a cell with ``#| label: fig-...`` and ``#| fig-cap: ...``).

    The output is one display bundle: ``text/html`` (the GIF as an ``<img>``), ``image/png`` (``still_png``) and
    ``text/plain`` (``alt``). Quarto picks a representation per format — HTML prefers ``text/html``, Typst/PDF takes
    ``image/png`` because it cannot show HTML or animate — and the fallback renderer does the same, so each format
    gets a captioned, numbered figure. Quarto knows no ``image/gif`` output (an ``IPython.display.Image`` of a GIF would
    print its text/plain repr), hence the GIF inside HTML. ``gif=None`` shows the still in every format.
    """
    return Animation(gif, still_png, alt)


class ClaimError(AssertionError):
    """A sentence of a chapter's prose is no longer true of the results it describes."""


def claim(condition: Any, message: str) -> None:
    """Fail the chapter unless ``condition`` holds: the guard of a sentence whose truth depends on a result.

    Write the criterion next to the sentence it protects, e.g.
    ``claim(err.max() < 1e-3, "completeness error below the 1e-3 tolerance")``. ``condition`` must be a Python or
    numpy bool (or a one-element boolean array/tensor): a number such as ``0.3`` is refused rather than read as
    "true", so a forgotten comparison cannot pass silently. Raises :class:`ClaimError` naming the claim when the
    condition is false; returns ``None``.
    """
    if not isinstance(message, str) or not message.strip():
        raise TypeError(f"claim: message must be a non-empty string naming the claim, got {message!r}")
    value = _as_bool(condition)
    if value is None:
        raise TypeError(f"claim {message!r}: condition must be a bool (a comparison), got {type(condition).__name__} "
                        f"{condition!r}")
    if not value:
        raise ClaimError(f"claim failed: {message}")


def _as_bool(x: Any) -> bool | None:
    if isinstance(x, bool):
        return x
    try:
        import numpy as np

        if isinstance(x, np.bool_):
            return bool(x)
        if isinstance(x, np.ndarray) and x.dtype == np.bool_ and x.size == 1:
            return bool(x.reshape(()))
    except ImportError:  # pragma: no cover
        pass
    if type(x).__module__ == "torch" and getattr(x, "dtype", None) is not None and str(x.dtype) == "torch.bool" \
            and x.numel() == 1:
        return bool(x.item())
    return None


def config_value(v: Any) -> str:
    """A config value as it would be typed: ``1e-05``, ``1,000,000``, ``True``, ``ego_attention``."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, str):
        return f"`{v}`"
    return fmt(v) if not isinstance(v, (dict, list, tuple)) else (repr(v) if v else "–")


def field_docs(cls: type) -> dict[str, str]:
    """Per-field documentation of a dataclass, read from what its source already says, in this order of precedence:
    ``field(metadata={"help": ...})``; a ``name: text`` line in the class docstring; the trailing ``# comment`` on
    the field's line in the class body. Fields without any documentation are absent."""
    import dataclasses
    import inspect
    import re

    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"field_docs: expected a dataclass, got {cls!r}")
    cls = cls if isinstance(cls, type) else type(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    docs: dict[str, str] = {}
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):  # defined interactively: no source to read
        lines = []
    for line in lines:
        m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$", line)
        if m and m.group(1) in names and m.group(1) not in docs:
            docs[m.group(1)] = m.group(2)
    for line in (inspect.getdoc(cls) or "").splitlines():
        m = re.match(r"\s*`{0,2}(\w+)`{0,2}\s*(?::|--|—)\s+(.+?)\s*$", line)
        if m and m.group(1) in names:
            docs[m.group(1)] = m.group(2)
    for f in dataclasses.fields(cls):
        if f.metadata.get("help"):
            docs[f.name] = str(f.metadata["help"])
    return docs


def config_table_text(cfg: Any, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> str:
    """The pipe table of :func:`config_table`."""
    import dataclasses

    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"config_table: expected a dataclass instance (a config), got {cfg!r}")
    names = [f.name for f in dataclasses.fields(cfg)]
    unknown = sorted(set(include or ()).union(exclude) - set(names))
    if unknown:
        raise ValueError(f"config_table: {type(cfg).__name__} has no field(s) {unknown}; fields are {names}")
    chosen = [n for n in (include if include is not None else names) if n not in set(exclude)]
    docs = field_docs(type(cfg))
    rows = [[n, config_value(getattr(cfg, n)), docs.get(n, "")] for n in chosen]
    return md_table_text(rows, columns=["field", "value", "meaning"])


def config_table(cfg: Any, include: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> Markdown:
    """Display a dataclass config as a table of field, value and the field's documentation (see :func:`field_docs`),
    so a chapter's hyper-parameter table is the config that ran, never a retyped copy. ``include`` picks and orders
    fields, ``exclude`` drops some (e.g. a device)."""
    return Markdown(config_table_text(cfg, include, exclude))


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    try:
        float(x)
        return not isinstance(x, str)
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------------------------
# Results: the one way a chapter declares the scalar numbers a sweep gathers into its table

RESULTS_ENV = "RLI_RESULTS"  # set by `rli run` (and so by every sweep point): the JSON file record() writes
RESERVED = frozenset({"point", "status"})  # columns of a sweep's table that are not results
recorded: dict[str, Any] = {}  # this kernel's results so far, in recording order


def record(name: str, value: Any) -> Any:
    """Record the scalar result ``name`` of this chapter and return ``value`` unchanged.

    ``rli run`` stores every recorded result in the executed chapter's metadata (``metadata.rlinterp.results``), and
    ``rli sweep`` gathers them, one row per point of its grid, into the sweep's table: e.g.
    ``record("pct_optimal", 100 * dqn / optimal)``. ``name`` is an identifier (it becomes a column; ``point`` and
    ``status`` are taken); ``value`` a bool, int, float (NaN and ±inf are kept) or str, or a numpy / torch scalar
    (read as its Python kin). Recording a name again replaces its value. Outside ``rli run`` (an interactive kernel)
    the value is only kept in :data:`recorded`.
    """
    import json
    import os
    import re
    from pathlib import Path

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"record: the name must be an identifier (letters, digits, _), got {name!r}")
    if name in RESERVED:
        raise ValueError(f"record: {name!r} is a column of every sweep table; choose another name")
    recorded[name] = _scalar_result(name, value)
    path = os.environ.get(RESULTS_ENV)
    if path:
        from rlinterp.pipeline.manifest import atomic_write_bytes

        atomic_write_bytes(Path(path), json.dumps({k: encode_result(v) for k, v in recorded.items()}).encode())
    return value


def _scalar_result(name: str, value: Any) -> bool | int | float | str:
    if not isinstance(value, (bool, int, float, str)):
        shape = getattr(value, "shape", None)  # numpy scalars, 0-d arrays and tensors
        if callable(getattr(value, "item", None)) and shape is not None and tuple(shape) == ():
            value = value.item()
    if isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"record({name!r}, ...): a result is one number, bool or string, got {type(value).__name__} "
                    f"{str(value)[:80]}; record each number under its own name")


def encode_result(value: Any) -> Any:
    """A result as strict JSON: NaN and ±inf become ``{"float": "nan"}`` etc. (see :func:`decode_result`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"float": str(value)}
    return value


def decode_result(value: Any) -> Any:
    """The inverse of :func:`encode_result`."""
    if isinstance(value, dict) and set(value) == {"float"}:
        return float(value["float"])
    return value
