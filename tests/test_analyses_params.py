"""Analysis parameters as a user meets them (rlinterp.pipeline.analyses): declared in the parameters cell, overridden
from the command line (``-p name=value``, text) and from profiles (typed TOML values), checked before anything runs.

Table tests: every declared type arriving from each origin, the constraints, the declaration checks, the layering of
defaults < profile < -p, and the book's list of analyses. test_pipeline.py runs the same checks through `rli run`.
"""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest

from rlinterp.pipeline import analyses as an
from rlinterp.pipeline.analyses import Param, ParameterError, Range

INF = math.inf
QUARTO = """project:
  type: book
book:
  chapters:
    - index.qmd
    - part: "S"
      chapters:
        - paper/s/01_a.ipynb
"""


def make_project(root: Path, params: str, profiles: str | None = None, quarto: str = QUARTO) -> an.Analysis:
    """A one-analysis book at ``root`` whose parameters cell is ``params``."""
    (root / "analyses/s").mkdir(parents=True, exist_ok=True)
    (root / "_quarto.yml").write_text(quarto)
    (root / "index.qmd").write_text("# Home\n")
    (root / "analyses/s/01_a.py").write_text(f'# %% tags=["parameters"]\n{params}\n\n# %%\nprint("ok")\n')
    if profiles is not None:
        (root / "analyses/s/profiles.toml").write_text(profiles)
    return an.Analysis("s/01_a", root)


DECLARED = """n: int = 10  # number of points [range: [1, inf)]
x: float = 0.5  # a probability [range: [0, 1]]
free: float = 1.5  # any finite number
flag: bool = False  # a switch
kind: str = "ad"  # which model [choices: ad, ed]
ks: list[int] = [1, 2]  # sizes [range: [1, 64]]
xs: list[float] = [0.1]  # sds [range: (0, inf)]
names: list[str] = ["a"]  # names"""


@pytest.fixture
def declared(tmp_path):
    a = make_project(tmp_path, DECLARED)
    return a, an.parameters(a)


def test_declared_types_defaults_help_and_constraints(declared):
    _, spec = declared
    assert {k: (p.type, p.default) for k, p in spec.items()} == {
        "n": ("int", 10), "x": ("float", 0.5), "free": ("float", 1.5), "flag": ("bool", False), "kind": ("str", "ad"),
        "ks": ("list[int]", [1, 2]), "xs": ("list[float]", [0.1]), "names": ("list[str]", ["a"])}
    assert [type(spec[k].default) for k in ("n", "x", "flag", "kind")] == [int, float, bool, str]
    assert spec["n"].range == Range(1, INF, True, False) and spec["x"].range == Range(0, 1, True, True)
    assert spec["xs"].range == Range(0, INF, False, False) and spec["free"].range is None
    assert spec["kind"].choices == ("ad", "ed") and spec["n"].choices is None
    assert {k: p.help for k, p in spec.items()} == {
        "n": "number of points", "x": "a probability", "free": "any finite number", "flag": "a switch",
        "kind": "which model", "ks": "sizes", "xs": "sds", "names": "names"}
    assert [spec[k].element for k in ("n", "ks", "xs", "names", "flag")] == ["int", "int", "float", "str", "bool"]
    assert spec["ks"].constraint == "range: [1, 64]" and spec["kind"].constraint == "choices: ad, ed"
    assert spec["free"].constraint == ""


