
import polars as pl
import pytest
from tokenshift.analyses import shift_stats


def table(rows):
    """rows: (response, position, length, js, rank, base_prob)"""
    return pl.DataFrame([
        {"response": r, "position": p, "length": n, "rel_position": (p + 0.5) / n, "js_top_p": js,
         "top1_agree": rank == 0, "tuned_top1_base_rank": rank, "tuned_top1_base_prob": prob,
         "topk_overlap_1": float(rank == 0), "topk_overlap_2": 1.0}
        for r, p, n, js, rank, prob in rows
    ])


def test_sparsity_summary_counts_shares_at_each_cutoff():
    t = table([(0, i, 10, js, 0, 0.9) for i, js in enumerate([0, 0, 0, 0, 5e-4, 5e-3, 5e-3, 0.05, 0.2, 0.5])])
    s = shift_stats.sparsity_summary(t)
    assert s["frac_js_lt_0.001"] == pytest.approx(0.5)
    assert s["frac_js_lt_0.01"] == pytest.approx(0.7)
    assert s["frac_js_lt_0.1"] == pytest.approx(0.8)
    assert s["frac_js_gt_0.1"] == pytest.approx(0.2)
    assert s["max"] == 0.5 and s["top1_agree"] == 1.0


def test_jaccard_and_high_sets():
    t = table([(0, 0, 2, 0.3, 0, 1.0), (0, 1, 2, 0.0, 0, 1.0), (1, 0, 1, 0.2, 0, 1.0)])
    assert shift_stats.high_js_positions(t) == {(0, 0), (1, 0)}
    assert shift_stats.jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    assert shift_stats.jaccard(set(), set()) == 1.0


def test_position_profile_bins_and_clusters_by_response():
    rows = [(r, p, 4, 0.4 if p == 0 else 0.0, 0, 1.0) for r in range(3) for p in range(4)]
    prof = shift_stats.position_profile(table(rows), bins=4)
    assert prof["bin"].to_list() == [0, 1, 2, 3]
    assert prof["mean_js"].to_list() == pytest.approx([0.4, 0, 0, 0])
    assert prof["share_high"].to_list() == pytest.approx([1, 0, 0, 0])
    assert prof["responses"].to_list() == [3, 3, 3, 3]
    assert prof["ci95_low"][0] == pytest.approx(0.4)  # identical responses: no spread


def test_reallocation_summary_at_high_js_only():
    t = table([(0, 0, 4, 0.5, 0, 0.6), (0, 1, 4, 0.5, 2, 0.1), (0, 2, 4, 0.5, 5, 0.001), (0, 3, 4, 0.0, 9, 0.0)])
    s = shift_stats.reallocation_summary(t)
    assert s["positions"] == 3
    assert s["tuned_top1_is_base_top1"] == pytest.approx(1 / 3)
    assert s["tuned_top1_in_base_top3"] == pytest.approx(2 / 3)
    assert s["tuned_top1_base_prob_lt_0.01"] == pytest.approx(1 / 3)
    assert s["overlap_top1"] == pytest.approx(1 / 3) and s["overlap_top2"] == 1.0
    assert shift_stats.reallocation_summary(t.filter(pl.col("js_top_p") == 0)) == {"positions": 0.0}


@pytest.mark.parametrize("token, category", [
    ("<eos>", "stop or special"), ("<|im_end|>", "stop or special"), ("Ġ123", "number"), ("7", "number"),
    ("+", "operator"), ("Ġ=", "operator"), ("\\frac", "operator"), ("ĠWait", "connective"), ("=So", "connective"),
    ("Ġthe", "function word"), ("Ġcolumn", "word"), ("Ġtens", "word"), (".", "punctuation or space"),
    ("Ċ", "punctuation or space"), ("Ġ", "punctuation or space"), (",", "punctuation or space"),
])
def test_token_categories(token, category):
    assert shift_stats.token_category(token) == category


def test_category_shares_find_the_category_that_carries_the_shift():
    t = pl.DataFrame({"token": ["Ġthe", "Ġ5", "+", "<eos>"] * 25,
                      "js_top_p": [0.0, 0.0, 0.0, 0.5] * 25})
    shares = {r["category"]: r for r in shift_stats.category_shares(t).iter_rows(named=True)}
    assert shares["stop or special"]["share_of_high_js"] == 1.0 and shares["stop or special"]["enrichment"] == 4.0
    assert shares["number"]["enrichment"] == 0.0
    assert sum(r["share_of_positions"] for r in shares.values()) == pytest.approx(1.0)
