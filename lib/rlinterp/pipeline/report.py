"""Chapter helpers: computed tables and prose as Markdown outputs.

Quarto and the pandoc fallback both render ``text/markdown`` outputs natively (HTML *and* Typst/PDF), so every table
and every sentence with a number in it is emitted from code with these helpers instead of being typed into the prose.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from IPython.display import Markdown


def fmt(x: Any, digits: int = 4) -> str:
    """Format a cell: floats with ``digits`` significant decimals, ints and strings as they are."""
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        if x != 0 and (abs(x) < 10 ** -digits or abs(x) >= 1e7):
            return f"{x:.{digits - 1}e}"
        return f"{x:.{digits}f}"
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
    sep = "|" + "|".join("---:" if num else ":---" for num in numeric) + "|"
    lines = [head, sep] + ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
    return "\n".join(lines)


def md_table(rows: Any, columns: Sequence[str] | None = None, digits: int = 4) -> Markdown:
    """Display a table (use in a cell with ``#| label: tbl-...`` and ``#| tbl-cap: ...``)."""
    return Markdown(md_table_text(rows, columns, digits))


def md(text: str) -> Markdown:
    """Display computed prose, e.g. ``md(f"The agent reaches {frac:.1%} of the optimum.")``."""
    return Markdown(text)


def _is_number(x: Any) -> bool:
    if isinstance(x, bool):
        return False
    try:
        float(x)
        return not isinstance(x, str)
    except (TypeError, ValueError):
        return False