# ------------------------------------------------------------------------------------------------- every type, both origins
# (parameter, -p text, expected) — what `rli run ... -p name=TEXT` gives the analysis
CLI = [
    ("n", "1", 1), ("n", "42", 42), ("n", "1_000", 1000), ("n", "+3", 3), ("n", " 7 ", 7),
    ("x", "0", 0.0), ("x", "1", 1.0), ("x", "0.25", 0.25), ("x", "2.5e-1", 0.25), ("x", " .5 ", 0.5),
    ("free", "-1e300", -1e300), ("free", "-0.0", 0.0),
    *[("flag", t, True) for t in ["true", "1", "yes", "on", "True", "TRUE", " Yes ", "ON"]],
    *[("flag", t, False) for t in ["false", "0", "no", "off", "False", "NO", " off "]],
    ("kind", "ed", "ed"), ("kind", "ad", "ad"),
    ("ks", "1", [1]), ("ks", "1,64", [1, 64]), ("ks", "[2, 3]", [2, 3]), ("ks", " 4 , 5 ", [4, 5]),
    ("xs", "0.5,1e3", [0.5, 1000.0]), ("xs", "3", [3.0]),
    ("names", "a,b c", ["a", "b c"]), ("names", "[x]", ["x"]), ("names", "1", ["1"]),
]
# (parameter, TOML text of the value, expected) — what a profile line `name = VALUE` gives the analysis
TOML = [
    ("n", "1", 1), ("n", "1_000", 1000), ("x", "1", 1.0), ("x", "0.25", 0.25), ("x", "0", 0.0),
    ("free", "-3", -3.0), ("flag", "true", True), ("flag", "false", False), ("kind", '"ed"', "ed"),
    ("ks", "[1, 64]", [1, 64]), ("xs", "[1, 0.5]", [1.0, 0.5]),
    ("names", '["a", "b"]', ["a", "b"]),
]


@pytest.mark.parametrize("name, text, expected", CLI)
def test_command_line_values_are_parsed(declared, name, text, expected):
    a, spec = declared
    got = an.validate(a, spec, an.parse_overrides([f"{name}={text}"]))[name]
    assert got == expected and type(got) is type(expected)
    if isinstance(got, list):
        assert [type(v) for v in got] == [type(v) for v in expected]


@pytest.mark.parametrize("name, value, expected", TOML)
def test_profile_values_are_taken_as_typed(tmp_path, name, value, expected):
    a = make_project(tmp_path, DECLARED, f"[quick.01_a]\n{name} = {value}\n")
    spec = an.parameters(a)
    prof = an.profile(tmp_path, a, "quick")
    assert prof == {name: tomllib.loads(f"v = {value}")["v"]}
    got = an.validate(a, spec, prof)[name]
    assert got == expected and type(got) is type(expected)
    if isinstance(got, list):
        assert [type(v) for v in got] == [type(v) for v in expected]


# (parameter, -p text, message fragment)
CLI_REFUSED = [
    ("n", "0", "parameter n = 0 (-p) is out of range: it must lie in [1, inf)"), ("n", "1.5", "is not an integer"),
    ("n", "1e3", "is not an integer"), ("n", "1__0", "is not an integer"), ("n", "_1", "is not an integer"),
    ("n", "true", "is not an integer"), ("n", "", "is not an integer"), ("n", "0x10", "is not an integer"),
    ("x", "1.0000001", "out of range: it must lie in [0, 1]"), ("x", "-0.1", "out of range"),
    ("x", "nan", "is not a number; give a finite value in [0, 1]"), ("x", "half", "'half' (-p) is not a number"),
    ("free", "inf", "parameter free = inf (-p) must be finite"), ("free", "-inf", "must be finite"),
    ("free", "nan", "parameter free = nan (-p) is not a number; give a finite value"),
    ("flag", "2", "use true/false (or 1/0, yes/no, on/off)"), ("flag", "", "use true/false"),
    ("flag", "y", "use true/false"), ("flag", "truee", "use true/false"),
    ("kind", "AD", "parameter kind = 'AD' (-p) is not one of the choices: ad, ed"), ("kind", " ad", "not one of"),
    ("ks", "", "is a list[int] and needs at least one element"), ("ks", "[]", "needs at least one element"),
    ("ks", "1,,2", "has an empty element"), ("ks", "1,", "has an empty element"), ("ks", "[1", "is not an integer"),
    ("ks", "0,1", "parameter ks (list[int]): element 0 (-p) is out of range: it must lie in [1, 64]"),
    ("ks", "1,65", "element 65 (-p) is out of range"), ("ks", "1.0", "each element an int; '1.0' (-p)"),
    ("xs", "0", "element 0.0 (-p) is out of range: it must lie in (0, inf)"), ("xs", "nan", "element nan (-p) is not"),
    ("xs", "0.1]", "each element a float; '0.1]' (-p) is not a number"),
    ("xs", "[inf]", "element inf (-p) is out of range: it must lie in (0, inf)"),  # inf only at a closed end
]


