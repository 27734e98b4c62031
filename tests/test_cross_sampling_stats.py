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


def test_summary_counts_changed_tokens_apart_from_intervened_steps():
    frame = pl.DataFrame({"eps": [0.1] * 4, "rule": ["divergence"] * 4, "response": [0, 1, 2, 3],
                          "problem": [0, 0, 1, 1], "correct": [True, False, True, True],
                          "intervened": [[True, False, True, False], [False, True], [True, True], [False] * 4],
                          "fraction": [0.5, 0.5, 1.0, 0.0], "count": [2, 1, 2, 0], "changed_count": [1, 0, 2, 0]})
    row = stats.summarise(frame).row(0, named=True)
    assert row["pct_intervened"] == 50.0 and row["tokens_per_response"] == 1.25
    assert row["pct_changed"] == pytest.approx(100 * (1 / 4 + 0 + 2 / 2 + 0) / 4)
    assert row["changed_per_response"] == 0.75 and row["accuracy"] == 0.75
    assert stats.summarise(frame.drop("changed_count"))["pct_changed"][0] is None  # a file from before


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


def synthetic_point(eps):
    """A made-up pair where the budget grows as eps falls (0.001 / eps) and accuracy follows it, from 0.2 to 0.8
    at a 5% budget (the RL model alone: 0.7)."""
    fraction = min(1.0, 0.001 / eps) if eps > 0 else 1.0
    return fraction, 0.2 + 0.6 * min(1.0, fraction / 0.05), 0.25


def test_bisection_narrows_the_smallest_sufficient_budget_between_grid_points():
    grid = sweeps({e: synthetic_point(e) for e in (0.1, 0.01)}, {})
    refs = stats.references(grid)
    goal = stats.start_and_goal(refs, "dapo", "forward")[1]
    assert stats.bracket(stats.summarise(grid["dapo", "forward"]), goal, "forward") == (0.01, 0.1)
    calls = []

    def run(eps):
        calls.append(eps)
        return sweep(len(calls) + 10, {eps: synthetic_point(eps)})

    refined = stats.bisect_budget(grid["dapo", "forward"], goal, "forward", run, steps=3)
    assert calls == [0.0316, 0.0178, 0.0237]  # each the geometric mean of the bracket: no, yes, yes
    first = stats.reaches(stats.summarise(refined), goal, "forward").row(0, named=True)
    assert first["eps"] == 0.0237 and first["pct_intervened"] == pytest.approx(100 * 0.001 / 0.0237)
    assert len(refined) == len(grid["dapo", "forward"]) + 3 * 2 * PROBLEMS * K
    # nothing in the grid reaches the goal: there is nothing to bisect
    none = sweeps({0.1: (0.05, 0.3, 0.25)}, {})
    assert stats.bisect_budget(none["dapo", "forward"], goal, "forward", run, steps=3).equals(none["dapo", "forward"])


def test_cap_table_says_which_caps_reach_the_goal():
    s = sweeps({0.1: (0.05, 0.7, 0.25)}, {0.1: (0.06, 0.2, 0.65)})
    capped = {("dapo", "forward"): sweep(5, {0.1: (0.01, 0.3, 0.3)}).filter(pl.col("rule") == "divergence")
              .with_columns(pl.lit("divergence, first 1").alias("rule"))}
    capped["dapo", "forward"] = pl.concat([capped["dapo", "forward"], sweep(6, {0.1: (0.04, 0.75, 0.3)})
                                           .filter(pl.col("rule") == "divergence")
                                           .with_columns(pl.lit("divergence, first 8").alias("rule"))])
    table = stats.cap_table(capped, s)
    assert table["cap"].to_list() == [1, 8] and table["reaches_goal"].to_list() == [False, True]
