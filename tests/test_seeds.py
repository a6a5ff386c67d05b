"""The evaluation protocol's seed ranges (rlinterp.seeds)."""
import numpy as np
import pytest

from rlinterp import seeds
from rlinterp.envs import heist


@pytest.mark.parametrize("study", sorted(seeds.SPLITS))
def test_ranges_disjoint_and_nonempty(study):
    s = seeds.split(study)
    ranges = [r for r in (s.train, s.validation, s.test) if r is not None]
    for i, a in enumerate(ranges):
        assert len(a) > 0 and a.step == 1
        for b in ranges[i + 1:]:
            assert not set(range(max(a.start, b.start), min(a.stop, b.stop)))
    assert s.role(s.validation.start) == "validation" and s.role(s.validation.stop - 1) == "validation"
    assert s.role(s.test.start) == "test" and s.role(s.test.stop - 1) == "test"


def test_take_seeds_first_n_and_bounds():
    s = seeds.split("highway")
    np.testing.assert_array_equal(s.test_seeds(3), [2_000_000, 2_000_001, 2_000_002])
    np.testing.assert_array_equal(s.validation_seeds(2, start=5), [1_000_005, 1_000_006])
    assert s.test_seeds(len(s.test))[-1] == s.test.stop - 1
    with pytest.raises(ValueError, match="too many"):
        s.test_seeds(len(s.test) + 1)
    with pytest.raises(ValueError, match="too many"):
        s.validation_seeds(2, start=len(s.validation) - 1)
    for bad in (0, -1, 1.5, True):
        with pytest.raises((TypeError, ValueError)):
            s.test_seeds(bad)


def test_overlap_and_bad_ranges_refused():
    with pytest.raises(ValueError, match="overlap"):
        seeds.SeedSplit("x", "seed", validation=range(0, 10), test=range(9, 20))
    with pytest.raises(ValueError, match="overlap"):
        seeds.SeedSplit("x", "seed", train=range(5, 6), validation=range(0, 10), test=range(10, 20))
    seeds.SeedSplit("x", "seed", validation=range(0, 10), test=range(10, 20))  # touching is fine
    with pytest.raises(ValueError, match="non-empty"):
        seeds.SeedSplit("x", "seed", validation=range(0, 0), test=range(10, 20))
    with pytest.raises(ValueError, match="step 1"):
        seeds.SeedSplit("x", "seed", validation=range(0, 10, 2), test=range(10, 20))


def test_unknown_study_and_roles():
    with pytest.raises(ValueError, match="study"):
        seeds.split("nope")
    s = seeds.split("coinflip")
    assert s.role(0) == "train" and s.role(3_000_000) == "unused"


def test_heist_splits_inside_env_splits():
    s = seeds.split("heist")
    lo, hi = heist.SPLITS["test"]
    assert s.validation.start == lo and s.test.stop == hi
    assert (s.train.start, s.train.stop) == heist.SPLITS["train"]