@pytest.mark.parametrize("name, text, message", CLI_REFUSED)
def test_bad_command_line_values_are_refused(declared, name, text, message):
    a, spec = declared
    with pytest.raises(ParameterError) as err:
        an.validate(a, spec, {name: text})
    assert str(err.value).startswith("s/01_a: ") and message in str(err.value)


# (parameter, TOML text, message fragment): a profile is typed, nothing is converted silently
TOML_REFUSED = [
    ("n", "1.5", "parameter n is an int; got 1.5 (float, profile quick, analyses/s/profiles.toml)"),
    ("n", "3.0", "is an int; got 3.0 (float"), ("n", "true", "is an int; got True (bool"),
    ("n", '"3"', "is an int; got '3' (str"), ("n", "0", "out of range"),
    ("x", "true", "parameter x is a float; got True (bool"), ("x", '"0.5"', "is a float; got '0.5' (str"),
    ("x", "nan", "is not a number"), ("x", "inf", "out of range"), ("free", "inf", "must be finite"),
    ("flag", "1", "parameter flag is a bool; got 1 (int"), ("flag", '"true"', "is a bool; got 'true' (str"),
    ("flag", "0", "is a bool; got 0 (int"), ("kind", "1", "parameter kind is a str; got 1 (int"),
    ("kind", '"xd"', "is not one of the choices: ad, ed"),
    ("ks", '"1,2"', "is a list[int]; got '1,2' (profile quick"), ("ks", "[]", "needs at least one element"),
    ("ks", "[1.5]", "each element an int; got 1.5 (float"), ("ks", "[true]", "got True (bool"), ("ks", "3", "write an array"),
    ("xs", "[false]", "each element a float; got False (bool"), ("xs", "[0]", "out of range"),
    ("xs", "[inf]", "element inf (profile quick, analyses/s/profiles.toml) is out of range"),
    ("names", "[1]", "each element a str; got 1 (int"),
]


@pytest.mark.parametrize("name, value, message", TOML_REFUSED)
def test_bad_profile_values_are_refused(tmp_path, name, value, message):
    a = make_project(tmp_path, DECLARED, f"[quick.01_a]\n{name} = {value}\n")
    spec = an.parameters(a)
    with pytest.raises(ParameterError) as err:
        an.validate(a, spec, an.profile(tmp_path, a, "quick"))
    assert message in str(err.value)


def test_layers_apply_in_order_and_later_wins(tmp_path):
    a = make_project(tmp_path, DECLARED, "[quick.01_a]\nn = 3\nx = 0.1\n[other.01_a]\nn = 5\n[quick.02_b]\nn = 7\n")
    spec = an.parameters(a)
    defaults = an.validate(a, spec)
    assert defaults == {k: p.default for k, p in spec.items()}
    quick = an.validate(a, spec, an.profile(tmp_path, a, "quick"))
    assert quick == dict(defaults, n=3, x=0.1)  # only this analysis's table of this profile
    assert an.validate(a, spec, an.profile(tmp_path, a, "quick"), {"n": "4"}) == dict(defaults, n=4, x=0.1)
    assert an.validate(a, spec, {"n": "4"}, an.profile(tmp_path, a, "quick")) == dict(defaults, n=3, x=0.1)
    assert an.validate(a, spec, an.profile(tmp_path, a, "other"))["n"] == 5
    assert an.validate(a, spec, an.profile(tmp_path, a, "missing")) == defaults  # no table: the defaults
    assert an.validate(a, spec, {}, None) == defaults
    assert an.profile(tmp_path, a, "default") == {} and an.profile(tmp_path, a, None) == {}
    assert an.profile(tmp_path, a, "default").origin == "default profile"
    assert an.known_profiles(tmp_path) == {"default", "quick", "other"}


