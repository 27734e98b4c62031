import numpy as np
import polars as pl
import pytest
from tokenshift.analyses import claims, shift_stats
from tokenshift.analyses.claims import AGREES, DISAGREES, INCONCLUSIVE, NOT_TESTABLE


@pytest.mark.parametrize("interval, side, status", [
    ((0.9, 0.95), ">", AGREES), ((0.5, 0.6), ">", DISAGREES), ((0.7, 0.9), ">", INCONCLUSIVE),
    ((0.5, 0.6), "<", AGREES), ((0.9, 0.95), "<", DISAGREES), ((0.7, 0.9), "<", INCONCLUSIVE),
])
def test_a_verdict_follows_the_interval_against_the_threshold(interval, side, status):
    v = claims.against("sparsity.dapo.frac_js_lt_0.01", "s", sum(interval) / 2, 0.8, side, interval)
    assert v.status == status and (v.low, v.high) == interval


def test_unknown_claims_and_statuses_are_refused():
    with pytest.raises(ValueError, match="no claim"):
        claims.Verdict("made.up", AGREES, "s", 1.0)
    with pytest.raises(ValueError, match="status"):
        claims.Verdict("sparsity.dapo_heavier_tail", "maybe", "s", 1.0)
    with pytest.raises(ValueError, match="side"):
        claims.against("sparsity.dapo_heavier_tail", "s", 1.0, 0.0, ">=")


def test_bootstrap_resamples_responses_not_positions():
    """Two responses, one all zeros and one all ones: resampling responses gives shares of 0, 1/2 or 1 (and an
    interval reaching both ends); resampling positions would give a narrow interval around 1/2."""
    groups = [[np.zeros(50), np.ones(50)]]
    point, (low, high) = claims.bootstrap(groups, lambda x: float(x.mean()), n=400, seed=0)
    assert point == 0.5 and low == 0.0 and high == 1.0
    point, (low, high) = claims.bootstrap([[np.full(10, 0.3)] * 5], lambda x: float(x.mean()), n=50, seed=0)
    assert low == high == pytest.approx(0.3)


def shift_table(seed, responses, near_zero, tail=0.3, length=40):
    """Per-token JS: a share ``near_zero`` of positions at 1e-4, the rest uniform up to ``tail``."""
    rng = np.random.default_rng(seed)
    js = np.where(rng.random((responses, length)) < near_zero, 1e-4, rng.uniform(0.02, tail, (responses, length)))
    return pl.DataFrame({"response": np.repeat(np.arange(responses), length),
                         "position": np.tile(np.arange(length), responses), "js_top_p": js.ravel()})


def by_claim(verdicts):
    return {(v.claim, v.statistic): v.status for v in verdicts}


def test_sparsity_verdicts_agree_and_disagree_with_the_data():
    agreeing = {"dapo": shift_table(0, 200, 0.90, tail=0.6), "simplerl": shift_table(1, 200, 0.995, tail=0.3),
                "sft": shift_table(2, 200, 0.5)}
    got = by_claim(shift_stats.sparsity_verdicts(agreeing, ["simplerl", "dapo"], bootstraps=200))
    assert set(got.values()) == {AGREES} and len(got) == 5  # two bounds, the tail, the control against each RL
    disagreeing = {"dapo": shift_table(0, 200, 0.6, tail=0.3), "simplerl": shift_table(1, 200, 0.9, tail=0.6),
                   "sft": shift_table(2, 200, 0.99)}
    got = by_claim(shift_stats.sparsity_verdicts(disagreeing, ["simplerl", "dapo"], bootstraps=200))
    assert set(got.values()) == {DISAGREES}
    # three responses with 70%, 85% and 95% of positions near zero: the interval straddles the bound
    js = np.concatenate([np.where(np.arange(20) < k, 1e-4, 0.2) for k in (14, 17, 19)])
    few = {"dapo": pl.DataFrame({"response": np.repeat(np.arange(3), 20), "js_top_p": js})}
    assert by_claim(shift_stats.sparsity_verdicts(few, ["dapo"], bootstraps=200)) == {
        ("sparsity.dapo.frac_js_lt_0.01", "sparsity.dapo.frac_js_lt_0.01"): INCONCLUSIVE}


def evolution_table(mean, q90, q99, jac):
    steps = range(len(mean))
    f = lambda xs: [float(x) for x in xs]  # noqa: E731
    return pl.DataFrame({"step": list(steps), "mean": f(mean), "q50": [0.0] * len(mean), "q90": f(q90),
                         "q95": f(q90), "q99": f(q99), "jaccard_with_final": f(jac)})


