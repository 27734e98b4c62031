"""The weighted-advantage experiment's statistics: checked against scipy, and each verdict shown failing."""

import math

import numpy as np
import pytest
from scipy import stats

from tokenshift.analyses import claims, weighting


def test_alpha_puts_the_90th_percentile_token_at_the_set_share():
    alpha = weighting.alpha_for(0.02, share=0.8)
    assert 1 / (1 + math.exp(-alpha * 0.02)) - 0.5 == pytest.approx(0.4)
    with pytest.raises(ValueError, match="updates_per_batch > 1"):
        weighting.alpha_for(0.0)
    with pytest.raises(ValueError, match="share"):
        weighting.alpha_for(0.1, share=1.0)


@pytest.mark.parametrize("seed", range(4))
def test_sign_flip_p_matches_scipy(seed):
    d = np.random.default_rng(seed).normal(0.02 * seed, 0.03, size=7)
    ours = weighting.sign_flip_p(d)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                 alternative="two-sided").pvalue
    assert ours == pytest.approx(ref, abs=1e-12)


def test_sign_flip_sampled_beyond_the_exact_range_and_its_floor():
    d = np.random.default_rng(0).normal(0.01, 0.03, size=20)
    ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=200_000,
                                 alternative="two-sided", random_state=1).pvalue
    assert weighting.sign_flip_p(d) == pytest.approx(ref, abs=0.01)
    assert weighting.sign_flip_p(np.ones(6)) == weighting.smallest_p(6) == 2 / 64
    with pytest.raises(ValueError, match="finite"):
        weighting.sign_flip_p([0.1, float("nan")])


def test_minimum_detectable_effect_is_the_t_tests_80_percent_power_point():
    mde = weighting.minimum_detectable_effect(0.05, 8)
    # a noncentral t at that shift has 80% of its mass beyond the critical value (approximately, as stated)
    crit = stats.t.ppf(0.975, 7)
    power = 1 - stats.nct.cdf(crit, 7, mde / (0.05 / math.sqrt(8)))
    assert 0.75 < power < 0.85
    assert weighting.minimum_detectable_effect(0.05, 32) < mde


def test_seeds_needed_is_the_first_count_whose_detectable_effect_reaches_the_target():
    n = weighting.seeds_needed(0.03, 0.026)
    assert weighting.minimum_detectable_effect(0.03, n) <= 0.026 < weighting.minimum_detectable_effect(0.03, n - 1)
    assert weighting.paper_effect() == pytest.approx(0.4505 - 0.4248)
    with pytest.raises(ValueError, match="cannot reach it"):
        weighting.seeds_needed(1.0, 0.001, most=50)


def test_the_power_rule_makes_an_underpowered_or_collapsing_design_not_testable():
    assert weighting.power_rule(0.02, 0.026, 2, 6) == ""
    assert "minimum detectable effect 0.040 exceeds the paper's effect 0.026" in weighting.power_rule(0.04, 0.026, 0, 6)
    assert "3 of the baseline's 6 test seeds did not learn" in weighting.power_rule(0.02, 0.026, 3, 6)
    reason = weighting.power_rule(0.04, 0.026, 3, 6)
    v = weighting.comparison_verdict("weighting.high_boost_helps", "s", [0.5] * 6, [0.4] * 6, reason)
    assert v.status == claims.NOT_TESTABLE and "did not learn" in v.rule and "exceeds" in v.rule


def test_pilot_check_needs_every_seed_to_learn_with_a_small_spread():
    base = (0.2, 0.15, 0.25)
    assert weighting.pilot_check([0.40, 0.42, 0.41], base)[0]
    assert not weighting.pilot_check([0.40, 0.42, 0.20], base)[0]  # a collapsed seed
    assert not weighting.pilot_check([0.30, 0.45, 0.60], base)[0]  # learns, but the spread is ~ the gain


def test_comparison_verdicts_can_agree_disagree_or_not_decide():
    base = np.array([0.40, 0.42, 0.38, 0.41, 0.43, 0.39])
    up = weighting.comparison_verdict("weighting.high_boost_helps", "s", base + 0.03, base)
    down = weighting.comparison_verdict("weighting.high_boost_helps", "s", base - 0.03, base)
    mixed = weighting.comparison_verdict("weighting.high_boost_helps", "s",
                                         base + np.array([0.03, -0.03, 0.02, -0.02, 0.01, -0.01]), base)
    unstable = weighting.comparison_verdict("weighting.high_boost_helps", "s", base + 0.03, base, "no pilot passed")
    assert [v.status for v in (up, down, mixed, unstable)] == [claims.AGREES, claims.DISAGREES, claims.INCONCLUSIVE,
                                                               claims.NOT_TESTABLE]
    assert up.low > 0 and down.high < 0 and "p = 0.0312" in up.rule and unstable.rule == "no pilot passed"