def test_unknown_parameter_names_the_known_ones(declared, tmp_path):
    a, spec = declared
    with pytest.raises(ParameterError, match=r"s/01_a has no parameter 'm' \(-p\); its parameters are: n, x, free"):
        an.validate(a, spec, {"m": "1"})
    with pytest.raises(ParameterError, match=r"has no parameter 'm' \(-p\); its parameters are: \(none\)"):
        an.validate(a, {}, {"m": "1"})


def test_profiles_file_errors(tmp_path):
    a = make_project(tmp_path, DECLARED)
    assert an.profile(tmp_path, a, "quick") == {}  # no profiles.toml: nothing to override
    assert an.profile(tmp_path, a, "quick").origin == "profile quick"
    (tmp_path / "analyses/s/profiles.toml").write_text("[quick.01_a\nn = 1\n")
    with pytest.raises(ParameterError, match=r"profiles.toml is not valid TOML"):
        an.profile(tmp_path, a, "quick")


@pytest.mark.parametrize("pairs, expected", [
    (["n=3"], {"n": "3"}), ([" n =3", "x= 0.5"], {"n": "3", "x": " 0.5"}), (["s=a=b"], {"s": "a=b"}),
    (["s="], {"s": ""}), ([], {}), (None, {}), (["n=1", "n=2"], {"n": "2"}),
])
def test_parse_overrides(pairs, expected):
    assert an.parse_overrides(pairs) == expected


def test_parse_overrides_needs_name_equals_value():
    with pytest.raises(ParameterError, match=r"parameter 'n3' must be written name=value"):
        an.parse_overrides(["n3"])


# ------------------------------------------------------------------------------------------------- declarations
@pytest.mark.parametrize("line, message", [
    ("k = 1  # untyped", "parameter 'k' needs a type annotation among"),
    ("k: dict = {}  # h", "needs a type annotation"), ("k: list = [1]  # h", "needs a type annotation"),
    ("k: int = 1", "parameter 'k' needs a `# help` comment"),
    ("k: int = 1  # [range: [0, 1]]", "needs a `# help` comment"),  # a tag alone is no help
    ("k: int = 1  # help with a=b in it", "papermill cannot parse parameter line 2 (k)"),
    ("k: list[str] = ['a']  # h [range: [0, 1]]", "a [range: ...] needs an int or float parameter, not list[str]"),
    ("k: bool = True  # h [range: [0, 1]]", "needs an int or float parameter, not bool"),
    ("k: float = 1.0  # h [range: [nan, 1]]", "bad range [range: [nan, 1]] (need lo <= hi)"),
    ("k: float = 1.0  # h [range: [0, nan]]", "(need lo <= hi)"),
    ("k: int = 1  # h [range: [x, 1]]", "bad range [range: [x, 1]]; write e.g."),
    ("k: str = 'a'  # h [choices: ]", "[choices: ...] lists no value"),
    ("k: str = 'a'  # h [choices: , ]", "lists no value"),
    ("k: int = 1  # h [choices: 1, two]", "parameter 'k': bad [choices: 1, two]: a value is an int; 'two' ([choices]) "
                                         "is not an integer"),
    ("k: list[bool] = [True]  # h", "needs a type annotation"),
    ("k: str = 'a'  # h [choices a, b]", "cannot read the constraint in 'h [choices a, b]'"),
    ("k: int = 1  # h [range: (0, 1]", "cannot read the constraint"),
    ("k: int = max(1, 2)  # h", "the default of 'k' is invalid"),
    ("k: float = 2.0  # h [range: [0, 1]]", "the default of 'k' is invalid: parameter k = 2.0 (the parameters cell)"),
    ("k: int = True  # h", "the default of 'k' is invalid: parameter k is an int; got True (bool"),
    ("k: float = float('nan')  # h", "the default of 'k' is invalid"),
    ("k: list[float] = 0.5  # h", "the default of 'k' is invalid"),
    ('k: int = "3"  # h', "the default of 'k' is invalid: parameter k is an int; got '3' (str"),  # typed, not text
    ('k: bool = "yes"  # h', "the default of 'k' is invalid: parameter k is a bool; got 'yes' (str"),
    ("k = j = 1  # two targets", "papermill cannot parse parameter line 2 (k)"),
])
def test_bad_declarations(tmp_path, line, message):
    a = make_project(tmp_path, f"n: int = 1  # fine\n{line}")
    with pytest.raises(ParameterError) as err:
        an.parameters(a)
    assert message in str(err.value), str(err.value)
    assert str(a.source) in str(err.value)


