"""The quiz world of the Culture study: Fleuret's grid quizzes (fleuret.org/public/culture, ``grids.py``).

**Quiz.** Four grids ``A, f(A), B, f(B)`` of ``height x width`` cells, each cell one of ``n_colors`` colours (0 is the
white background). ``f`` is one *world task* with quiz-level parameters ``theta`` (colours, a direction, ...) shared by
the two pairs: ``f(A) = apply(theta, A)`` and ``f(B) = apply(theta, B)``, where ``apply`` is a deterministic function of
the grid. ``theta`` is readable from ``(A, f(A))`` and ``B``, so the model must produce ``f(B)`` given the other three.

**Tokens.** Colours are tokens ``0 .. n_colors - 1``; the four grid markers ``A, f_A, B, f_B`` are tokens
``n_colors .. n_colors + 3`` (vocabulary ``n_colors + 4``; Fleuret: 11 colours, 15 tokens). A quiz is flattened, in a
*structure* (an order of the four grids; :data:`FORWARD` = ``("A", "f_A", "B", "f_B")``), as
``[marker, grid row-major] x 4``: ``4 * (1 + height * width)`` tokens. :data:`STRUCTS` are Fleuret's five "understood
structures" (``quiz_machine.py``): four that ask for one grid from the other three (forward, inverse, and with the pairs
swapped) and the generation order ``f_B, f_A, A, B`` used to invent culture quizzes.

**Tasks.** Ten of Fleuret's world tasks (same rules, re-implemented on numpy, see each ``_apply_*``): ``replace_color``,
``translate``, ``grow``, ``half_fill``, ``frame``, ``detect``, ``contact``, ``corners``, ``path``, ``fill``. Scenes are
non-overlapping solid rectangles of distinct colours, so every object is found by its colour (its bounding box).
Quizzes where ``f(A) == A`` or ``f(B) == B`` are rejected (Fleuret's ``trivial``). Not implemented: ``scale``,
``symbols`` (need ~10x10 room) and the "hard" ``isometry``, ``trajectory``, ``bounce``.

**Size.** Default ``6 x 6`` grids, 11 colours (148 tokens per quiz instead of Fleuret's 404 for ``10 x 10``):
attention cost grows with the square of the sequence, and on this project's 2-CPU machines a 0.85M-parameter GPT trains
on ~7x more ``6 x 6`` quizzes than ``10 x 10`` ones per minute (``shared/reference/culture.md``), which is what makes
five models and several culture rounds fit. Rectangles are at least ``2 x 2`` (Fleuret: ``3 x 3``) so three of them fit
in a ``6 x 6`` grid; the rectangle a task transforms keeps the size the task needs (e.g. ``3 x 3`` for ``frame``).

**Splits.** Every quiz has a split fixed by its content: the blake2b hash of its four grids (forward order) decides
``"heldout"`` (a ``heldout_frac`` share of the hash space) or ``"train"``. :meth:`QuizWorld.generate` draws quizzes from
the world's distribution and *rejects* those whose hash belongs to the other split, so training and held-out quizzes
are disjoint by construction (and a held-out set is the world's distribution restricted to its hash bucket).

**Pictures.** :func:`draw_quizzes` draws quizzes as coloured grids (matplotlib), optionally with a model's answer
framed green (right) or red (wrong).
"""
from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Callable, Iterable

import numpy as np

from rlinterp.validation import check_choice, check_float, check_int

# ----------------------------------------------------------------------------------------------------------------
# Vocabulary and structures

#: the four grids of a quiz, in forward order
PARTS = ("A", "f_A", "B", "f_B")
#: the forward structure: the model reads A, f(A), B and writes f(B)
FORWARD = ("A", "f_A", "B", "f_B")
#: Fleuret's understood structures: (order of the grids, which grids are generated)
STRUCTS: tuple[tuple[tuple[str, ...], tuple[int, ...]], ...] = (
    (("A", "f_A", "B", "f_B"), (0, 0, 0, 1)),
    (("f_A", "A", "f_B", "B"), (0, 0, 0, 1)),
    (("B", "f_B", "A", "f_A"), (0, 0, 0, 1)),
    (("f_B", "B", "f_A", "A"), (0, 0, 0, 1)),
    (("f_B", "f_A", "A", "B"), (0, 1, 1, 1)),
)
#: display colours (RGB 0-255) of colour tokens 0..10: Fleuret's palette (white background first)
PALETTE = np.array([[255, 255, 255], [255, 0, 0], [0, 192, 0], [0, 0, 255], [255, 224, 0], [0, 255, 255],
                    [224, 128, 255], [192, 255, 192], [165, 42, 42], [192, 192, 255], [128, 128, 128]], np.uint8)


