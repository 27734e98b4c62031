"""Summaries of a shift table (``shifts.shift_table``) in the paper's terms, shared by notebooks 01, 02, 04, and
the verdicts on the paper's claims about them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core import seeding
from ..core.behaviour import Version
from . import claims

BEHAVIOUR = Version(1)

NEAR_ZERO_CUTOFFS = (1e-3, 1e-2, 1e-1)
QUANTILES = (50, 90, 95, 99)


def sparsity_summary(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> dict[str, float]:
    """The paper's sparsity finding (most positions near zero JS: >83% for DAPO, >98% for SimpleRL), legible at
    a glance (after llama.cpp's --kl-divergence summary): mean, percentiles, max, top-1 agreement, and the shares
    of positions below each near-zero cut-off and above ``high``."""
    x = table[js].to_numpy()
    out = {"positions": float(len(x)), "mean": float(x.mean())}
    out.update({f"q{q}": float(np.quantile(x, q / 100)) for q in QUANTILES})
    out["max"] = float(x.max())
    out["top1_agree"] = float(table["top1_agree"].mean())
    out.update({f"frac_js_lt_{c:g}": float((x < c).mean()) for c in NEAR_ZERO_CUTOFFS})
    out[f"frac_js_gt_{high:g}"] = float((x > high).mean())
    return out


def high_js_positions(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> set[tuple[int, int]]:
    """The (response, position) pairs whose divergence exceeds ``high`` (the paper's high-divergence set, whose
    overlap with the final model's it follows over training checkpoints)."""
    hits = table.filter(pl.col(js) > high)
    return set(zip(hits["response"].to_list(), hits["position"].to_list()))


def jaccard(a: set, b: set) -> float:
    """|a & b| / |a | b|; 1.0 when both are empty (nothing differs, nothing disagrees)."""
    return len(a & b) / len(a | b) if a | b else 1.0


def _binned(table: pl.DataFrame, bins: int) -> pl.DataFrame:
    """The table with each position's bin of normalised position (0 .. bins - 1)."""
    return table.with_columns(bin=(pl.col("rel_position") * bins).floor().cast(pl.Int32).clip(0, bins - 1))


def position_profile(table: pl.DataFrame, js: str = "js_top_p", bins: int = 10, high: float = 0.1) -> pl.DataFrame:
    """The paper's position finding (shifts cluster at the start of responses, with a smaller rise at the end):
    mean divergence per bin of normalised position, with a 95% interval that treats responses as the unit
    (positions of one response are not independent), and the share of high-divergence positions per bin."""
    binned = _binned(table, bins)
    per_response = binned.group_by("bin", "response").agg(pl.col(js).mean().alias("m"))
    stats = per_response.group_by("bin").agg(
        pl.col("m").mean().alias("mean_js"), (1.96 * pl.col("m").std() / pl.len().sqrt()).alias("half"),
        pl.len().alias("responses"))
    shares = binned.group_by("bin").agg((pl.col(js) > high).mean().alias("share_high"), pl.len().alias("positions"))
    return (stats.join(shares, on="bin").sort("bin")
            .with_columns(ci95_low=pl.col("mean_js") - pl.col("half").fill_null(0),
                          ci95_high=pl.col("mean_js") + pl.col("half").fill_null(0),
                          bin_center=(pl.col("bin") + 0.5) / bins)
            .drop("half"))


# how the RL top-1 token stood under the base, as 0/1 per high-JS position (the shares the paper reports)
MOVES = {"tuned_top1_is_base_top1": pl.col("tuned_top1_base_rank") == 0,
         "tuned_top1_in_base_top3": pl.col("tuned_top1_base_rank") < 3,
         "tuned_top1_base_prob_lt_0.01": pl.col("tuned_top1_base_prob") < 0.01}


def high_js_moves(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> pl.DataFrame:
    """The positions with JS > ``high``, with the ``MOVES`` columns (as floats)."""
    return table.filter(pl.col(js) > high).with_columns(
        **{key: expr.cast(pl.Float64) for key, expr in MOVES.items()})


def reallocation_summary(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> dict[str, float]:
    """The paper's probability-mass reallocation finding (at JS > 0.1, RL re-ranks candidates the base already
    had: top-k overlap > 80% for k >= 2, the RL top-1 within the base's top 3): how probability mass moved at
    high-divergence positions."""
    hits = high_js_moves(table, js, high)
    if len(hits) == 0:
        return {"positions": 0.0}
    out = {"positions": float(len(hits)), **{key: float(hits[key].mean()) for key in MOVES}}
    for col in sorted((c for c in table.columns if c.startswith("topk_overlap_")), key=lambda c: int(c.rsplit("_", 1)[1])):
        out[col.replace("topk_overlap_", "overlap_top")] = float(hits[col].mean())
    return out


NEAR_ZERO = 1e-2  # the cut-off the verdicts use for "near zero" (the paper does not give one)


def near_zero_share(x: np.ndarray) -> float:
    return float((x < NEAR_ZERO).mean())


def sparsity_verdicts(tables: dict[str, pl.DataFrame], rl_names: Sequence[str], js: str = "js_top_p",
                      bootstraps: int = 1000, seed: int = 0) -> list[claims.Verdict]:
    """The paper's sparsity claims, each on the models it names that ``tables`` has, with 95% intervals from
    resampling problems: DAPO > 83% and SimpleRL > 98% near zero; DAPO's 99th percentile above SimpleRL's;
    every other model (the SFT controls) with a smaller near-zero share than each RL model."""
    parts = {name: claims.by_problem(t, js) for name, t in tables.items()}
    boot = lambda groups, stat, label: claims.bootstrap(groups, stat, bootstraps, seeding.derive(seed, label))  # noqa: E731
    out = []
    for name in ("dapo", "simplerl"):
        claim = f"sparsity.{name}.frac_js_lt_0.01"
        if name in parts:
            value, ci = boot([parts[name]], near_zero_share, claim)
            out.append(claims.against(claim, claim, value, claims.PAPER[claim].value, ">", ci))
    if {"dapo", "simplerl"} <= set(parts):
        stat = "sparsity.dapo_minus_simplerl.q99"
        value, ci = boot([parts["dapo"], parts["simplerl"]],
                         lambda d, s: float(np.quantile(d, 0.99) - np.quantile(s, 0.99)), stat)
        out.append(claims.against("sparsity.dapo_heavier_tail", stat, value, 0.0, ">", ci))
    for control in (n for n in parts if n not in rl_names):
        for rl in (n for n in rl_names if n in parts):
            stat = f"sparsity.{control}_minus_{rl}.frac_js_lt_0.01"
            value, ci = boot([parts[control], parts[rl]], lambda c, r: near_zero_share(c) - near_zero_share(r), stat)
            out.append(claims.against("sparsity.sft_denser", stat, value, 0.0, "<", ci,
                                      rule=f"agrees if the interval lies < 0: {control} leaves fewer positions "
                                           f"near zero than {rl}"))
    return out


def evolution(checkpoints: Sequence[tuple[int, pl.DataFrame]], final: pl.DataFrame, js: str = "js_top_p",
              high: float = 0.1) -> pl.DataFrame:
    """The paper's evolution analysis: per checkpoint (step, shift table on the final model's responses, so every
    checkpoint is measured at the same positions), mean JS, its percentiles, and the Jaccard overlap of the
    checkpoint's high-JS set with the final model's."""
    final_set = high_js_positions(final, js=js, high=high)
    rows = []
    for step, t in checkpoints:
        x = t[js].to_numpy()
        rows.append({"step": step, "mean": float(x.mean()),
                     **{f"q{q}": float(np.quantile(x, q / 100)) for q in QUANTILES},
                     "jaccard_with_final": jaccard(high_js_positions(t, js=js, high=high), final_set)})
    return pl.DataFrame(rows).sort("step")


def earliness(steps, values) -> float:
    """How early a curve over training reaches its final value: the mean of value / final value over the
    checkpoints after step 0, by the trapezoid rule on log(step) (checkpoints are log-spaced); 1 if it is there
    from the first checkpoint on, near 0 if it arrives only at the end."""
    steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
    later = steps > 0
    x, y = np.log(steps[later]), values[later] / values[-1]
    if len(x) < 2:
        return float(y[-1])
    return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))


def evolution_verdicts(e: pl.DataFrame, name: str, tolerance: float = 0.05) -> list[claims.Verdict]:
    """The evolution claims on one run's ``evolution`` table (step 0 the base, the last row the final model).

    Monotone growth allows no fall between consecutive checkpoints larger than ``tolerance`` of the final mean.
    "Upper percentiles grow fastest" is judged on the curves' shape, since in absolute terms it holds by
    arithmetic (from a base at JS 0, every percentile's growth is its final value, and the 99th is never below
    the 90th): does the 99th percentile reach its final level earlier than the 90th (``earliness``)? Agrees if
    earlier by more than ``tolerance``, disagrees if later by more, inconclusive between; not testable where
    either ends at 0. The Jaccard endpoints are 0 and 1 by construction (the base's high-JS set is empty, the
    final model's is the reference), so only the interior is judged: no fall larger than ``tolerance`` and a
    rise from the first interior checkpoint to the last.
    """
    mean, jac = e["mean"].to_numpy(), e["jaccard_with_final"].to_numpy()
    out = []
    stat = f"evolution.{name}.largest_fall_of_mean"
    if mean[-1] <= 0:
        out.append(claims.not_testable("evolution.monotone", stat, 0.0, "the final model does not diverge"))
    else:
        fall = float(max(0.0, *(mean[:-1] - mean[1:]))) / mean[-1]
        out.append(claims.against("evolution.monotone", stat, fall, tolerance, "<",
                                  rule=f"agrees if mean JS never falls by more than {tolerance:g} of its final value"))
    stat = f"evolution.{name}.q99_minus_q90_earliness"
    if e["q99"][-1] <= 0 or e["q90"][-1] <= 0:
        out.append(claims.not_testable("evolution.upper_percentiles_fastest", stat, 0.0,
                                       "the final model's 90th or 99th percentile is 0"))
    else:
        lead = earliness(e["step"], e["q99"]) - earliness(e["step"], e["q90"])
        status = claims.AGREES if lead > tolerance else claims.DISAGREES if lead < -tolerance else claims.INCONCLUSIVE
        out.append(claims.Verdict("evolution.upper_percentiles_fastest", status, stat, lead, rule=(
            f"the 99th percentile's earliness minus the 90th's (the mean share of its final value reached, over "
            f"log training steps); agrees above {tolerance:g}, disagrees below -{tolerance:g}")))
    stat = f"evolution.{name}.largest_interior_fall_of_jaccard"
    interior = jac[1:-1]
    if len(interior) < 2:
        out.append(claims.not_testable("evolution.jaccard_rises", stat, 0.0, "fewer than two interior checkpoints"))
    else:
        fall = float(max(0.0, *(interior[:-1] - interior[1:])))
        verdict = claims.against("evolution.jaccard_rises", stat, fall, tolerance, "<",
                                 rule=f"agrees if the interior Jaccard never falls by more than {tolerance:g} and "
                                      f"ends above where it starts")
        if interior[-1] <= interior[0]:
            verdict = dataclasses.replace(verdict, status=claims.DISAGREES)
        out.append(verdict)
    return out


def edges_vs_middle(means: np.ndarray) -> tuple[float, float, float]:
    """(first bin, mean of the middle half of the bins, last bin) of a position profile's means."""
    k = len(means)
    return float(means[0]), float(np.mean(means[k // 4 : k - k // 4])), float(means[-1])


def _per_response_bins(table: pl.DataFrame, js: str, bins: int) -> list[np.ndarray]:
    """Each response's mean JS per position bin (NaN where it has no position in a bin), grouped by
    ``claims.resampled_unit``: one [responses, bins] array per problem (or per response)."""
    means = _binned(table, bins).group_by("response", "bin").agg(pl.col(js).mean())
    wide = np.full((means["response"].n_unique(), bins), np.nan)
    rows = {r: i for i, r in enumerate(sorted(means["response"].unique().to_list()))}
    for r, b, m in means.iter_rows():
        wide[rows[r], b] = m
    problem = {r: r for r in rows} if claims.resampled_unit(table) == "response" else \
        dict(table.select("response", "problem").unique().iter_rows())
    groups: dict[int, list[int]] = {}
    for r, i in rows.items():
        groups.setdefault(problem[r], []).append(i)
    return [wide[groups[p]] for p in sorted(groups)]


def position_verdicts(tables: dict[str, pl.DataFrame], rl_names: Sequence[str], js: str = "js_top_p",
                      bins: int = 10, bootstraps: int = 1000, seed: int = 0) -> list[claims.Verdict]:
    """The paper's position claims for each RL model (first bin above the middle, last bin above the middle) and
    the DAPO contrast (edges minus middle larger than SimpleRL's), on ``position_profile``'s means over
    responses, with 95% intervals from resampling problems."""
    parts = {n: _per_response_bins(tables[n], js, bins) for n in rl_names if n in tables}
    profile = lambda wide: edges_vs_middle(np.nanmean(wide, axis=0))  # noqa: E731
    contrast = lambda wide: (lambda f, m, l: (f + l) / 2 - m)(*profile(wide))  # noqa: E731
    out = []
    for name, wide in parts.items():
        for claim, stat, fn in (
                ("position.start_high", "first_bin_minus_middle", lambda w: profile(w)[0] - profile(w)[1]),
                ("position.end_rise", "last_bin_minus_middle", lambda w: profile(w)[2] - profile(w)[1])):
            name_ = f"position.{name}.{stat}"
            value, ci = claims.bootstrap([wide], fn, bootstraps, seeding.derive(seed, name_))
            out.append(claims.against(claim, name_, value, 0.0, ">", ci))
    if {"dapo", "simplerl"} <= set(parts):
        name_ = "position.dapo_minus_simplerl.edges_minus_middle"
        value, ci = claims.bootstrap([parts["dapo"], parts["simplerl"]], lambda d, s: contrast(d) - contrast(s),
                                     bootstraps, seeding.derive(seed, name_))
        out.append(claims.against("position.clearer_for_dapo", name_, value, 0.0, ">", ci,
                                  rule="agrees if the interval of DAPO's (edges - middle) minus SimpleRL's lies > 0"))
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney, ties counted half); NaN
    without both classes."""
    labels = labels.astype(bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


ENTROPY_LOCATES = 0.8  # an AUROC from here up is "excellent" discrimination (Hosmer & Lemeshow 2000)


def entropy_verdicts(tables: dict[str, pl.DataFrame], rl_names: Sequence[str], js: str = "js_top_p",
                     high: float = 0.1, bootstraps: int = 1000, seed: int = 0) -> list[claims.Verdict]:
    """Does entropy alone find the high-JS positions? For each RL model, the AUROC of the base's entropy (and of
    the RL model's) for predicting JS > ``high``, with a 95% interval from resampling problems; the paper's
    claim agrees only if entropy is a poor locator: the interval below ``ENTROPY_LOCATES``."""
    out = []
    for name in (n for n in rl_names if n in tables):
        t = tables[name].with_columns((pl.col(js) > high).cast(pl.Float64).alias("_high"))
        for who in ("base", "tuned"):
            stat = f"entropy.{name}.auroc_{who}_entropy"
            parts = claims.by_problem(t, f"entropy_{who}", "_high")
            value, ci = claims.bootstrap([parts], lambda x: auroc(x[:, 0], x[:, 1]), bootstraps,
                                         seeding.derive(seed, stat))
            if not np.isfinite(value):
                out.append(claims.not_testable("entropy.not_a_locator", stat, 0.5, f"no position above JS {high}"))
                continue
            out.append(claims.against("entropy.not_a_locator", stat, value, ENTROPY_LOCATES, "<", ci,
                                      rule=f"agrees if the AUROC's interval lies < {ENTROPY_LOCATES:g}: entropy "
                                           f"is no good locator of JS > {high:g}"))
    return out


def token_identity(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1, n_tokens: int = 12) -> pl.DataFrame:
    """The paper's token-identity analysis: the ``n_tokens`` tokens most often at high-JS positions, and over
    all their occurrences, how many there are, the share that is high-JS and the median JS."""
    frequent = (table.filter(pl.col(js) > high).group_by("token").len()
                .sort(["len", "token"], descending=[True, False])  # ties by name: group_by's order is arbitrary
                .head(n_tokens)["token"])
    return (table.filter(pl.col("token").is_in(frequent.implode()))
            .group_by("token").agg(pl.len().alias("occurrences"), (pl.col(js) > high).mean().alias("share_high"),
                                   pl.col(js).median().alias("median_js"))
            .sort(["occurrences", "token"], descending=[True, False]))


def identity_verdict(table: pl.DataFrame, name: str, js: str = "js_top_p", high: float = 0.1, n_tokens: int = 12,
                     bootstraps: int = 1000, seed: int = 0) -> claims.Verdict:
    """Context, not identity: among the tokens most often at high-JS positions, the share that are high-JS in
    fewer than half of their contexts; agrees if its interval (resampling problems) lies above 1/2. The
    exceptions (tokens high-JS in most contexts) are named in the rule."""
    stat = f"identity.{name}.share_of_tokens_mostly_low"
    identity = token_identity(table, js, high, n_tokens)
    if len(identity) == 0:
        return claims.not_testable("identity.context_decides", stat, 0.0, f"no position above JS {high}")
    code = {tok: i for i, tok in enumerate(identity["token"].to_list())}
    t = table.with_columns(pl.col("token").replace_strict(code, default=-1).cast(pl.Float64).alias("_code"),
                           (pl.col(js) > high).cast(pl.Float64).alias("_high"))
    k = len(code)

    def mostly_low(x):
        seen = x[:, 0] >= 0
        idx = x[seen, 0].astype(int)
        count = np.bincount(idx, minlength=k)
        share = np.bincount(idx, weights=x[seen, 1], minlength=k)[count > 0] / count[count > 0]
        return float((share < 0.5).mean())

    value, ci = claims.bootstrap([claims.by_problem(t, "_code", "_high")], mostly_low, bootstraps,
                                 seeding.derive(seed, stat))
    exceptions = identity.filter(pl.col("share_high") >= 0.5)["token"].to_list()
    return claims.against("identity.context_decides", stat, value, 0.5, ">", ci,
                          rule=f"agrees if the interval lies > 0.5; high-JS in most contexts: "
                               f"{', '.join(map(repr, exceptions)) or 'none'}")


def meaningful_k(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> int:
    """The largest k whose top-k ranks mean something at high-JS positions: the median size of the base's
    nucleus there (beyond it, ranks order tokens the base all but rules out), at least 2, at most the k the
    table has."""
    hits = table.filter(pl.col(js) > high)
    ks = [int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("topk_overlap_")]
    median = float(hits["nucleus_base"].median()) if len(hits) else 2.0
    return int(min(max(ks, default=1), max(2, int(np.ceil(median)))))


def reallocation_verdicts(tables: dict[str, pl.DataFrame], js: str = "js_top_p", high: float = 0.1,
                          bootstraps: int = 1000, seed: int = 0) -> list[claims.Verdict]:
    """The paper's reallocation claims, each on the model the paper states it for, at positions with JS >
    ``high``, with 95% intervals from resampling problems: top-k overlap above 80% for k = 2..``meaningful_k``
    (SimpleRL); RL top-1 = base top-1 in ~30% (both); RL top-1 within the base top-3 in > 80% (DAPO) / > 90%
    (SimpleRL); the base's probability of the RL top-1 below 0.01 in ~5% (DAPO) / ~0% (SimpleRL)."""
    out = []
    for name, t in tables.items():
        hits = high_js_moves(t, js, high)
        if len(hits) == 0:
            continue
        boot = lambda column, stat: claims.bootstrap(  # noqa: E731
            [claims.by_problem(hits, column)], lambda x: float(x.mean()), bootstraps, seeding.derive(seed, stat))
        stat = f"topk.{name}.tuned_top1_is_base_top1"
        out.append(claims.about("topk.top1_same", stat, *boot("tuned_top1_is_base_top1", stat)))
        if name not in ("dapo", "simplerl"):
            continue
        stat = f"topk.{name}.tuned_top1_in_base_top3"
        value, ci = boot("tuned_top1_in_base_top3", stat)
        out.append(claims.against(stat, stat, value, claims.PAPER[stat].value, ">", ci))
        stat = f"topk.{name}.tuned_top1_base_prob_lt_0.01"
        out.append(claims.about(stat, stat, *boot("tuned_top1_base_prob_lt_0.01", stat)))
        if name == "simplerl":
            k = meaningful_k(t, js, high)
            stat = f"topk.simplerl.min_overlap_top2_to_{k}"
            columns = [f"topk_overlap_{j}" for j in range(2, k + 1)]
            value, ci = claims.bootstrap([claims.by_problem(hits, *columns)],
                                         lambda x: float(x.reshape(len(x), -1).mean(axis=0).min()), bootstraps,
                                         seeding.derive(seed, stat))
            out.append(claims.against("topk.simplerl.min_overlap", stat, value, 0.8, ">", ci,
                                      rule=f"agrees if the interval of the smallest mean overlap over k = 2..{k} "
                                           f"(k up to the base's median nucleus at these positions) lies > 0.8"))
    return out


# Token categories for the paper's question of which kinds of tokens carry the shift. Rules on the token's
# text (byte-level BPE marks a leading space with "Ġ" and a newline with "Ċ"), so they apply to the organism's
# vocabulary and to real tokenizers alike; the word lists are ours.
CONNECTIVES = {"wait", "so", "therefore", "thus", "hence", "but", "however", "then", "now", "first", "next",
               "finally", "because", "since", "check", "let", "hmm", "alternatively", "actually", "verify"}
FUNCTION_WORDS = {"the", "a", "an", "of", "to", "in", "is", "are", "and", "or", "we", "it", "this", "that",
                  "for", "on", "with", "as", "be", "by", "at", "from", "which", "what", "i", "you", "our", "its"}
CATEGORIES = ("stop or special", "number", "operator", "connective", "function word", "word", "punctuation or space")


def token_category(token: str) -> str:
    """One of ``CATEGORIES`` for a token's text."""
    if token.startswith("<") and token.endswith(">") and len(token) > 2:
        return "stop or special"
    text = token.replace("Ġ", " ").replace("Ċ", "\n").replace("ĉ", "\t").strip()
    word = text.strip("=-+*/()[]{}.,:;!?'\"").lower()  # BPE glues punctuation to words ("=So")
    if text and all(c.isdigit() or c in ".," for c in text) and any(c.isdigit() for c in text):
        return "number"
    if text and (all(c in "+-*/=^<>()[]{}|%\\" for c in text) or text.startswith("\\")):
        return "operator"
    if word in CONNECTIVES:
        return "connective"
    if word in FUNCTION_WORDS:
        return "function word"
    if text and any(c.isalpha() for c in text):
        return "word"
    return "punctuation or space"


def category_shares(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> pl.DataFrame:
    """Per token category: its share of all positions and of the high-JS ones (JS > ``high``), the ratio of the
    two (above 1: the category carries more of the shift than its frequency), and its mean JS."""
    kinds = {token: token_category(token) for token in table["token"].unique().to_list()}
    cats = table.with_columns(pl.col("token").replace_strict(kinds, return_dtype=pl.String).alias("category"))
    n, n_high = len(cats), max(int((cats[js] > high).sum()), 1)
    out = cats.group_by("category").agg(pl.len().alias("positions"), (pl.col(js) > high).sum().alias("high_js"),
                                        pl.col(js).mean().alias("mean_js"))
    return (out.with_columns(share_of_positions=pl.col("positions") / n, share_of_high_js=pl.col("high_js") / n_high)
            .with_columns(enrichment=pl.col("share_of_high_js") / pl.col("share_of_positions"))
            .sort("category"))