@pytest.mark.parametrize("line, check", [
    ("k: list[ int ] = [1, 2]  # spaced annotation", lambda p: p.type == "list[int]" and p.default == [1, 2]),
    ("k: float = 1  # an int default is a float", lambda p: p.default == 1.0 and type(p.default) is float),
    ("k: int = 3  # several   spaces\tcollapse", lambda p: p.help == "several spaces collapse"),
    ("k: int = 3  # a [range: [3, 3]] tag inside", lambda p: p.help == "a tag inside" and 3 in p.range),
    ("k: int = 2  # h [choices: 1, 2, 4]", lambda p: p.choices == (1, 2, 4) and type(p.choices[0]) is int),
    ("k: float = 0.5  # h [choices: 0.5, 1]", lambda p: p.choices == (0.5, 1.0)),
    ("k: str = 'b'  # h [choices: a, , b]", lambda p: p.choices == ("a", "b")),
    ("k: list[str] = ['a']  # h [choices: a, b]", lambda p: p.choices == ("a", "b") and p.element == "str"),
    ("k: int = 1  # h [range: [-inf, inf]] [choices: 1, 2]",
     lambda p: p.constraint == "range: [-inf, inf]; choices: 1, 2" and p.help == "h"),
    ("k: float = 0.5  # h [range: (0, 1)]", lambda p: p.range == Range(0, 1, False, False)),
])
def test_good_declarations(tmp_path, line, check):
    a = make_project(tmp_path, f"n: int = 1  # fine\n{line}")
    p = an.parameters(a)["k"]
    assert check(p), p


def test_int_choices_from_the_command_line(tmp_path):
    a = make_project(tmp_path, "k: int = 2  # h [choices: 1, 2, 4]")
    spec = an.parameters(a)
    assert an.validate(a, spec, {"k": "4"}) == {"k": 4}
    with pytest.raises(ParameterError, match="parameter k = 3 .* is not one of the choices: 1, 2, 4"):
        an.validate(a, spec, {"k": "3"})


@pytest.mark.parametrize("cells", [0, 2])
def test_exactly_one_parameters_cell(tmp_path, cells):
    a = make_project(tmp_path, "n: int = 1  # h")
    text = a.source.read_text()
    text = text.replace('# %% tags=["parameters"]', "# %%") if cells == 0 else \
        text + '\n# %% tags=["parameters"]\nm: int = 2  # h\n'
    a.source.write_text(text)
    with pytest.raises(ParameterError, match=f"must have exactly one cell tagged 'parameters' \\(has {cells}\\)"):
        an.parameters(a)


# ------------------------------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("rng, inside, outside, text", [
    (Range(0, 1, True, True), [0, 0.5, 1], [-1e-12, 1 + 1e-12], "[0, 1]"),
    (Range(0, 1, False, True), [1e-300, 1], [0, 1.5], "(0, 1]"),
    (Range(0, 1, True, False), [0, 1 - 1e-16], [1, -0.0001], "[0, 1)"),
    (Range(0, 1, False, False), [0.5], [0, 1], "(0, 1)"),
    (Range(1, INF, True, False), [1, 1e308], [INF, 0.999], "[1, inf)"),
    (Range(-INF, INF, True, True), [-INF, 0, INF], [], "[-inf, inf]"),
    (Range(0.5, 2.25, True, True), [0.5, 2.25], [0.49, 2.26], "[0.5, 2.25]"),
])
def test_range_membership_and_text(rng, inside, outside, text):
    assert all(v in rng for v in inside) and not any(v in rng for v in outside)
    assert str(rng) == text