class NotApplicable(ValueError):
    """``apply(theta, X)``: ``theta`` does not apply to grid ``X`` (a colour missing, no room to move, ...)."""


# ----------------------------------------------------------------------------------------------------------------
# Grid helpers


def _bbox(X: np.ndarray, c: int) -> tuple[int, int, int, int]:
    """Bounding box ``(i1, j1, i2, j2)`` (end exclusive) of the cells of colour ``c``."""
    ii, jj = np.nonzero(X == c)
    if len(ii) == 0:
        raise NotApplicable(f"colour {c} absent")
    return int(ii.min()), int(jj.min()), int(ii.max()) + 1, int(jj.max()) + 1


def _need_absent(X: np.ndarray, c: int) -> None:
    if (X == c).any():
        raise NotApplicable(f"colour {c} already present")


def _objects(X: np.ndarray) -> list[int]:
    return [int(c) for c in np.unique(X) if c != 0]


def _neighbours4(M: np.ndarray) -> np.ndarray:
    """Cells 4-adjacent to a cell of mask ``M`` (not including ``M`` itself unless adjacent)."""
    N = np.zeros_like(M)
    N[1:] |= M[:-1]
    N[:-1] |= M[1:]
    N[:, 1:] |= M[:, :-1]
    N[:, :-1] |= M[:, 1:]
    return N


def _distances(free: np.ndarray, i: int, j: int) -> np.ndarray:
    """4-connected BFS distances from ``(i, j)`` through ``free`` cells (-1 where unreachable)."""
    H, W = free.shape
    d = np.full((H, W), -1, np.int64)
    d[i, j] = 0
    q = deque([(i, j)])
    while q:
        a, b = q.popleft()
        for da, db in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            x, y = a + da, b + db
            if 0 <= x < H and 0 <= y < W and free[x, y] and d[x, y] < 0:
                d[x, y] = d[a, b] + 1
                q.append((x, y))
    return d


