"""The divergence-weighted advantage as a controlled experiment (the paper's training diagnostic, notebook 05).

The design, fixed before any accuracy is seen:
- a pilot of the baseline on seeds of its own shows it learns on every seed with a small spread (else the arms
  would measure which seeds collapse, not where the weights fall);
- alpha comes from the pilot's KL_t distribution: the 90th-percentile token gets a set share of the largest
  weight change (``alpha_for``);
- every arm runs on the same seeds (paired), with its weights normalised to mean 1 per mini-batch, beside a
  control that shuffles the weighted arm's weights across tokens;
- a two-sided sign-flip permutation test of the paired differences, with the minimum detectable effect
  stated from the pilot's spread;
- a power rule, also fixed in advance (``power_rule``): where that minimum detectable effect exceeds the paper's
  effect, or more than a third of the baseline's test seeds do not learn, the comparisons are "not testable".
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np
from scipy import stats

from . import claims
from .shift_stats import token_category

EXACT_UP_TO = 16  # pairs: up to here the test enumerates every sign pattern (65,536), beyond it samples them
NOT_LEARNING_SHARE = 1 / 3  # more of the baseline's test seeds than this share not learning: not testable


def paper_effect() -> float:
    """The paper's high-KL boost minus its DAPO baseline (avg@32 on Qwen2.5-Math-7B, claims.PAPER): the effect the
    design has to be able to see."""
    paper = claims.PAPER
    return (paper["weighting.high_divergence_boost.test_accuracy_mean"].value
            - paper["weighting.dapo_like_baseline.test_accuracy_mean"].value)


def power_rule(mde: float, effect: float, not_learning: int, n_seeds: int) -> str:
    """Why the arms' comparisons are not testable under the rule fixed before they ran, or "" if they are: the
    minimum detectable effect (stated from the pilot) exceeds the paper's ``effect``, so a null result could not
    tell "no effect" from "too little power"; or more than a third of the baseline's test seeds did not learn, so
    the arms would compare which seeds collapse."""
    reasons = []
    if mde > effect:
        reasons.append(f"the minimum detectable effect {mde:.3f} exceeds the paper's effect {effect:.3f}")
    if not_learning > NOT_LEARNING_SHARE * n_seeds:
        reasons.append(f"{not_learning} of the baseline's {n_seeds} test seeds did not learn (more than a third)")
    return "; ".join(reasons)


def seeds_needed(sd_difference: float, effect: float, power: float = 0.8, level: float = 0.05,
                 most: int = 1000) -> int:
    """The fewest paired seeds whose ``minimum_detectable_effect`` is at most ``effect``."""
    if not (effect > 0 and sd_difference >= 0):
        raise ValueError(f"seeds_needed needs a positive effect and a standard deviation >= 0, got {effect}, "
                         f"{sd_difference}")
    for n in range(2, most + 1):
        if minimum_detectable_effect(sd_difference, n, power, level) <= effect:
            return n
    raise ValueError(f"more than {most} paired seeds would be needed to detect {effect:.3g} with a difference std "
                     f"of {sd_difference:.3g}: the design cannot reach it")


def alpha_for(kl_q90: float, share: float = 0.8) -> float:
    """|alpha| such that a token at the 90th percentile of KL_t gets ``share`` of the largest weight change:
    sigmoid(alpha KL) - 1/2 = share / 2."""
    if not (kl_q90 > 0 and math.isfinite(kl_q90)):
        raise ValueError(f"the 90th percentile of KL_t must be a positive number to set alpha from, got {kl_q90}: "
                         "the pilot needs updates_per_batch > 1 so that KL_t to pi_old is not 0")
    if not 0 < share < 1:
        raise ValueError(f"share must be in (0, 1), got {share}")
    return math.log((1 + share) / (1 - share)) / kl_q90  # logit((1 + share) / 2)


def kl_q90(logs: Sequence[Sequence[dict]]) -> float:
    """The 90th percentile of KL_t that runs' logs saw (``rl.kl_quantiles``), median over their steps."""
    seen = [r["kl_q90"] for log in logs for r in log if "kl_q90" in r]
    if not seen:
        raise ValueError("no KL_t was logged: no rollout batch was trained on a second update (updates_per_batch "
                         "must exceed 1, and DAPO-like runs skip batches whose groups all scored the same)")
    return float(np.median(seen))