# ------------------------------------------------------------------------------------------------- the book
def test_analysis_paths(tmp_path):
    a = an.Analysis("s/01_a", tmp_path)
    assert a.source == tmp_path / "analyses/s/01_a.py" and a.study == "s"
    assert a.chapter() == tmp_path / "paper/s/01_a.ipynb"
    assert a.chapter(tmp_path / "out") == tmp_path / "out/paper/s/01_a.ipynb"
    assert a.failed() == tmp_path / "paper/s/01_a.failed.ipynb"
    assert a.failed(tmp_path / "out") == tmp_path / "out/paper/s/01_a.failed.ipynb"


def test_chapter_entries_in_book_order():
    config = {"book": {"chapters": ["index.qmd", {"part": "P", "chapters": ["paper/a/01.ipynb", "paper/a/02.ipynb"]},
                                    {"part": "Empty", "chapters": None}, {"href": "paper/b/01.ipynb"}, {"text": "x"}],
                       "appendices": ["paper/c/01.ipynb", {"part": "Q", "chapters": ["paper/d/01.ipynb"]}]}}
    assert an.chapter_entries(config) == [(None, "index.qmd"), ("P", "paper/a/01.ipynb"), ("P", "paper/a/02.ipynb"),
                                          (None, "paper/b/01.ipynb"), (None, "paper/c/01.ipynb"),
                                          ("Q", "paper/d/01.ipynb")]
    assert an.chapter_entries({}) == [] and an.chapter_entries({"book": {"chapters": None}}) == []


def test_discover_get_and_strict(tmp_path):
    quarto = QUARTO + "        - paper/s/02_missing.ipynb\n        - paper/s/notes.qmd\n" \
                      "  appendices:\n    - paper/t/01_b.ipynb\n"
    make_project(tmp_path, "n: int = 1  # h", quarto=quarto)
    (tmp_path / "analyses/t").mkdir()
    (tmp_path / "analyses/t/01_b.py").write_text('# %% tags=["parameters"]\nn: int = 1  # h\n')
    assert [a.name for a in an.discover(tmp_path)] == ["s/01_a", "t/01_b"]  # the missing one skipped
    with pytest.raises(FileNotFoundError, match="_quarto.yml lists paper/s/02_missing.ipynb but its analysis "
                                                "analyses/s/02_missing.py does not exist"):
        an.discover(tmp_path, strict=True)
    for name in ["s/01_a", "analyses/s/01_a.py", "s/01_a.py", "analyses/s/01_a"]:
        assert an.get(tmp_path, name) == an.Analysis("s/01_a", tmp_path)
    with pytest.raises(ParameterError, match=r"unknown analysis 's/09'; known analyses: s/01_a, t/01_b"):
        an.get(tmp_path, "s/09")


def test_quarto_config(tmp_path):
    make_project(tmp_path, "n: int = 1  # h")
    assert an.quarto_config(tmp_path)["book"]["chapters"][0] == "index.qmd"
    (tmp_path / "_quarto.yml").write_text("project:\n  type: website\n")  # not a book: no home-page rule
    assert an.quarto_config(tmp_path) == {"project": {"type": "website"}}
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\nbook:\n  chapters:\n    - sub/index.qmd\n")
    with pytest.raises(ValueError, match=r"found \['sub/index.qmd'\]"):
        an.quarto_config(tmp_path)
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\n")
    with pytest.raises(ValueError, match="found no chapters"):
        an.quarto_config(tmp_path)
    (tmp_path / "_quarto.yml").write_text("project:\n  type: book\nbook:\n  chapters:\n    - index.md\n")
    assert an.quarto_config(tmp_path)["book"]["chapters"] == ["index.md"]


