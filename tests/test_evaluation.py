import itertools
import math

import numpy as np
import pytest
from tokenshift.problems.evaluation import Accuracy


def brute_force_pass_at(row, k):
    subsets = list(itertools.combinations(row, k))
    return sum(any(s) for s in subsets) / len(subsets)


def test_pass_at_k_equals_the_exhaustive_probability():
    rng = np.random.default_rng(0)
    correct = rng.random((20, 8)) < 0.3
    acc = Accuracy(correct)
    for k in (1, 2, 5, 8):
        expected = np.mean([brute_force_pass_at(row, k) for row in correct])
        assert acc.pass_at(k) == pytest.approx(expected)
    assert acc.pass_at(1) == pytest.approx(acc.avg)


def test_interval_uses_problems_as_the_unit():
    # every problem is either always or never solved: samples add no information beyond the problem count
    correct = np.array([[True] * 16] * 50 + [[False] * 16] * 50)
    lo, hi = Accuracy(correct).ci95
    per_problem_half_width = 1.96 * math.sqrt(0.25 * 100 / 99 / 100)  # 100 independent problems
    naive_half_width = 1.96 * math.sqrt(0.25 / 1600)  # as if all 1600 samples were independent
    assert (hi - lo) / 2 == pytest.approx(per_problem_half_width)
    assert (hi - lo) / 2 > 3 * naive_half_width


def test_pass_at_more_than_samples_is_refused():
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples"):
        Accuracy(np.zeros((3, 4), dtype=bool)).pass_at(5)
