import numpy as np
import polars as pl
import pytest
from tokenshift.analyses import cross_sampling_stats as stats
from tokenshift.analyses.claims import AGREES, DISAGREES, INCONCLUSIVE, NOT_TESTABLE

PROBLEMS, K = 100, 4


def sweep(seed, points):
    """points: eps -> (fraction intervened, accuracy under the divergence rule, accuracy under the random rule)."""
    rng = np.random.default_rng(seed)
    frames = []
    for eps, (fraction, acc_div, acc_rnd) in points.items():
        for rule, acc in (("divergence", acc_div), ("random", acc_rnd)):
            n = PROBLEMS * K
            frames.append(pl.DataFrame({
                "eps": np.full(n, eps), "rule": [rule] * n, "response": np.arange(n),
                "problem": np.repeat(np.arange(PROBLEMS), K), "correct": rng.random(n) < acc,
                "fraction": np.full(n, fraction), "count": np.full(n, round(fraction * 100))}))
    return pl.concat(frames)


def sweeps(forward, reverse):
    return {("dapo", "forward"): sweep(0, {np.inf: (0.0, 0.2, 0.2), **forward}),
            ("dapo", "reverse"): sweep(1, {np.inf: (0.0, 0.7, 0.7), **reverse})}


def statuses(s):
    return [v.status for v in stats.crossing_verdicts(s, bootstraps=300)]


def test_sparse_sufficient_and_necessary_beyond_the_random_control_agrees():
    s = sweeps({0.1: (0.05, 0.7, 0.25), 0.01: (0.3, 0.72, 0.5)}, {0.1: (0.06, 0.2, 0.65), 0.01: (0.3, 0.18, 0.4)})
    assert statuses(s) == [AGREES, AGREES]
    table = stats.budget_table(s)
    assert table["pct_intervened"].to_list() == pytest.approx([5.0, 6.0])
    assert table["random_control_accuracy"][0] < 0.35 and table["eps"].to_list() == [0.1, 0.1]


def test_reaching_the_goal_only_with_a_dense_budget_disagrees():
    """eps = 0 hands over every token and always reaches the goal: that is not the paper's sparse claim."""
    s = sweeps({0.1: (0.05, 0.3, 0.25), 0.0: (1.0, 0.7, 0.7)}, {0.1: (0.06, 0.6, 0.65), 0.0: (1.0, 0.2, 0.2)})
    verdicts = stats.crossing_verdicts(s, bootstraps=300)
    assert [v.status for v in verdicts] == [DISAGREES, DISAGREES]
    assert verdicts[0].statistic.endswith("shortfall_at_sparse_budget") and 0.2 < verdicts[0].value < 0.5
    assert stats.budget_table(s)["pct_intervened"].to_list() == [100.0, 100.0]  # the table still shows where


def test_random_positions_doing_as_well_is_not_agreement():
    s = sweeps({0.1: (0.05, 0.7, 0.68)}, {0.1: (0.06, 0.2, 0.72)})
    assert statuses(s) == [INCONCLUSIVE, AGREES]


def test_no_sparse_budget_in_the_sweep_is_not_testable():
    s = sweeps({0.0: (1.0, 0.7, 0.7)}, {0.0: (1.0, 0.2, 0.2)})
    assert statuses(s) == [NOT_TESTABLE, NOT_TESTABLE]


def test_the_pairs_compare_the_same_prompt_and_sample_slot():
    s = sweeps({0.1: (0.05, 0.7, 0.25)}, {})
    pairs = stats.paired_by_problem(s[("dapo", "forward")], 0.1)
    assert len(pairs) == PROBLEMS and all(p.shape == (K, 2) for p in pairs)
    frame = s[("dapo", "forward")].filter(pl.col("eps") == 0.1)
    want = frame.filter(pl.col("rule") == "divergence").sort("response")["correct"].to_numpy()[:K]
    assert (pairs[0][:, 0] == want).all()


def test_the_mix_beats_rl_only_beyond_corrected_intervals():
    better = sweeps({0.1: (0.05, 0.9, 0.3), 0.01: (0.2, 0.7, 0.5)}, {})
    table, verdicts = stats.mix_against_rl(better, bootstraps=300)
    assert [v.status for v in verdicts] == [AGREES] and len(table) == 2
    assert table["mix_minus_rl"][0] == pytest.approx(table["mix_accuracy"][0] - 0.7, abs=0.08)
    level = stats.mix_against_rl(sweeps({0.1: (0.05, 0.72, 0.3)}, {}), bootstraps=300)[1][0]
    assert level.status == INCONCLUSIVE
    worse = sweeps({0.1: (0.05, 0.3, 0.3), 0.01: (0.2, 0.4, 0.5)}, {})
    assert [v.status for v in stats.mix_against_rl(worse, bootstraps=300)[1]] == [DISAGREES]