def test_find_root_walks_up(tmp_path):
    make_project(tmp_path, "n: int = 1  # h")
    assert an.find_root(tmp_path / "analyses/s") == tmp_path.resolve()
    assert an.find_root(tmp_path) == tmp_path.resolve()
    from rlinterp import ROOT

    assert an.find_root(Path("/")) == ROOT  # outside any book: the package's own


def test_load_notebook_is_a_python3_notebook(tmp_path):
    a = make_project(tmp_path, "n: int = 1  # h")
    nb = an.load_notebook(a)
    assert nb.metadata["kernelspec"] == an.KERNELSPEC and nb.metadata["kernelspec"] is not an.KERNELSPEC
    assert nb.metadata["language_info"] == {"name": "python"} and "jupytext" not in nb.metadata
    assert [c.cell_type for c in nb.cells] == ["code", "code"] and nb.cells[0].metadata["tags"] == ["parameters"]


def test_cast_defaults_to_command_line_text():
    """``cast(param, value)`` without an origin reads command-line text and says so in its errors."""
    p = Param("n", "int", 1, "h", Range(1, INF, True, False))
    assert an.cast(p, "12") == 12 and an.cast(Param("b", "bool", False, "h"), "yes") is True
    with pytest.raises(ParameterError, match=r"parameter n = 0 \(-p\) is out of range"):
        an.cast(p, "0")


def test_discover_only_takes_notebook_chapters_under_paper(tmp_path):
    quarto = QUARTO + "        - paper/s/notes.qmd\n        - other/s/01_a.ipynb\n"
    make_project(tmp_path, "n: int = 1  # h", quarto=quarto)
    assert [a.name for a in an.discover(tmp_path, strict=True)] == ["s/01_a"]


def test_statements_other_than_assignments_are_left_alone(tmp_path):
    a = make_project(tmp_path, "import math\nn: int = 1  # h")
    assert list(an.parameters(a)) == ["n"]


def test_quarto_config_without_a_project_table(tmp_path):
    (tmp_path / "_quarto.yml").write_text("book:\n  chapters:\n    - paper/s/01_a.ipynb\n")
    assert an.quarto_config(tmp_path) == {"book": {"chapters": ["paper/s/01_a.ipynb"]}}


# ---------------------------------------------------------------------------------- the book's world parameters
WORLD = [  # (analysis, parameter, -p text out of range)
    ("highway/01_agent", "spawn_probability", "1.5"), ("highway/01_agent", "spawn_probability", "-0.1"),
    ("highway/01_agent", "initial_vehicle_count", "0"), ("highway/01_agent", "initial_vehicle_count", "2.5"),
    ("ad/01_incontext", "room_size", "1"), ("ad/01_incontext", "room_size", "23"),
    ("ad/01_incontext", "room_size", "7.5"),
]


@pytest.mark.parametrize("name, param, text", WORLD)
def test_world_parameters_out_of_range_are_refused_before_anything_runs(name, param, text):
    from rlinterp import ROOT

    a = an.get(ROOT, name)
    with pytest.raises(ParameterError, match=rf"{name}: parameter {param}"):
        an.validate(a, an.parameters(a), {param: text})


def test_world_parameter_defaults_are_the_shipped_worlds():
    """A chapter's default world is the one its shipped models were trained in (else the default run would train)."""
    from rlinterp import ROOT, artifacts
    from rlinterp.envs import highway as hw

    hw_spec = an.parameters(an.get(ROOT, "highway/01_agent"))
    assert {k: hw_spec[k].default for k in hw.DENSITY_DEFAULTS} == hw.DENSITY_DEFAULTS
    assert hw.density(**{k: hw_spec[k].default for k in hw.DENSITY_DEFAULTS}) == {}
    ad_spec = an.parameters(an.get(ROOT, "ad/01_incontext"))
    assert ad_spec["room_size"].default == artifacts.get("ad/darkroom_ad").config.room_size == 9
    ok = an.validate(an.get(ROOT, "ad/01_incontext"), ad_spec, {"room_size": "7"})
    assert ok["room_size"] == 7