def test_evolution_verdicts_judge_the_interior_and_know_when_they_cannot():
    rising = evolution_table([0, .01, .02, .03, .04], [0, 0, .01, .01, .02], [0, .05, .1, .15, .2], [0, .3, .5, .7, 1])
    assert {v.status for v in shift_stats.evolution_verdicts(rising, "m")} == {AGREES}
    falling = evolution_table([0, .04, .02, .03, .04], [0, .1, .1, .1, .2], [0, .01, .01, .01, .1], [0, .7, .5, .4, 1])
    assert [v.status for v in shift_stats.evolution_verdicts(falling, "m")] == [DISAGREES] * 3
    flat = evolution_table([0, .01, .01, .01, .01], [0] * 5, [0] * 5, [0, .5, .5, .5, 1])
    got = [v.status for v in shift_stats.evolution_verdicts(flat, "m")]
    assert got == [AGREES, NOT_TESTABLE, DISAGREES]  # a flat interior does not rise


def test_upper_percentiles_growing_fastest_is_about_shape_and_can_fail():
    """The 99th percentile is always above the 90th, so its absolute growth from a base at 0 always is too; the
    verdict compares how early each reaches its final value, and disagrees where the 99th arrives last."""
    jac = [0, .3, .5, .7, 1]
    late_tail = evolution_table([0, .01, .02, .03, .04], [0, .02, .02, .02, .02], [0, .01, .02, .05, .5], jac)
    got = {v.claim: v for v in shift_stats.evolution_verdicts(late_tail, "m")}["evolution.upper_percentiles_fastest"]
    assert got.status == DISAGREES and got.value < -0.5
    same_shape = evolution_table([0, .01, .02, .03, .04], [0, .01, .02, .03, .04], [0, .1, .2, .3, .4], jac)
    got = {v.claim: v for v in shift_stats.evolution_verdicts(same_shape, "m")}["evolution.upper_percentiles_fastest"]
    assert got.status == INCONCLUSIVE and got.value == pytest.approx(0.0, abs=1e-12)
    # by hand: trapezoids on log(step) of value / final value
    steps, values = [0, 1, 10, 100], [0, 0.5, 0.5, 1.0]
    assert shift_stats.earliness(steps, values) == pytest.approx((0.5 * 1 + 0.75 * 1) / 2)


def test_evolution_table_measures_each_checkpoint_against_the_final_set():
    final = shift_table(0, 20, 0.5)
    base = final.with_columns(js_top_p=pl.lit(0.0))
    e = shift_stats.evolution([(0, base), (10, final)], final, high=0.1)
    assert e["jaccard_with_final"].to_list() == [0.0, 1.0]
    assert e["mean"][1] == pytest.approx(final["js_top_p"].mean()) and e["q99"][0] == 0.0


def test_auroc_matches_mann_whitney():
    from scipy.stats import mannwhitneyu

    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=300), 1)  # rounded: ties
    labels = rng.random(300) < scores.clip(-2, 2) / 4 + 0.5
    u = mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert shift_stats.auroc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()))
    assert np.isnan(shift_stats.auroc(scores, np.zeros(300, bool)))


def rich_table(seed, responses=150, length=30, entropy_tracks_js=False, start_boost=0.0, token_bias=False):
    """A shift table with entropies and tokens; JS high at random positions (or, with ``start_boost``, at the
    start); entropy either independent of JS or a near-perfect signal of it; with ``token_bias`` the token
    "a" is high-JS wherever it occurs."""
    rng = np.random.default_rng(seed)
    position = np.tile(np.arange(length), responses)
    tokens = rng.choice(list("abcdefgh"), responses * length)
    high = rng.random(responses * length) < 0.1 + start_boost * (position < length / 10)
    if token_bias:
        high = tokens == "a"
    js = np.where(high, rng.uniform(0.15, 0.6, len(high)), rng.uniform(0, 0.01, len(high)))
    entropy = np.where(high, rng.uniform(1, 2, len(high)), rng.uniform(0, 1, len(high))) if entropy_tracks_js \
        else rng.uniform(0, 2, len(high))
    return pl.DataFrame({"response": np.repeat(np.arange(responses), length), "position": position,
                         "rel_position": (position + 0.5) / length, "js_top_p": js, "token": tokens,
                         "entropy_base": entropy, "entropy_tuned": entropy})


