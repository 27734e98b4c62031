import numpy as np
import polars as pl
import pytest
from tokenshift.analyses import cross_sampling_stats as stats
from tokenshift.analyses.claims import AGREES, DISAGREES, INCONCLUSIVE, NOT_TESTABLE

PROBLEMS, K = 100, 4


def sweep(seed, points, changed=1.0):
    """points: eps -> (fraction intervened, accuracy under the divergence rule, accuracy under the random rule);
    responses of 100 steps, ``changed`` of the intervened ones changing their token."""
    rng = np.random.default_rng(seed)
    frames = []
    for eps, (fraction, acc_div, acc_rnd) in points.items():
        for rule, acc in (("divergence", acc_div), ("random", acc_rnd)):
            n, count = PROBLEMS * K, round(fraction * 100)
            frames.append(pl.DataFrame({
                "eps": np.full(n, eps), "rule": [rule] * n, "response": np.arange(n),
                "problem": np.repeat(np.arange(PROBLEMS), K), "correct": rng.random(n) < acc,
                "fraction": np.full(n, fraction), "count": np.full(n, count),
                "intervened": [[True] * count + [False] * (100 - count)] * n,
                "changed_count": np.full(n, round(count * changed))}))
    return pl.concat(frames)


def sweeps(forward, reverse, changed=1.0):
    return {("dapo", "forward"): sweep(0, {np.inf: (0.0, 0.2, 0.2), **forward}, changed),
            ("dapo", "reverse"): sweep(1, {np.inf: (0.0, 0.7, 0.7), **reverse}, changed)}


BARS = {("dapo", "forward"): 10.0, ("dapo", "reverse"): 10.0}


def statuses(s, budget="pct_intervened", bars=BARS):
    return [v.status for v in stats.gap_verdicts(stats.recovered_gaps(s, bootstraps=300), bars, budget)]


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


def test_recovering_the_gap_at_a_sparse_budget_agrees():
    # forward: base 0.2 -> RL 0.7, the mix at 5% 0.8; reverse: RL 0.7 -> base 0.2, the mix at 6% 0.1 (R = 1.2:
    # with 400 responses R's interval is about +-0.15, so a mix just at the goal cannot show R >= 0.9)
    s = sweeps({0.1: (0.05, 0.8, 0.25), 0.01: (0.3, 0.72, 0.5)}, {0.1: (0.06, 0.1, 0.65), 0.01: (0.3, 0.18, 0.4)})
    assert statuses(s) == [AGREES, AGREES]
    table = stats.budget_table(s)
    assert table["pct_intervened"].to_list() == pytest.approx([5.0, 6.0])
    assert table["random_control_accuracy"][0] < 0.35 and table["eps"].to_list() == [0.1, 0.1]


def test_the_recovered_gap_is_the_share_of_the_accuracy_gap_by_hand():
    """R against a float64 re-implementation from the rows: (mix - start) / (goal - start)."""
    s = sweeps({0.1: (0.05, 0.5, 0.25)}, {0.1: (0.06, 0.4, 0.65)})
    gaps = stats.recovered_gaps(s, bootstraps=50)
    for direction, other in (("forward", "reverse"), ("reverse", "forward")):
        acc = lambda d, eps: s["dapo", d].filter((pl.col("eps") == eps) & (pl.col("rule") == "divergence"))[  # noqa: E731
            "correct"].cast(pl.Float64).mean()
        want = (acc(direction, 0.1) - acc(direction, np.inf)) / (acc(other, np.inf) - acc(direction, np.inf))
        got = gaps.filter(pl.col("direction") == direction)["recovered"][0]
        assert got == pytest.approx(want, rel=1e-12)
        assert gaps.filter(pl.col("direction") == direction)["low"][0] < got


def test_falling_short_at_every_sparse_budget_disagrees_even_if_a_dense_one_reaches():
    """eps = 0 hands over every token and always reaches the goal: that is not the paper's sparse claim."""
    s = sweeps({0.1: (0.05, 0.3, 0.25), 0.0: (1.0, 0.7, 0.7)}, {0.1: (0.06, 0.6, 0.65), 0.0: (1.0, 0.2, 0.2)})
    verdicts = stats.gap_verdicts(stats.recovered_gaps(s, bootstraps=300), BARS)
    assert [v.status for v in verdicts] == [DISAGREES, DISAGREES]
    assert verdicts[0].statistic == "cross.dapo.forward.recovered_gap" and 0.0 < verdicts[0].value < 0.4
    assert stats.budget_table(s)["pct_intervened"].to_list() == [100.0, 100.0]  # the table still shows where