def test_kl_q90_is_the_median_over_logged_steps_and_refuses_none():
    assert weighting.kl_q90([[{"kl_q90": 0.1}, {"step": 2}], [{"kl_q90": 0.3}, {"kl_q90": 0.2}]]) == 0.2
    with pytest.raises(ValueError, match="updates_per_batch"):
        weighting.kl_q90([[{"step": 1}]])


def test_top_decile_tokens_counts_and_category_lift():
    logs = [[{"top_decile_tokens": {"1": 3}, "tokens": {"1": 4, "2": 20}}],
            [{"top_decile_tokens": {"1": 1, "2": 1}, "tokens": {"1": 4, "2": 20}}]]
    names = {1: "<eos>", 2: "Ġthe"}
    rows, lift = weighting.top_decile_tokens(logs, names.get)
    assert rows[0] == {"token": "<eos>", "share_of_top_decile": 0.8, "share_of_its_uses": 0.5}
    assert lift["stop or special"] == pytest.approx(0.8 / (8 / 48)) and list(lift)[0] == "stop or special"
    assert weighting.top_decile_tokens([[{}]], names.get) == ([], {})


def test_the_experiment_protocol_compares_the_arms_it_fixed_in_advance(capsys):
    """Notebook 05's protocol (``sections.weighting``): the arms' settings, and each comparison paired by seed and
    judged by its rule, the paper's weights compared too, and the power rule's reason making all not testable."""
    import polars as pl
    from tokenshift.sections import weighting as protocol

    arms = protocol.arms(1e-4, 0.5, 1.0, paper_weights=True)
    assert list(arms) == [protocol.BASELINE, "high-divergence boost", "low-divergence boost",
                          "high boost, weights shuffled", "high boost, paper's weights"]
    assert (arms["high-divergence boost"]["weight_alpha"], arms["low-divergence boost"]["weight_alpha"]) == (0.5, -0.5)
    assert arms["high boost, weights shuffled"]["weight_shuffle"] and all(a["lr"] == 1e-4 for a in arms.values())
    assert "weight_normalise" not in arms["high boost, paper's weights"]  # the paper's w_t as published
    assert "high boost, paper's weights" not in protocol.arms(1e-4, 0.5, 1.0, paper_weights=False)

    e = protocol.Experiment(profile="smoke", seed=0, pilot_seeds=[], pilot_lrs=[], seeds=list(range(6)),
                            size_seeds=False, max_seeds=6, steps=1, prompts_per_step=1, updates_per_batch=1,
                            weight_scale=1.0, paper_weights=True, top_decile_share=0.8, n_validation_problems=1,
                            n_test_problems=1, eval_samples=1, workers=1)
    base = np.array([0.40, 0.42, 0.38, 0.41, 0.43, 0.39])
    shift = {"high-divergence boost": 0.03, "low-divergence boost": -0.03}
    e.arms, e.collapsed, e.untestable = arms, dict.fromkeys(arms, 0), ""
    e.per_seed = pl.DataFrame({"seed": range(6), **{arm: base + shift.get(arm, 0.0) for arm in arms}})
    e.lr, e.alpha, e.kl_q90, e.mde, e.stable, e.effect, e.needed = 1e-4, 0.5, 0.01, 0.02, True, 0.026, 6
    verdicts, values = e.verdicts()
    status = {(v.claim, v.statistic): v.status for v in verdicts}
    assert status == {
        ("weighting.high_boost_helps", "weighting.high_divergence_boost_minus_dapo_like_baseline"): claims.AGREES,
        ("weighting.low_boost_helps", "weighting.low_divergence_boost_minus_dapo_like_baseline"): claims.DISAGREES,
        ("weighting.targeting_matters", "weighting.high_divergence_boost_minus_high_boost_weights_shuffled"):
            claims.AGREES,
        ("weighting.high_boost_helps", "weighting.high_boost_papers_weights_minus_dapo_like_baseline"):
            claims.INCONCLUSIVE}
    assert math.isclose(values["weighting.high_divergence_boost.test_accuracy_mean"], base.mean() + 0.03)
    e.untestable = weighting.power_rule(0.04, 0.026, 0, 6)  # underpowered: nothing may be claimed either way
    assert {v.status for v in e.verdicts()[0]} == {claims.NOT_TESTABLE}