def test_entropy_verdict_disagrees_where_entropy_finds_the_shift():
    blind = shift_stats.entropy_verdicts({"dapo": rich_table(0)}, ["dapo"], bootstraps=200)
    assert [v.status for v in blind] == [AGREES, AGREES]
    sighted = shift_stats.entropy_verdicts({"dapo": rich_table(0, entropy_tracks_js=True)}, ["dapo"], bootstraps=200)
    assert [v.status for v in sighted] == [DISAGREES, DISAGREES] and sighted[0].value == 1.0


def test_identity_verdict_disagrees_where_a_token_decides():
    context = shift_stats.identity_verdict(rich_table(1), "dapo", n_tokens=4, bootstraps=200)
    assert context.status == AGREES and "none" in context.rule
    identity = shift_stats.identity_verdict(rich_table(1, token_bias=True), "dapo", n_tokens=4, bootstraps=200)
    assert identity.status == DISAGREES and "'a'" in identity.rule


def test_position_verdicts_follow_where_the_shift_sits():
    tables = {"dapo": rich_table(2, start_boost=0.8), "simplerl": rich_table(3, start_boost=0.3)}
    got = {v.statistic: v.status for v in shift_stats.position_verdicts(tables, ["simplerl", "dapo"], bootstraps=200)}
    assert got["position.dapo.first_bin_minus_middle"] == AGREES
    assert got["position.dapo.last_bin_minus_middle"] in (INCONCLUSIVE, DISAGREES)  # no rise at the end here
    assert got["position.dapo_minus_simplerl.edges_minus_middle"] == AGREES
    flat = {"dapo": rich_table(2), "simplerl": rich_table(3, start_boost=0.8)}
    got = {v.statistic: v.status for v in shift_stats.position_verdicts(flat, ["simplerl", "dapo"], bootstraps=200)}
    assert got["position.dapo.first_bin_minus_middle"] != AGREES
    assert got["position.dapo_minus_simplerl.edges_minus_middle"] == DISAGREES


def test_about_claims_need_the_interval_within_the_tolerance():
    assert claims.about("topk.top1_same", "s", 0.3, (0.25, 0.35)).status == AGREES
    assert claims.about("topk.top1_same", "s", 0.6, (0.55, 0.65)).status == DISAGREES
    assert claims.about("topk.top1_same", "s", 0.4, (0.35, 0.45)).status == INCONCLUSIVE


def topk_table(seed, responses=100, length=20, top1_rate=0.3, top3_rate=0.95, unlikely_rate=0.0, overlap=0.9,
               nucleus=3):
    rng = np.random.default_rng(seed)
    n = responses * length
    rank = np.where(rng.random(n) < top1_rate, 0, np.where(rng.random(n) < top3_rate, 1, 7))
    return pl.DataFrame({"response": np.repeat(np.arange(responses), length), "js_top_p": np.full(n, 0.3),
                         "tuned_top1_base_rank": rank,
                         "tuned_top1_base_prob": np.where(rng.random(n) < unlikely_rate, 0.001, 0.2),
                         "topk_overlap_1": (rank == 0).astype(float),
                         **{f"topk_overlap_{k}": (rng.random(n) < overlap).astype(float) for k in range(2, 6)},
                         "nucleus_base": np.full(n, nucleus)})


def test_reallocation_verdicts_apply_each_number_to_its_model():
    agreeing = {"dapo": topk_table(0, top3_rate=0.9, unlikely_rate=0.05), "simplerl": topk_table(1),
                "sft": topk_table(2)}
    got = {v.statistic: v.status for v in shift_stats.reallocation_verdicts(agreeing, bootstraps=200)}
    assert set(got.values()) == {AGREES}
    assert "topk.simplerl.min_overlap_top2_to_3" in got and "topk.dapo.min_overlap_top2_to_3" not in got
    assert "topk.sft.tuned_top1_is_base_top1" in got and "topk.sft.tuned_top1_in_base_top3" not in got
    disagreeing = {"dapo": topk_table(0, top1_rate=0.6, top3_rate=0.1, unlikely_rate=0.5),
                   "simplerl": topk_table(1, top1_rate=0.05, top3_rate=0.2, unlikely_rate=0.3, overlap=0.4)}
    got = {v.statistic: v.status for v in shift_stats.reallocation_verdicts(disagreeing, bootstraps=200)}
    assert set(got.values()) == {DISAGREES}


def test_meaningful_k_follows_the_base_nucleus():
    assert shift_stats.meaningful_k(topk_table(0, nucleus=1)) == 2
    assert shift_stats.meaningful_k(topk_table(0, nucleus=4)) == 4
    assert shift_stats.meaningful_k(topk_table(0, nucleus=50)) == 5  # the table's largest k
