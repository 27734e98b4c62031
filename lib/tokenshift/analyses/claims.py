"""The paper's claims, each with its number and where it comes from, and verdicts on them that can fail.

A claim's number bounds what the paper saw ("more than 83% near zero" is a lower bound, written ">"), or
reports it ("~30%"). A verdict judges one of our statistics, with its 95% interval where it has one, against
a threshold on the claim's side:

- ``agrees``: the whole interval lies on the claim's side;
- ``disagrees``: the whole interval lies on the other side;
- ``inconclusive``: the interval straddles the threshold (more responses would decide);
- ``not testable``: the statistic cannot speak to the claim here (e.g. percentiles that are 0 throughout).

Sources name the analysis in the paper's own section titles as ``../shared/paper.md`` records them (Meng et
al. 2026, "Sparse but Critical", arXiv 2603.22446); figure numbers are not in our notes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ..core.behaviour import Version

BEHAVIOUR = Version(1)

AGREES, DISAGREES, INCONCLUSIVE, NOT_TESTABLE = "agrees", "disagrees", "inconclusive", "not testable"
STATUSES = (AGREES, DISAGREES, INCONCLUSIVE, NOT_TESTABLE)


@dataclass(frozen=True)
class Claim:
    text: str  # the paper's statement, in brief
    source: str  # the paper's analysis it comes from
    value: float | None = None  # the paper's number, where it gives one
    bound: str = ""  # ">" or "<": the paper's number is a bound in that direction; "~": about; "": as reported
    tolerance: float = 0.0  # for "~": how far from the paper's number still counts as "about" (our choice)


AIME24 = "Cross-sampling (Qwen2.5-32B, AIME 2024)"
AIME25 = "Cross-sampling (Qwen2.5-32B, AIME 2025)"
WEIGHTING = "Divergence-weighted advantage (Qwen2.5-Math-7B)"
PAPER: dict[str, Claim] = {
    "sparsity.dapo.frac_js_lt_0.01": Claim("more than 83% of DAPO's positions have near-zero JS", "Sparsity",
                                           0.83, ">"),
    "sparsity.simplerl.frac_js_lt_0.01": Claim("more than 98% of SimpleRL's positions have near-zero JS", "Sparsity",
                                               0.98, ">"),
    "sparsity.dapo_heavier_tail": Claim("DAPO's divergence has the heavier tail", "Sparsity"),
    "sparsity.sft_denser": Claim("an SFT model shifts much more densely than RL", "SFT control"),
    "position.start_high": Claim("mean JS is high at the start of responses, low in the middle", "Position"),
    "position.end_rise": Claim("mean JS rises again (less) at the end of responses", "Position"),
    "position.clearer_for_dapo": Claim("the position pattern is clearer for DAPO", "Position"),
    "entropy.not_a_locator": Claim("entropy alone does not find the changed tokens: high-JS tokens span low and "
                                   "high entropy", "Entropy"),
    "identity.context_decides": Claim("a token that is high-JS in one context is near zero in most others: "
                                      "context, not identity, decides", "Token identity"),
    "topk.simplerl.min_overlap": Claim("top-k overlap of base and RL above 80% for every k >= 2 (SimpleRL)",
                                       "Probability-mass reallocation", 0.80, ">"),
    "topk.top1_same": Claim("the RL top-1 token is the base top-1 in ~30% of high-JS positions",
                            "Probability-mass reallocation", 0.30, "~", tolerance=0.10),
    "topk.dapo.tuned_top1_in_base_top3": Claim("the RL top-1 is within the base top-3 in more than 80% (DAPO)",
                                               "Probability-mass reallocation", 0.80, ">"),
    "topk.simplerl.tuned_top1_in_base_top3": Claim("the RL top-1 is within the base top-3 in more than 90% "
                                                   "(SimpleRL)", "Probability-mass reallocation", 0.90, ">"),
    "topk.dapo.tuned_top1_base_prob_lt_0.01": Claim("the base gives the RL top-1 less than 0.01 in ~5% (DAPO)",
                                                    "Probability-mass reallocation", 0.05, "~", tolerance=0.05),
    "topk.simplerl.tuned_top1_base_prob_lt_0.01": Claim("the base gives the RL top-1 less than 0.01 in ~0% "
                                                        "(SimpleRL)", "Probability-mass reallocation", 0.0, "~",
                                                        tolerance=0.05),
    "cross.forward_sufficient": Claim("a sparse set of RL tokens lifts the base to the RL model's accuracy (recovers "
                                      "at least 90% of the gap)", "Cross-sampling"),
    "cross.reverse_necessary": Claim("handing a sparse set of base tokens back drops the RL model to the base's "
                                     "accuracy (recovers at least 90% of the gap)", "Cross-sampling"),
    "cross.beats_random": Claim("the high-divergence positions recover more of the gap than the same budget at "
                                "random positions", "Cross-sampling"),
    "cross.simplerl.forward.pct_intervened": Claim("SimpleRL forward: share of tokens intervened (%)", AIME24, 3.86),
    "cross.simplerl.forward.tokens_per_response": Claim("SimpleRL forward: tokens intervened per response", AIME24, 38),
    "cross.simplerl.forward.start_accuracy": Claim("SimpleRL forward: accuracy without intervention", AIME24, 0.0823),
    "cross.simplerl.forward.end_accuracy": Claim("SimpleRL forward: accuracy at that budget", AIME24, 0.25, ">"),
    "cross.simplerl.reverse.pct_intervened": Claim("SimpleRL reverse: share of tokens intervened (%)", AIME24, 5.0),
    "cross.simplerl.reverse.tokens_per_response": Claim("SimpleRL reverse: tokens intervened per response", AIME24, 29),
    "cross.simplerl.reverse.start_accuracy": Claim("SimpleRL reverse: accuracy without intervention", AIME24, 0.2552),
    "cross.simplerl.reverse.end_accuracy": Claim("SimpleRL reverse: accuracy at that budget", AIME24, 0.083, "<"),
    "cross.dapo.forward.pct_intervened": Claim("DAPO forward: share of tokens intervened (%)", AIME24, 7.8),
    "cross.dapo.forward.tokens_per_response": Claim("DAPO forward: tokens intervened per response", AIME24, 280),
    "cross.dapo.forward.start_accuracy": Claim("DAPO forward: accuracy without intervention", AIME24, 0.0823),
    "cross.dapo.forward.end_accuracy": Claim("DAPO forward: accuracy at that budget", AIME24, 0.44, ">"),
    "cross.dapo.reverse.pct_intervened": Claim("DAPO reverse: share of tokens intervened (%)", AIME24, 10.1),
    "cross.dapo.reverse.tokens_per_response": Claim("DAPO reverse: tokens intervened per response", AIME24, 173),
    "cross.dapo.reverse.start_accuracy": Claim("DAPO reverse: accuracy without intervention", AIME24, 0.448),
    "cross.dapo.reverse.end_accuracy": Claim("DAPO reverse: accuracy at that budget", AIME24, 0.085, "<"),
    "cross.mix_beats_rl": Claim("the mixed policy (base with RL's high-JS tokens) can beat the RL model alone, as "
                                "on AIME 2025 (SimpleRL 14% vs 12.71%, DAPO 33% vs 32%)", "Cross-sampling"),
    "cross.simplerl.forward.aime25.pct_intervened": Claim("SimpleRL forward: share of tokens intervened (%)", AIME25,
                                                          1.53),
    "cross.simplerl.forward.aime25.tokens_per_response": Claim("SimpleRL forward: tokens intervened per response",
                                                               AIME25, 13),
    "cross.simplerl.forward.aime25.start_accuracy": Claim("SimpleRL forward: base accuracy", AIME25, 0.053),
    "cross.simplerl.forward.aime25.end_accuracy": Claim("SimpleRL forward: accuracy at that budget", AIME25, 0.14, ">"),
    "cross.simplerl.forward.aime25.rl_accuracy": Claim("SimpleRL alone", AIME25, 0.1271),
    "cross.dapo.forward.aime25.pct_intervened": Claim("DAPO forward: share of tokens intervened (%)", AIME25, 6.47),
    "cross.dapo.forward.aime25.tokens_per_response": Claim("DAPO forward: tokens intervened per response", AIME25, 230),
    "cross.dapo.forward.aime25.start_accuracy": Claim("DAPO forward: base accuracy", AIME25, 0.05),
    "cross.dapo.forward.aime25.end_accuracy": Claim("DAPO forward: accuracy at that budget", AIME25, 0.33, ">"),
    "cross.dapo.forward.aime25.rl_accuracy": Claim("DAPO alone", AIME25, 0.32),
    "organism.base.pass@1": Claim("Qwen2.5-32B, AIME 2024 avg@32", "Models and settings", 0.0823),
    "organism.dapo.pass@1": Claim("DAPO-Qwen-32B, AIME 2024 avg@32", "Models and settings", 0.448),
    "organism.simplerl.pass@1": Claim("SimpleRL-Zoo-Qwen2.5-32B, AIME 2024 avg@32", "Models and settings", 0.2552),
    # Qwen2.5-Math-7B trained with the DAPO recipe, avg@32 over AIME 2024/2025 and AMC, mean and std of 3 runs
    "weighting.dapo_like_baseline.test_accuracy_mean": Claim("DAPO baseline", WEIGHTING, 0.4248),
    "weighting.dapo_like_baseline.test_accuracy_std": Claim("DAPO baseline, std", WEIGHTING, 0.0135),
    "weighting.high_divergence_boost.test_accuracy_mean": Claim("high-KL boost", WEIGHTING, 0.4505),
    "weighting.high_divergence_boost.test_accuracy_std": Claim("high-KL boost, std", WEIGHTING, 0.0079),
    "weighting.low_divergence_boost.test_accuracy_mean": Claim("low-KL boost", WEIGHTING, 0.4492),
    "weighting.low_divergence_boost.test_accuracy_std": Claim("low-KL boost, std", WEIGHTING, 0.0005),
    "weighting.high_boost_helps": Claim("boosting high-divergence tokens (alpha > 0) raises accuracy over the DAPO "
                                        "baseline", WEIGHTING, 0.4505 - 0.4248),
    "weighting.low_boost_helps": Claim("boosting low-divergence tokens (alpha < 0) raises accuracy over the DAPO "
                                       "baseline", WEIGHTING, 0.4492 - 0.4248),
    "weighting.targeting_matters": Claim("what a high-divergence boost gains comes from where its weights fall: it "
                                         "beats the same weights at shuffled tokens", WEIGHTING),
    "critical.divergent_are_critical": Claim("the divergent tokens are the critical ones: where the models differ, "
                                             "more divergence goes with more consequence for the reward",
                                             "Sparse but critical (the title claim)"),
    "evolution.monotone": Claim("JS divergence grows monotonically over RL training", "Evolution over training"),
    "evolution.upper_percentiles_fastest": Claim("the upper percentiles (95th, 99th) grow fastest",
                                                 "Evolution over training"),
    "evolution.jaccard_rises": Claim("each checkpoint's high-JS set overlaps the final one more and more",
                                     "Evolution over training"),
}


@dataclass(frozen=True)
class Verdict:
    claim: str  # key of PAPER
    status: str  # one of STATUSES
    statistic: str  # the finding it rests on (recorded beside it)
    value: float
    low: float | None = None  # 95% interval of the statistic, where it has one
    high: float | None = None
    rule: str = ""  # what agreeing requires, in words

    def __post_init__(self):
        if self.claim not in PAPER:
            raise ValueError(f"no claim {self.claim!r} in claims.PAPER")
        if self.status not in STATUSES:
            raise ValueError(f"verdict status must be one of {STATUSES}, got {self.status!r}")

    def line(self) -> str:
        """One printable line: status, the claim, the statistic and what it had to be."""
        interval = f" [{self.low:.4g}, {self.high:.4g}]" if self.low is not None else ""
        return (f"{self.status.upper() if self.status == DISAGREES else self.status}: {PAPER[self.claim].text} "
                f"({self.statistic} = {self.value:.4g}{interval}; {self.rule})")


def against(claim: str, statistic: str, value: float, threshold: float, side: str,
            interval: tuple[float, float] | None = None, rule: str = "") -> Verdict:
    """Judge ``value`` (and its interval, if any) against ``threshold``: ``side`` ">" means the claim needs the
    statistic above it, "<" below."""
    if side not in (">", "<"):
        raise ValueError(f"side must be '>' or '<', got {side!r}")
    low, high = interval if interval is not None else (value, value)
    above, below = low > threshold, high < threshold
    if side == "<":
        above, below = below, above
    status = AGREES if above else DISAGREES if below else INCONCLUSIVE
    rule = rule or f"agrees if {'the interval lies ' if interval else ''}{side} {threshold:g}"
    return Verdict(claim, status, statistic, float(value), *(map(float, interval) if interval else (None, None)), rule)


def about(claim: str, statistic: str, value: float, interval: tuple[float, float]) -> Verdict:
    """Judge an "about" claim: agrees if the interval lies within the claim's tolerance of the paper's number,
    disagrees if it lies wholly outside, inconclusive if it straddles an edge."""
    c = PAPER[claim]
    lo, hi = c.value - c.tolerance, c.value + c.tolerance
    status = AGREES if lo <= interval[0] and interval[1] <= hi else DISAGREES if interval[1] < lo or interval[0] > hi \
        else INCONCLUSIVE
    return Verdict(claim, status, statistic, float(value), float(interval[0]), float(interval[1]),
                   f"agrees if the interval lies within [{lo:g}, {hi:g}] (paper ~{c.value:g})")


FULL_JS = ".full_js"  # ends the statistic of a verdict judged on full-vocabulary JS, beside the paper's top-p one


def on_full_js(verdicts: Sequence[Verdict]) -> list[Verdict]:
    """``verdicts`` computed on full-vocabulary JS, named apart from their top-p twins (the statistic ends in
    ``FULL_JS``): for the organism the primary ones, since its phrasing choices sit near the top-p cut, where
    top-p JS jumps for tiny changes and stays 0 for shifts of minority options."""
    return [dataclasses.replace(v, statistic=v.statistic + FULL_JS) for v in verdicts]


def not_testable(claim: str, statistic: str, value: float, why: str) -> Verdict:
    return Verdict(claim, NOT_TESTABLE, statistic, float(value), rule=why)


def resampled_unit(table: pl.DataFrame) -> str:
    """The column a bootstrap resamples a table by: "problem" (the positions of one response, and the responses to
    one problem, are not independent), or "response" for a table that names no problems."""
    return "problem" if "problem" in table.columns else "response"


def by_problem(table: pl.DataFrame, *columns: str) -> list[np.ndarray]:
    """The columns' values split per ``resampled_unit`` ([positions] for one column, [positions, columns] for
    several)."""
    unit = resampled_unit(table)
    parts = table.select(unit, *columns).partition_by(unit, maintain_order=True)
    return [p[columns[0]].to_numpy() if len(columns) == 1 else p.select(columns).to_numpy() for p in parts]


def bootstrap(samples: Sequence[list[np.ndarray]], statistic: Callable[..., float], n: int = 1000,
              seed: int = 0, level: float = 0.95) -> tuple[float, tuple[float, float]]:
    """``statistic`` of the pooled positions of one or more groups of problems (``by_problem``'s parts), and its
    percentile interval (95% unless ``level`` says otherwise) from resampling each group's parts with replacement
    (independently per group)."""
    point, draws = bootstrap_draws(samples, statistic, n, seed)
    if not np.isfinite(draws).any():  # no resample had what the statistic needs
        return point, (math.nan, math.nan)
    tail = (1 - level) / 2
    low, high = np.nanquantile(draws, [tail, 1 - tail])  # a resample may lack what the statistic needs (NaN)
    return point, (float(low), float(high))


def bootstrap_draws(samples: Sequence[list[np.ndarray]], statistic: Callable[..., float], n: int = 1000,
                    seed: int = 0) -> tuple[float, np.ndarray]:
    """``bootstrap``'s point value and its ``n`` resampled values (NaN where a resample lacks what the statistic
    needs), for tests that read the whole distribution."""
    rng = np.random.default_rng(seed)
    point = statistic(*(np.concatenate(g) for g in samples))
    draws = []
    for _ in range(n):
        pooled = [np.concatenate([g[i] for i in rng.integers(0, len(g), len(g))]) for g in samples]
        draws.append(statistic(*pooled))
    return float(point), np.array(draws, dtype=float)


def holm(p_values: Sequence[float], alpha: float) -> np.ndarray:
    """Which hypotheses Holm's step-down procedure rejects at family-wise level ``alpha``."""
    p = np.asarray(p_values, dtype=float)
    rejected = np.zeros(len(p), dtype=bool)
    for step, i in enumerate(np.argsort(p, kind="stable")):
        if not p[i] <= alpha / (len(p) - step):
            break
        rejected[i] = True
    return rejected