def test_near_the_line_is_inconclusive_and_more_budgets_do_not_manufacture_agreement():
    s = sweeps({0.1: (0.05, 0.65, 0.25)}, {0.1: (0.06, 0.25, 0.65)})  # R about 0.9 both ways
    assert statuses(s) == [INCONCLUSIVE, INCONCLUSIVE]
    # Holm: the family's smallest p-value must clear alpha / k
    assert stats.claims.holm([0.01, 0.04, 0.5], 0.05).tolist() == [True, False, False]
    assert stats.claims.holm([0.01, 0.02, 0.03], 0.05).tolist() == [True, True, True]
    assert not stats.claims.holm([0.03, 0.03], 0.05).any()


def test_no_sparse_budget_or_no_gap_is_not_testable():
    s = sweeps({0.0: (1.0, 0.7, 0.7)}, {0.0: (1.0, 0.2, 0.2)})
    assert statuses(s) == [NOT_TESTABLE, NOT_TESTABLE]
    same = {("dapo", "forward"): sweep(0, {np.inf: (0.0, 0.5, 0.5), 0.1: (0.05, 0.5, 0.5)}),
            ("dapo", "reverse"): sweep(0, {np.inf: (0.0, 0.5, 0.5), 0.1: (0.05, 0.5, 0.5)})}
    verdicts = stats.gap_verdicts(stats.recovered_gaps(same, bootstraps=100), BARS)
    assert [v.status for v in verdicts] == [NOT_TESTABLE] * 2 and "no gap" in verdicts[0].rule


def test_both_budget_definitions_are_judged_against_the_bar():
    """Handing over 12% of steps, of which 5% change a token: beyond a 10% bar of steps, within it of changed
    tokens."""
    s = sweeps({0.1: (0.12, 0.8, 0.25)}, {0.1: (0.12, 0.1, 0.65)}, changed=5 / 12)
    assert statuses(s) == [NOT_TESTABLE, NOT_TESTABLE]
    assert statuses(s, "pct_changed") == [AGREES, AGREES]
    v = stats.gap_verdicts(stats.recovered_gaps(s, bootstraps=100), BARS, "pct_changed")[0]
    assert v.statistic.endswith("recovered_gap.changed_tokens") and "changed tokens" in v.rule


def test_the_controls_are_compared_at_the_verdicts_budget():
    s = sweeps({0.1: (0.05, 0.8, 0.25), 0.01: (0.3, 0.72, 0.5)}, {0.1: (0.06, 0.1, 0.65)})
    gaps = stats.recovered_gaps(s, bootstraps=100)
    at = stats.examined(gaps, BARS)
    assert at == {("dapo", "forward"): 0.1, ("dapo", "reverse"): 0.1}
    entropy = sweep(7, {0.1: (0.05, 0.45, 0.45)}).with_columns(
        pl.col("rule").replace({"divergence": "divergence", "random": "entropy, primary"}))
    table = stats.control_table(s, at, {("dapo", "forward"): entropy, ("dapo", "reverse"): s["dapo", "reverse"]},
                                bootstraps=200)
    forward = table.filter(pl.col("direction") == "forward")
    assert forward["name"].to_list() == ["divergence", "random", "entropy"]
    assert forward["recovered"][1] < 0.3 and 0.3 < forward["recovered"][2] < 0.7
    assert forward["divergence_minus"][2] == pytest.approx(forward["recovered"][0] - forward["recovered"][2])
    verdicts = stats.beats_random(table)
    assert [v.status for v in verdicts] == [AGREES, AGREES]
    values = stats.control_values(table)
    assert "cross.dapo.forward.at_verdict_budget.entropy.divergence_minus.low" in values
    # random positions that do better: the divergence rule does not beat them
    worse = sweeps({0.1: (0.05, 0.4, 0.7)}, {0.1: (0.06, 0.5, 0.2)})
    table = stats.control_table(worse, stats.examined(stats.recovered_gaps(worse, bootstraps=50), BARS),
                                bootstraps=200)
    assert [v.status for v in stats.beats_random(table)] == [DISAGREES, DISAGREES]


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


def test_the_restricted_controls_second_pass_matches_the_divergence_rules_changed_tokens():
    frame = pl.DataFrame({"eps": [0.1] * 4, "rule": ["divergence", "divergence", "random, divergent",
                                                     "random, divergent"], "changed_count": [3, 5, 1, 2]})
    assert stats.matched_scale(frame, 0.1) == pytest.approx(2.67)
    assert stats.matched_scale(frame.with_columns(changed_count=pl.Series([3, 5, 0, 0])), 0.1) == 999.0
    assert stats.matched_scale(frame.with_columns(changed_count=pl.Series([0, 0, 0, 0])), 0.1) == 1.0
    assert [stats.control_name(r) for r in ("divergence", "random", "random, divergent x2.67", "entropy, primary")] \
        == ["divergence", "random", "random_divergent", "entropy"]
    assert stats.cs.divergent_scale("random, divergent x2.67") == 2.67 and stats.cs.divergent_scale("random") is None
    assert stats.cs.divergent_scale("random, divergent x0") is None