@lru_cache(maxsize=None)
def _rect_table(H: int, W: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every rectangle of an ``H x W`` grid with at most half its area: boxes (R, 4) ``(i1, j1, i2, j2)``, cell
    masks (R, H*W) and weights (R,) of Fleuret's ``rec_coo`` draw (two sorted uniform corners per axis: a pair of
    distinct rows is twice as likely as a single row)."""
    boxes, masks, weights = [], [], []
    for i1 in range(H):
        for i2 in range(i1 + 1, H + 1):
            for j1 in range(W):
                for j2 in range(j1 + 1, W + 1):
                    if (i2 - i1) * (j2 - j1) > H * W // 2:
                        continue
                    m = np.zeros((H, W), bool)
                    m[i1:i2, j1:j2] = True
                    boxes.append((i1, j1, i2, j2))
                    masks.append(m.reshape(-1))
                    weights.append((1 if i2 - i1 == 1 else 2) * (1 if j2 - j1 == 1 else 2))
    return np.array(boxes), np.array(masks, np.float32), np.array(weights, float)


def _place_rects(rng: np.random.Generator, H: int, W: int, mins: list[tuple[int, int]]
                 ) -> list[tuple[int, int, int, int]] | None:
    """Non-overlapping rectangles ``(i1, j1, i2, j2)``, the k-th at least ``mins[k]`` (height, width) and at most
    half the grid's area, each drawn from Fleuret's ``rec_coo`` distribution restricted to the rectangles that fit
    (placed largest minimum first). None when one does not fit."""
    boxes, masks, weights = _rect_table(H, W)
    hs, ws = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    occ = np.zeros(H * W, np.float32)
    out: dict[int, tuple[int, int, int, int]] = {}
    for k in sorted(range(len(mins)), key=lambda k: -mins[k][0] * mins[k][1]):
        mh, mw = mins[k]
        w = weights * ((hs >= mh) & (ws >= mw) & (masks @ occ == 0))
        total = w.sum()
        if total == 0:
            return None
        n = int(np.searchsorted(np.cumsum(w), rng.random() * total, side="right"))
        out[k] = tuple(int(v) for v in boxes[n])
        occ = occ + masks[n]
    return [out[k] for k in range(len(mins))]


def _paint(X: np.ndarray, rects, colours) -> np.ndarray:
    for (i1, j1, i2, j2), c in zip(rects, colours):
        X[i1:i2, j1:j2] = c
    return X


# ----------------------------------------------------------------------------------------------------------------
# The tasks: apply (the function f), grid (a random input grid for theta), params (theta from the quiz's colours)
#
# Every task draws ``k`` distinct non-background colours ``c`` per quiz (shared by A and B, as in Fleuret's code) and
# random choices (a direction, ...) into ``theta``; ``space(n_colors)`` lists every ``theta`` (used by the tests to
# check that f(B) is determined by the quiz).


def _apply_replace_color(theta, X):
    a, b = theta
    _bbox(X, a)
    _need_absent(X, b)
    f = X.copy()
    f[X == a] = b
    return f


def _grid_three(rng, theta, c, H, W, mins=((2, 2),) * 3):
    r = _place_rects(rng, H, W, list(mins))
    return None if r is None else _paint(np.zeros((H, W), np.int64), r, c[:3])


def _apply_translate(theta, X):
    a, di, dj = theta
    i1, j1, i2, j2 = _bbox(X, a)
    if i1 + di < 0 or i2 + di > X.shape[0] or j1 + dj < 0 or j2 + dj > X.shape[1]:
        raise NotApplicable("no room to move")
    f = X.copy()
    M = X == a
    f[M] = 0
    f[np.roll(M, (di, dj), (0, 1))] = a  # the roll never wraps: the box stays inside the grid
    return f


def _grid_translate(rng, theta, c, H, W):
    a, di, dj = theta
    for _ in range(20):
        X = _grid_three(rng, theta, c, H, W)
        if X is None:
            continue
        try:
            _apply_translate(theta, X)
            return X
        except NotApplicable:
            continue
    return None


def _apply_grow(theta, X):
    a, d = theta
    i1, j1, i2, j2 = _bbox(X, a)
    f = X.copy()
    if d == 0:  # grow by one cell on every side
        if i1 == 0 or j1 == 0 or i2 == X.shape[0] or j2 == X.shape[1]:
            raise NotApplicable("no room to grow")
        f[i1 - 1:i2 + 1, j1 - 1:j2 + 1] = a
    else:  # shrink by one cell on every side
        if i2 - i1 < 3 or j2 - j1 < 3:
            raise NotApplicable("too small to shrink")
        f[i1:i2, j1:j2] = 0
        f[i1 + 1:i2 - 1, j1 + 1:j2 - 1] = a
    return f


def _grid_grow(rng, theta, c, H, W):
    a, d = theta
    r = _place_rects(rng, H, W, [(2, 2), (2, 2), (3, 3)])
    if r is None:
        return None
    X = _paint(np.zeros((H, W), np.int64), r[:2], c[:2])
    i1, j1, i2, j2 = r[2]
    if d == 0:  # the input is the inner rectangle, the output the full one
        X[i1 + 1:i2 - 1, j1 + 1:j2 - 1] = a
    else:
        X[i1:i2, j1:j2] = a
    return X


def _apply_half_fill(theta, X):
    a, d = theta
    i1, j1, i2, j2 = _bbox(X, a)
    sub = X[i1:i2, j1:j2]
    other = [int(v) for v in np.unique(sub) if v != a]
    if len(other) != 1 or other[0] == 0:
        raise NotApplicable("no line of one other colour inside")
    line = other[0]
    f = X.copy()
    if d in (0, 1):
        rows = np.nonzero((sub == line).all(1))[0]
        if len(rows) != 1 or (sub == line).sum() != sub.shape[1]:
            raise NotApplicable("no horizontal line")
        r = i1 + int(rows[0])
        if d == 0:
            f[r:i2, j1:j2] = line
        else:
            f[i1:r + 1, j1:j2] = line
    else:
        cols = np.nonzero((sub == line).all(0))[0]
        if len(cols) != 1 or (sub == line).sum() != sub.shape[0]:
            raise NotApplicable("no vertical line")
        s = j1 + int(cols[0])
        if d == 2:
            f[i1:i2, s:j2] = line
        else:
            f[i1:i2, j1:s + 1] = line
    return f


def _grid_half_fill(rng, theta, c, H, W):
    a, d = theta
    mins = [(3, 2)] * 3 if d in (0, 1) else [(2, 3)] * 3
    r = _place_rects(rng, H, W, mins)
    if r is None:
        return None
    X = np.zeros((H, W), np.int64)
    for n, (i1, j1, i2, j2) in enumerate(r):
        X[i1:i2, j1:j2] = c[2 * n]
        if d == 0:
            X[(i1 + i2) // 2, j1:j2] = c[2 * n + 1]
        elif d == 1:
            X[(i1 + i2 - 1) // 2, j1:j2] = c[2 * n + 1]
        elif d == 2:
            X[i1:i2, (j1 + j2) // 2] = c[2 * n + 1]
        else:
            X[i1:i2, (j1 + j2 - 1) // 2] = c[2 * n + 1]
    return X


def _apply_frame(theta, X):
    (a,) = theta
    i1, j1, i2, j2 = _bbox(X, a)
    if i2 - i1 < 3 or j2 - j1 < 3:
        raise NotApplicable("too small to frame")
    f = X.copy()
    f[i1 + 1:i2 - 1, j1 + 1:j2 - 1] = 0
    return f


def _grid_frame(rng, theta, c, H, W):
    return _grid_three(rng, theta, c, H, W, mins=((2, 2), (2, 2), (3, 3)))


def _apply_detect(theta, X):
    m, e = theta
    _bbox(X, e)
    _need_absent(X, m)
    f = X.copy()
    for b in _objects(X):
        if b == e:
            continue
        i1, j1, i2, j2 = _bbox(X, b)
        if i2 - i1 < 2 or j2 - j1 < 2:
            raise NotApplicable("object too small to mark")
        f[i1, j1] = f[i1 + 1, j1] = f[i1, j1 + 1] = m
    return f


def _apply_contact(theta, X):
    (a,) = theta
    _bbox(X, a)
    near = _neighbours4(X == a)
    f = X.copy()
    for b in _objects(X):
        if b != a and ((X == b) & near).any():
            i1, j1, i2, j2 = _bbox(X, b)
            f[i1, j1:j2] = f[i2 - 1, j1:j2] = a
            f[i1:i2, j1] = f[i1:i2, j2 - 1] = a
    return f


def _grid_contact(rng, theta, c, H, W):
    for _ in range(20):
        X = _grid_three(rng, theta, c, H, W)
        if X is not None and (_neighbours4(X == c[0]) & (X != 0) & (X != c[0])).any():
            return X
    return None


def _apply_corners(theta, X):
    f = X.copy()
    for b in _objects(X):
        i1, j1, i2, j2 = _bbox(X, b)
        f[i1:i2, j1:j2] = b
    return f


def _grid_corners(rng, theta, c, H, W, polarity=None):
    r = _place_rects(rng, H, W, [(2, 2)] * 3)
    if r is None:
        return None
    X = np.zeros((H, W), np.int64)
    p = theta[-1] if polarity is None else polarity
    for (i1, j1, i2, j2), col in zip(r, c):
        for k in range(2):
            if p == 0:  # top-left and bottom-right corners
                X[i1 + k, j1] = X[i1, j1 + k] = X[i2 - 1 - k, j2 - 1] = X[i2 - 1, j2 - 1 - k] = col
            else:  # top-right and bottom-left corners
                X[i1 + k, j2 - 1] = X[i1, j2 - 1 - k] = X[i2 - 1 - k, j1] = X[i2 - 1, j1 + k] = col
    return X


def _apply_path(theta, X):
    e, p = theta
    ii, jj = np.nonzero(X == e)
    if len(ii) != 2:
        raise NotApplicable("needs exactly two endpoints")
    _need_absent(X, p)
    free = (X == 0) | (X == e)
    d1 = _distances(free, int(ii[0]), int(jj[0]))
    d2 = _distances(free, int(ii[1]), int(jj[1]))
    D = d1[ii[1], jj[1]]
    if D < 0:
        raise NotApplicable("endpoints not connected")
    f = X.copy()
    f[(d1 >= 0) & (d2 >= 0) & (d1 + d2 == D) & (X == 0)] = p
    return f


def _grid_path(rng, theta, c, H, W):
    e, p = theta
    for _ in range(20):
        r = _place_rects(rng, H, W, [(2, 2)] * 2)
        if r is None:
            continue
        X = _paint(np.zeros((H, W), np.int64), r, c[:2])
        i1, i2 = rng.integers(0, H, 2)
        j1, j2 = rng.integers(0, W, 2)
        if abs(i1 - i2) + abs(j1 - j2) <= 2 or X[i1, j1] or X[i2, j2]:
            continue
        d = _distances(X == 0, int(i1), int(j1))[i2, j2]
        if 0 <= d < 2 * W:
            X[i1, j1] = X[i2, j2] = e
            return X
    return None


def _apply_fill(theta, X):
    (s,) = theta
    ii, jj = np.nonzero(X == s)
    if len(ii) != 1:
        raise NotApplicable("needs exactly one seed cell")
    i, j = int(ii[0]), int(jj[0])
    region = _distances((X == 0) | (X == s), i, j) >= 0
    f = X.copy()
    f[region] = s
    f[i, j] = 0
    return f


def _grid_fill(rng, theta, c, H, W):
    accept_full = rng.random() < 0.5  # Fleuret: half of the grids may have one connected background
    for _ in range(20):
        X = _grid_three(rng, theta, c, H, W)
        if X is None:
            continue
        zi, zj = np.nonzero(X == 0)
        if len(zi) == 0:
            continue
        k = rng.integers(len(zi))
        i, j = int(zi[k]), int(zj[k])
        region = _distances(X == 0, i, j) >= 0
        if accept_full or (~region & (X == 0)).any():
            X[i, j] = c[3]
            return X
    return None


def _pairs(n_colors):
    return [(a, b) for a in range(1, n_colors) for b in range(1, n_colors) if a != b]


@dataclass(frozen=True)
class Task:
    """A world task: ``k`` colours per quiz, ``params(rng, c) -> theta``, ``grid(rng, theta, c, H, W) -> X | None``,
    ``apply(theta, X) -> f(X)`` (raises :class:`NotApplicable`), ``space(n_colors) -> every theta``."""

    name: str
    k: int
    params: Callable[[np.random.Generator, np.ndarray], tuple]
    grid: Callable[..., np.ndarray | None]
    apply: Callable[[tuple, np.ndarray], np.ndarray]
    space: Callable[[int], list[tuple]]


def _dir(rng, n):
    return int(rng.integers(n))


def _translate_params(rng, c):
    while True:
        di, dj = (int(v) for v in rng.integers(-1, 2, 2))
        if di or dj:
            return (int(c[2]), di, dj)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("replace_color", 4, lambda rng, c: (int(c[0]), int(c[3])), _grid_three, _apply_replace_color, _pairs),
    Task("translate", 3, _translate_params, _grid_translate, _apply_translate,
         lambda n: [(a, di, dj) for a in range(1, n) for di in (-1, 0, 1) for dj in (-1, 0, 1) if di or dj]),
    Task("grow", 3, lambda rng, c: (int(c[2]), _dir(rng, 2)), _grid_grow, _apply_grow,
         lambda n: [(a, d) for a in range(1, n) for d in (0, 1)]),
    Task("half_fill", 6, lambda rng, c: (int(c[4]), _dir(rng, 4)), _grid_half_fill, _apply_half_fill,
         lambda n: [(a, d) for a in range(1, n) for d in range(4)]),
    Task("frame", 3, lambda rng, c: (int(c[2]),), _grid_frame, _apply_frame, lambda n: [(a,) for a in range(1, n)]),
    Task("detect", 4, lambda rng, c: (int(c[3]), int(c[2])), _grid_three, _apply_detect, _pairs),
    Task("contact", 3, lambda rng, c: (int(c[0]),), _grid_contact, _apply_contact,
         lambda n: [(a,) for a in range(1, n)]),
    # theta = (polarity,): the corner pattern of the inputs (f itself does not depend on it: fill every box)
    Task("corners", 3, lambda rng, c: (_dir(rng, 2),), _grid_corners, lambda theta, X: _apply_corners(theta, X),
         lambda n: [(0,), (1,)]),
    Task("path", 4, lambda rng, c: (int(c[2]), int(c[3])), _grid_path, _apply_path, _pairs),
    Task("fill", 4, lambda rng, c: (int(c[3]),), _grid_fill, _apply_fill, lambda n: [(a,) for a in range(1, n)]),
]}
#: the world tasks, in a fixed order (task ids index this tuple)
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
#: the fewest colours (background included) every task can be drawn with
MIN_COLORS = 1 + max(t.k for t in TASKS.values())


def quiz_split(grids: np.ndarray, heldout_frac: float) -> np.ndarray:
    """``"train"`` / ``"heldout"`` of quizzes ``grids`` (n, 4, H, W) (forward order), from the blake2b hash of each
    quiz's grids: held out iff the hash's first 8 bytes, as a fraction of 2**64, fall below ``heldout_frac``."""
    grids = np.asarray(grids)
    out = []
    for g in grids.reshape(-1, *grids.shape[-3:]):
        h = int.from_bytes(hashlib.blake2b(np.ascontiguousarray(g, dtype=np.uint8).tobytes(), digest_size=8).digest(),
                           "little")
        out.append("heldout" if h < heldout_frac * 2.0 ** 64 else "train")
    return np.array(out).reshape(grids.shape[:-3])


# ----------------------------------------------------------------------------------------------------------------
# The world


@dataclass
class QuizWorld:
    """Grid size, colours, tasks and held-out share of a quiz world (stored in checkpoints)."""

    height: int = 6
    width: int = 6
    n_colors: int = 11
    tasks: tuple[str, ...] = TASK_NAMES
    heldout_frac: float = 0.1

    def __post_init__(self):
        # 6 x 6 is the smallest grid every task can be drawn on (half_fill needs three 3-cell-tall rectangles)
        self.height = check_int("height", self.height, 6, 30)
        self.width = check_int("width", self.width, 6, 30)
        self.n_colors = check_int("n_colors", self.n_colors, MIN_COLORS, 64)
        self.tasks = tuple(self.tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one world task")
        for t in self.tasks:
            check_choice("task", t, TASK_NAMES)
        self.heldout_frac = check_float("heldout_frac", self.heldout_frac, 0.0, 1.0)
        if not 0 < self.heldout_frac < 1:
            raise ValueError(f"heldout_frac must lie strictly between 0 and 1, got {self.heldout_frac}")

    # --- sizes -------------------------------------------------------------------------------------------------
    @property
    def grid_len(self) -> int:
        return self.height * self.width

    @property
    def seq_len(self) -> int:
        """Tokens per quiz: ``4 * (1 + height * width)``."""
        return 4 * (1 + self.grid_len)

    @property
    def vocab_size(self) -> int:
        """Colours + 4 markers."""
        return self.n_colors + 4

    def marker(self, part: str) -> int:
        """The token of a grid marker (``"A"``, ``"f_A"``, ``"B"``, ``"f_B"``)."""
        return self.n_colors + PARTS.index(check_choice("part", part, PARTS))

    def to_dict(self) -> dict:
        return asdict(self)

    # --- generation --------------------------------------------------------------------------------------------
    def sample_quiz(self, rng: np.random.Generator, task: str) -> tuple[np.ndarray, tuple]:
        """One quiz of ``task`` (any split): grids (4, H, W) in forward order and its ``theta``."""
        t = TASKS[check_choice("task", task, TASK_NAMES)]
        for _ in range(10_000):
            c = rng.permutation(np.arange(1, self.n_colors))[:t.k]
            theta = t.params(rng, c)
            g = np.zeros((4, self.height, self.width), np.int64)
            ok = True
            for k in (0, 2):
                X = t.grid(rng, theta, c, self.height, self.width)
                if X is None:
                    ok = False
                    break
                g[k], g[k + 1] = X, t.apply(theta, X)
                if (g[k] == g[k + 1]).all():
                    ok = False
                    break
            if ok and not (g[0] == g[2]).all():
                return g, theta
        raise RuntimeError(f"could not draw a {task} quiz on {self.height} x {self.width} grids in 10000 attempts")

    def generate(self, n: int, rng: np.random.Generator | int, split: str = "train",
                 tasks: Iterable[str] | None = None) -> "Quizzes":
        """``n`` quizzes of ``split`` (``"train"`` or ``"heldout"``), tasks drawn uniformly from ``tasks`` (default:
        the world's), seeded by ``rng`` (a numpy Generator, advanced in place, or an int seed)."""
        n = check_int("n", n, 0)
        check_choice("split", split, ("train", "heldout"))
        tasks = self.tasks if tasks is None else tuple(tasks)
        for t in tasks:
            check_choice("task", t, TASK_NAMES)
        if not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(check_int("rng (seed)", rng, 0))
        grids = np.zeros((n, 4, self.height, self.width), np.int8)
        task_ids = np.zeros(n, np.int64)
        for q in range(n):
            while True:
                name = tasks[int(rng.integers(len(tasks)))]
                g, _ = self.sample_quiz(rng, name)
                if quiz_split(g, self.heldout_frac) == split:
                    break
            grids[q], task_ids[q] = g, TASK_NAMES.index(name)
        return Quizzes(grids, task_ids)

    # --- tokens ------------------------------------------------------------------------------------------------
    def to_tokens(self, quizzes: "Quizzes | np.ndarray", struct: tuple[str, ...] = FORWARD) -> np.ndarray:
        """Token sequences (n, seq_len) of quizzes (``Quizzes`` or grids (n, 4, H, W), forward order) laid out in
        ``struct``."""
        grids = quizzes.grids if isinstance(quizzes, Quizzes) else np.asarray(quizzes)
        struct = _check_struct(struct)
        if grids.ndim != 4 or grids.shape[1:] != (4, self.height, self.width):
            raise ValueError(f"grids must have shape (n, 4, {self.height}, {self.width}), got {grids.shape}")
        n = len(grids)
        out = np.zeros((n, 4, 1 + self.grid_len), np.int64)
        for k, part in enumerate(struct):
            out[:, k, 0] = self.marker(part)
            out[:, k, 1:] = grids[:, PARTS.index(part)].reshape(n, -1)
        return out.reshape(n, self.seq_len)

    def from_tokens(self, tokens: np.ndarray) -> tuple[np.ndarray, tuple[str, ...]]:
        """Grids (n, 4, H, W) in forward order and the structure, from token sequences (n, seq_len) of one
        structure. Colour tokens outside ``[0, n_colors)`` (a model's bad guesses) are kept as they are."""
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens must have shape (n, {self.seq_len}), got {tokens.shape}")
        t = tokens.reshape(len(tokens), 4, 1 + self.grid_len)
        marks = t[:, :, 0] - self.n_colors
        if len(t) == 0:
            return np.zeros((0, 4, self.height, self.width), np.int64), FORWARD
        if (marks != marks[:1]).any() or marks.min() < 0 or marks.max() > 3 or len(set(marks[0].tolist())) != 4:
            raise ValueError("tokens must all be of one structure with the four markers A, f_A, B, f_B")
        struct = tuple(PARTS[m] for m in marks[0])
        grids = np.zeros((len(t), 4, self.height, self.width), np.int64)
        for k, part in enumerate(struct):
            grids[:, PARTS.index(part)] = t[:, k, 1:].reshape(len(t), self.height, self.width)
        return grids, struct

    def answer_mask(self, struct: tuple[str, ...] = FORWARD, parts: tuple[int, ...] = (0, 0, 0, 1)) -> np.ndarray:
        """Boolean (seq_len,): the colour cells (not the markers) of the grids flagged in ``parts`` (per position in
        ``struct``): by default the answer grid f(B) of the forward structure."""
        _check_struct(struct)
        if len(parts) != 4 or any(p not in (0, 1) for p in parts):
            raise ValueError(f"parts must be four 0/1 flags, got {parts!r}")
        m = np.zeros((4, 1 + self.grid_len), bool)
        for k, p in enumerate(parts):
            m[k, 1:] = bool(p)
        return m.reshape(-1)


def _check_struct(struct) -> tuple[str, ...]:
    struct = tuple(struct)
    if sorted(struct) != sorted(PARTS):
        raise ValueError(f"struct must be an order of {PARTS}, got {struct!r}")
    return struct


@dataclass
class Quizzes:
    """Quizzes as grids (n, 4, H, W) in forward order (A, f_A, B, f_B) and their task ids (n,) into
    :data:`TASK_NAMES`."""

    grids: np.ndarray
    task: np.ndarray = field(default=None)

    def __post_init__(self):
        self.grids = np.asarray(self.grids)
        if self.grids.ndim != 4 or self.grids.shape[1] != 4:
            raise ValueError(f"grids must have shape (n, 4, H, W), got {self.grids.shape}")
        self.task = np.full(len(self.grids), -1, np.int64) if self.task is None else np.asarray(self.task)
        if self.task.shape != (len(self.grids),):
            raise ValueError("task must hold one id per quiz")

    def __len__(self) -> int:
        return len(self.grids)

    def __getitem__(self, idx) -> "Quizzes":
        idx = np.atleast_1d(np.arange(len(self))[idx])
        return Quizzes(self.grids[idx], self.task[idx])

    @staticmethod
    def concat(parts: "list[Quizzes]") -> "Quizzes":
        return Quizzes(np.concatenate([p.grids for p in parts]), np.concatenate([p.task for p in parts]))


# ----------------------------------------------------------------------------------------------------------------
# Pictures


def draw_quizzes(grids: np.ndarray | Quizzes, answers: np.ndarray | None = None, titles: list[str] | None = None,
                 ncols: int = 2, cell: float = 0.18, fig=None):
    """Draw quizzes as rows ``A  f(A)  |  B  f(B)`` of coloured grids, ``ncols`` quizzes per figure row.

    ``answers`` (n, H, W), optional: a model's f(B), drawn in place of the true one and framed green where it equals
    the truth and red where not. ``titles``: one line above each quiz (task name, probabilities, ...). Returns the
    matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    if isinstance(grids, Quizzes):
        if titles is None and (grids.task >= 0).all():
            titles = [TASK_NAMES[t] for t in grids.task]
        grids = grids.grids
    grids = np.asarray(grids)
    if grids.ndim != 4 or grids.shape[1] != 4:
        raise ValueError(f"grids must have shape (n, 4, H, W), got {grids.shape}")
    n, _, H, W = grids.shape
    ncols = check_int("ncols", ncols, 1)
    if answers is not None:
        answers = np.asarray(answers)
        if answers.shape != (n, H, W):
            raise ValueError(f"answers must have shape ({n}, {H}, {W}), got {answers.shape}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must hold {n} strings, got {len(titles)}")
    colours = np.vstack([PALETTE, np.tile([[40, 40, 40]], (64, 1))]).astype(float) / 255  # unknown tokens: dark
    nrows = max(1, -(-n // ncols))
    gap = 1.0
    quiz_w = 4 * W + 3 * gap + gap  # A fA  B fB with a wider gap between the pairs
    fig = fig or plt.figure(figsize=(ncols * quiz_w * cell + 0.3, nrows * (H + 2) * cell + 0.3))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.5, ncols * (quiz_w + 2 * gap))
    ax.set_ylim(nrows * (H + 2.5), -0.5)
    ax.set_aspect("equal")
    ax.axis("off")
    for q in range(n):
        r, col = divmod(q, ncols)
        x0, y0 = col * (quiz_w + 2 * gap), r * (H + 2.5) + 1.2
        for k in range(4):
            g = grids[q, k] if not (k == 3 and answers is not None) else answers[q]
            xk = x0 + k * (W + gap) + (gap if k >= 2 else 0)
            ax.imshow(colours[np.clip(g, 0, len(colours) - 1)], extent=(xk, xk + W, y0 + H, y0),
                      interpolation="nearest")
            ax.add_patch(Rectangle((xk, y0), W, H, fill=False, lw=0.6, ec="0.3"))
            if k == 3 and answers is not None:
                ok = bool((answers[q] == grids[q, 3]).all())
                ax.add_patch(Rectangle((xk - 0.25, y0 - 0.25), W + 0.5, H + 0.5, fill=False, lw=2,
                                       ec="tab:green" if ok else "tab:red"))
        if titles is not None:
            ax.text(x0, y0 - 0.3, titles[q], fontsize=7, va="bottom")
    return fig
