"""The one statistics module: intervals against textbook values, shapes, seeding and refusals."""
import numpy as np
import pytest
from scipy import stats as st

from rlinterp.stats import Interval, band, best_time, bootstrap, mean_interval, paired_difference, wilson


def test_mean_interval_normal_and_t():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    se = x.std(ddof=1) / 2
    iv = mean_interval(x)
    assert isinstance(iv, Interval) and iv.mean == pytest.approx(3.5)
    assert iv.half == pytest.approx(st.norm.ppf(0.975) * se)
    t = mean_interval(x, method="t")
    assert t.half == pytest.approx(st.t.ppf(0.975, 3) * se) and t.half > iv.half
    m, lo, hi = mean_interval(x, level=0.5)  # unpacks as (mean, lo, hi)
    assert lo < m < hi and hi - lo < iv.hi - iv.lo
    assert np.isnan(mean_interval([1.0]).lo)
    with pytest.raises(ValueError, match="method"):
        mean_interval(x, method="bayes")
    with pytest.raises(ValueError, match="level"):
        mean_interval(x, level=1.0)


def test_wilson_textbook_and_edges():
    iv = wilson(0.5, 100)
    assert iv.lo == pytest.approx(0.4038, abs=1e-4) and iv.hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0.0, 10).lo == 0.0 and 0 < wilson(0.0, 10).hi < 0.35
    assert wilson(1.0, 10).hi == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        wilson(0.5, 0)
    with pytest.raises(ValueError, match="p must be"):
        wilson(1.5, 10)


def test_bootstrap_seeded_and_covers():
    rng = np.random.default_rng(0)
    x = rng.normal(1.0, 1.0, size=400)
    a, b = bootstrap(x, seed=3), bootstrap(x, seed=3)
    assert a == b and a.lo < 1.0 < a.hi
    assert bootstrap(x, np.median, seed=3).mean == pytest.approx(np.median(x))
    assert a.half == pytest.approx(mean_interval(x).half, rel=0.15)


def test_paired_difference():
    rng = np.random.default_rng(0)
    base = rng.normal(size=5000)
    a, b = base + 0.1 + 0.01 * rng.normal(size=5000), base
    for method in ("normal", "t", "bootstrap"):
        d = paired_difference(a, b, method=method)
        assert d.lo < 0.1 < d.hi and d.hi - d.lo < 0.002
    with pytest.raises(ValueError):
        paired_difference(a, b[:10])
    with pytest.raises(ValueError):
        paired_difference(a, b, method="magic")


def test_band_per_column():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    m, lo, hi = band(x)
    np.testing.assert_allclose(m, [2.0, 1.0])
    np.testing.assert_allclose(hi - m, [st.norm.ppf(0.975) * 2 / np.sqrt(3), 0.0])
    one = band(x[:1])
    np.testing.assert_array_equal(one.lo, one.hi)
    with pytest.raises(ValueError, match="2-d"):
        band(np.zeros(3))


def test_best_time():
    calls = []
    t, out = best_time(lambda: calls.append(1) or len(calls), repeats=3)
    assert out == 3 and t >= 0 and len(calls) == 3
    with pytest.raises(ValueError, match="repeats"):
        best_time(lambda: None, repeats=0)