def sign_flip_p(differences: Sequence[float], n_samples: int = 100_000, seed: int = 0) -> float:
    """Two-sided p-value of the paired sign-flip permutation test of mean(differences) = 0: every pattern of
    signs when there are at most ``EXACT_UP_TO`` pairs, else ``n_samples`` random ones (the observed pattern
    counted, so p > 0)."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or not np.isfinite(d).all():
        raise ValueError(f"a sign-flip test needs at least 2 finite paired differences, got {list(d)}")
    observed = abs(d.mean())
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float(np.mean(np.abs(signs @ d) / len(d) >= observed - 1e-12))
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_samples, len(d)))
    return float((np.sum(np.abs(signs @ d) / len(d) >= observed - 1e-12) + 1) / (n_samples + 1))


def smallest_p(n_pairs: int) -> float:
    """The smallest p-value a two-sided sign-flip test of ``n_pairs`` can reach (all differences one way)."""
    return 2.0 / 2**n_pairs


def minimum_detectable_effect(sd_difference: float, n_pairs: int, power: float = 0.8, level: float = 0.05) -> float:
    """The paired mean difference a two-sided test at ``level`` detects with ``power``, given the differences'
    standard deviation (the t approximation; the sign-flip test is close to it for symmetric differences)."""
    df = n_pairs - 1
    return float((stats.t.ppf(1 - level / 2, df) + stats.t.ppf(power, df)) * sd_difference / math.sqrt(n_pairs))


def paired_interval(differences: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """t interval of the mean paired difference."""
    d = np.asarray(differences, dtype=float)
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def pilot_check(accuracies: Sequence[float], base: tuple[float, float, float], spread: float = 0.5) -> tuple[bool, str]:
    """Is the baseline stable enough to compare arms on? ``base`` is the base model's accuracy and its 95% interval
    (avg, low, high). Every pilot seed must lie above the interval, and the seeds' standard deviation be at most
    ``spread`` of their mean gain over the base's accuracy (a collapsed seed makes it as large as the gain)."""
    a = np.asarray(accuracies, dtype=float)
    base_avg, _, base_high = base
    gain, sd = a.mean() - base_avg, float(a.std(ddof=1))
    learns = bool((a > base_high).all())
    stable = learns and sd <= spread * gain
    why = (f"{int((a > base_high).sum())}/{len(a)} pilot seeds above the base's interval (> {base_high:.3f}); "
           f"seed std {sd:.3f} against {spread:g} x mean gain = {spread * max(gain, 0):.3f}")
    return stable, why


def comparison_verdict(claim: str, statistic: str, arm: Sequence[float], baseline: Sequence[float],
                       untestable: str = "", seed: int = 0) -> claims.Verdict:
    """Paired arm minus baseline: agrees if the sign-flip test gives p < 0.05 with the arm ahead, disagrees if
    p < 0.05 with it behind, inconclusive otherwise; not testable, for the reason ``untestable`` says, when the
    design failed before the arms (an unstable baseline, no KL_t to set alpha from)."""
    d = np.asarray(arm, dtype=float) - np.asarray(baseline, dtype=float)
    if untestable:
        return claims.not_testable(claim, statistic, float(d.mean()), untestable)
    p = sign_flip_p(d, seed=seed)
    status = claims.INCONCLUSIVE if p >= 0.05 else claims.AGREES if d.mean() > 0 else claims.DISAGREES
    return claims.Verdict(claim, status, statistic, float(d.mean()), *paired_interval(d), rule=(
        f"agrees if the paired sign-flip test over {len(d)} seeds gives p < 0.05 with the arm ahead; p = {p:.3g} "
        f"(the smallest reachable is {smallest_p(len(d)):.3g}); interval: t, 95%"))


def top_decile_tokens(logs: Sequence[Sequence[dict]], decode, n: int = 12) -> tuple[list[dict], dict[str, float]]:
    """Which tokens the weights read as most divergent: over runs' logs (``rl.kl_quantiles``), the tokens most
    often in the top decile of KL_t with their share of it and the share of their occurrences that were, and
    the top decile's token categories against all tokens' (category -> top-decile share / overall share); both
    empty where no KL_t was logged."""
    top, every = Counter(), Counter()
    for log in logs:
        for r in log:
            top.update({int(k): v for k, v in r.get("top_decile_tokens", {}).items()})
            every.update({int(k): v for k, v in r.get("tokens", {}).items()})
    if not every:  # nothing trained on a second update (see ``kl_q90``)
        return [], {}
    total_top, total = sum(top.values()), sum(every.values())
    rows = [{"token": decode(t), "share_of_top_decile": c / total_top, "share_of_its_uses": c / every[t]}
            for t, c in top.most_common(n)]
    by_cat_top, by_cat = Counter(), Counter()
    for t, c in every.items():
        category = token_category(decode(t))
        by_cat[category] += c
        by_cat_top[category] += top.get(t, 0)
    lift = {cat: (by_cat_top[cat] / total_top) / (by_cat[cat] / total) for cat in by_cat}
    return rows, dict(sorted(lift.items(), key=lambda kv: -kv[1]))
