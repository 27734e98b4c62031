"""A cross-sampling sweep (``cross_sampling.sweep``) in the paper's terms: accuracy per budget, the smallest
budget that moves accuracy all the way (the paper's table), the verdicts on sufficiency and necessity as the
recovered gap R = (acc_mix - acc_start) / (acc_goal - acc_start) at sparse budgets, and the controls' R at the
budget those verdicts examine."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from ..core import seeding
from ..problems.evaluation import Accuracy
from . import claims
from . import cross_sampling as cs
from .cross_sampling import cap_of

DIRECTIONS = ("forward", "reverse")
SPARSE = 10.0  # % of decoding steps: the sparse bar without labelled decisions (the paper's largest budget is 10.1%)
BAR_PER_DECISION = 1.5  # the sparse bar where decisions are labelled (the organism): 1.5 x their share of positions
GOAL_SHARE = 0.9  # "moves accuracy all the way": recovers at least this share of the gap between the two models
ALPHA = 0.025  # one-sided, family-wise over the budgets within the bar (Holm): a 95% two-sided interval's edge
BUDGETS = {"pct_intervened": "", "pct_changed": ".changed_tokens"}  # the budget definitions, their statistics' ends


def accuracy(frame: pl.DataFrame) -> Accuracy:
    """avg@k of one (eps, rule) slice of a sweep: a row of k samples per problem."""
    per_problem = frame.sort("response").group_by("problem", maintain_order=True).agg(pl.col("correct"))
    return Accuracy(np.array(per_problem["correct"].to_list()))


def summarise(frame: pl.DataFrame) -> pl.DataFrame:
    """Per (eps, rule): the share of steps intervened and of steps whose token the intervention changed, both per
    response too, accuracy and its 95% interval. (Files written before changed tokens were recorded give null.)"""
    rows = []
    for (eps, rule), g in frame.group_by("eps", "rule"):
        acc = accuracy(g)
        changed = "changed_count" in g.columns
        rows.append({"eps": eps, "rule": rule, "pct_intervened": 100 * g["fraction"].mean(),
                     "pct_changed": 100 * (g["changed_count"] / g["intervened"].list.len().clip(lower_bound=1)).mean()
                     if changed else None,
                     "tokens_per_response": g["count"].mean(),
                     "changed_per_response": g["changed_count"].mean() if changed else None, "accuracy": acc.avg,
                     "ci95_low": acc.ci95[0], "ci95_high": acc.ci95[1]})
    return pl.DataFrame(rows, schema_overrides={"pct_changed": pl.Float64, "changed_per_response": pl.Float64}) \
        .sort("rule", "pct_intervened", "eps")  # eps breaks ties: group_by's order is arbitrary


def references(sweeps: dict[tuple[str, str], pl.DataFrame]) -> dict[tuple[str, str], Accuracy]:
    """("base" | "rl", model) -> accuracy alone: eps = inf never intervenes, so forward at inf is the base
    sampled alone and reverse at inf the RL model alone."""
    out = {}
    for (name, direction), frame in sweeps.items():
        out["base" if direction == "forward" else "rl", name] = accuracy(alone(frame))
    return out


def alone(frame: pl.DataFrame) -> pl.DataFrame:
    """The sweep's eps = inf rows of the divergence rule: the primary model sampled alone (the random rule's rows
    there are the same responses)."""
    return frame.filter((pl.col("eps") == np.inf) & (pl.col("rule") == "divergence"))


def start_and_goal(refs, name: str, direction: str) -> tuple[Accuracy, Accuracy]:
    return (refs["base", name], refs["rl", name]) if direction == "forward" else (refs["rl", name], refs["base", name])


def reaches(summary: pl.DataFrame, goal: Accuracy, direction: str) -> pl.DataFrame:
    """The divergence rule's budgets (> 0) whose accuracy reaches the goal's interval, smallest first: at least
    its lower end forward (towards the RL model), at most its upper end reverse (towards the base)."""
    div = summary.filter((pl.col("rule") == "divergence") & (pl.col("pct_intervened") > 0))
    div = div.sort("pct_intervened", "eps")
    return div.filter(pl.col("accuracy") >= goal.ci95[0]) if direction == "forward" else \
        div.filter(pl.col("accuracy") <= goal.ci95[1])


def bracket(summary: pl.DataFrame, goal: Accuracy, direction: str) -> tuple[float, float] | None:
    """Where the smallest sufficient budget lies between two of the divergence rule's thresholds: the largest
    finite eps > 0 whose accuracy reaches the goal's interval, and the smallest larger eps (a smaller budget)
    that does not. None if no such pair (nothing reaches the goal, or the largest eps already does)."""
    div = summary.filter((pl.col("rule") == "divergence") & pl.col("eps").is_finite() & (pl.col("eps") > 0))
    hits = reaches(div, goal, direction)
    if len(hits) == 0:
        return None
    low = hits["eps"].max()
    above = div.filter(pl.col("eps") > low)
    return (low, above["eps"].min()) if len(above) else None


def bisect_budget(frame: pl.DataFrame, goal: Accuracy, direction: str, run, steps: int) -> pl.DataFrame:
    """``frame`` (a sweep) with up to ``steps`` more thresholds, each the geometric mean (to 3 significant
    digits) of the current ``bracket``: the smallest sufficient budget found to within a factor sqrt(hi/lo)
    of eps per step, where a fixed grid leaves gaps. ``run(eps)`` returns the sweep's rows at one more eps.
    (The realised budget need not fall monotonically with eps, so the bracket is re-read after every run.)"""
    for _ in range(steps):
        found = bracket(summarise(frame), goal, direction)
        if found is None:
            break
        middle = float(f"{(found[0] * found[1]) ** 0.5:.3g}")
        if middle in found:  # the bracket is as narrow as 3 digits write it
            break
        frame = pl.concat([frame, run(middle)], how="diagonal_relaxed")
    return frame


def budget_table(sweeps: dict[tuple[str, str], pl.DataFrame]) -> pl.DataFrame:
    """The paper's table: per model and direction, the smallest budget that reaches the goal (intervened steps,
    and the changed tokens among them), its tokens per response and accuracy, and the random control's accuracy
    at that budget (nulls where none reaches it)."""
    refs, rows = references(sweeps), []
    found = ("eps", "pct_intervened", "pct_changed", "tokens_per_response", "changed_per_response")
    for (name, direction), frame in sweeps.items():
        s = summarise(frame)
        start, goal = start_and_goal(refs, name, direction)
        row = {"model": name, "direction": direction, "start_accuracy": start.avg, "goal_accuracy": goal.avg,
               **dict.fromkeys(found), "end_accuracy": None, "random_control_accuracy": None}
        hit = reaches(s, goal, direction)
        if len(hit):
            first = hit.row(0, named=True)
            rnd = s.filter((pl.col("rule") == "random") & (pl.col("eps") == first["eps"]))
            row.update({k: first[k] for k in found}, end_accuracy=first["accuracy"],
                       random_control_accuracy=rnd["accuracy"][0] if len(rnd) else None)
        rows.append(row)
    return pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in (*found, "end_accuracy",
                                                                         "random_control_accuracy")})


def cap_thresholds(table: pl.DataFrame, eps_grid) -> dict[tuple[str, str], float]:
    """Where the capped rule is tried, per model and direction of ``budget_table``: at its smallest sufficient
    threshold, or, where none suffices, at the grid's smallest finite positive one."""
    grid = [e for e in eps_grid if 0 < e < float("inf")]
    return {(r["model"], r["direction"]): r["eps"] if r["eps"] is not None else min(grid, default=0.0)
            for r in table.iter_rows(named=True)}


def cap_table(capped: dict[tuple[str, str], pl.DataFrame], sweeps: dict[tuple[str, str], pl.DataFrame]) -> pl.DataFrame:
    """How many handovers are necessary: per model, direction and cap m (the divergence rule limited to each
    response's first m steps above eps), the accuracy, its interval, the handovers actually made per response,
    and whether it reaches the goal's interval (the other model alone, from ``sweeps``)."""
    refs, rows = references(sweeps), []
    for (name, direction), frame in capped.items():
        goal = start_and_goal(refs, name, direction)[1]
        capped_rows = [(cap_of(r["rule"]), r) for r in summarise(frame).iter_rows(named=True)]
        for cap, r in sorted(((c, r) for c, r in capped_rows if c is not None), key=lambda cr: cr[0]):
            reached = bool(r["accuracy"] >= goal.ci95[0] if direction == "forward" else r["accuracy"] <= goal.ci95[1])
            rows.append({"model": name, "direction": direction, "eps": r["eps"], "cap": cap,
                         "tokens_per_response": r["tokens_per_response"], "pct_intervened": r["pct_intervened"],
                         "accuracy": r["accuracy"], "ci95_low": r["ci95_low"], "ci95_high": r["ci95_high"],
                         "goal_accuracy": goal.avg, "reaches_goal": reached})
    return pl.DataFrame(rows)


def other(direction: str) -> str:
    return "reverse" if direction == "forward" else "forward"


def gap_samples(sweeps: dict[tuple[str, str], pl.DataFrame], key: tuple[str, str], frame: pl.DataFrame, eps: float,
                rules: Sequence[str]) -> list[np.ndarray]:
    """Per problem, [samples, len(rules) + 2]: correctness under each of ``rules`` at ``eps`` (``frame``'s rows),
    then the start (this sweep's primary alone) and the goal (the other direction's primary alone), all on the same
    prompt and sample slot, so the columns differ only in where tokens were handed over."""
    name, direction = key
    columns = [f"rule_{i}" for i in range(len(rules))] + ["start", "goal"]
    joined = None
    for column, rule in zip(columns, rules):
        part = frame.filter((pl.col("eps") == eps) & (pl.col("rule") == rule)).select(
            "problem", "response", pl.col("correct").alias(column))
        joined = part if joined is None else joined.join(part.drop("problem"), on="response")
    for column, d in (("start", direction), ("goal", other(direction))):
        joined = joined.join(alone(sweeps[name, d]).select("response", pl.col("correct").alias(column)), on="response")
    return [g.select(columns).to_numpy().astype(float)
            for g in joined.sort("response").partition_by("problem", maintain_order=True)]


def recovered(x: np.ndarray, column: int, sign: int) -> float:
    """R = (accuracy of ``column`` - the start's) / (the goal's - the start's) over ``gap_samples``' rows; NaN
    unless the goal lies beyond the start in the direction ``sign`` says (+1: the RL model above the base,
    forward; -1: reverse), where there is no gap to recover."""
    mean = x.mean(0)
    gap = mean[-1] - mean[-2]
    return float((mean[column] - mean[-2]) / gap) if sign * gap > 0 else math.nan


def _interval(draws: np.ndarray) -> tuple[float, float]:
    return tuple(map(float, np.nanquantile(draws, [0.025, 0.975]))) if np.isfinite(draws).any() else (math.nan,) * 2


def recovered_gaps(sweeps: dict[tuple[str, str], pl.DataFrame], bootstraps: int = 1000, seed: int = 0,
                   tag: str = "") -> pl.DataFrame:
    """Per model, direction and budget of the divergence rule (finite eps that handed something over): both budgets,
    accuracy, the recovered gap R with its 95% interval (resampling problems, paired), and the one-sided bootstrap
    p-values of "R < 0.9" (``p_short``: small where R reaches 0.9) and of "R >= 0.9" (``p_reaches``: small where
    it falls short). A resample without a gap counts against both."""
    rows = []
    for (name, direction), frame in sweeps.items():
        budgets = summarise(frame).filter((pl.col("rule") == "divergence") & pl.col("eps").is_finite()
                                          & (pl.col("pct_intervened") > 0)).sort("pct_intervened", "eps")
        sign = 1 if direction == "forward" else -1
        for b in budgets.iter_rows(named=True):
            stat = f"cross.{tag + '.' if tag else ''}{name}.{direction}.recovered_gap.eps_{b['eps']:g}"
            point, draws = claims.bootstrap_draws(
                [gap_samples(sweeps, (name, direction), frame, b["eps"], ("divergence",))],
                lambda x: recovered(x, 0, sign), bootstraps, seeding.derive(seed, stat))  # noqa: B023
            low, high = _interval(draws)
            rows.append({"model": name, "direction": direction, "eps": b["eps"],
                         "pct_intervened": b["pct_intervened"], "pct_changed": b["pct_changed"],
                         "accuracy": b["accuracy"], "recovered": point, "low": low, "high": high,
                         "p_short": (1 + np.sum(~(draws >= GOAL_SHARE))) / (bootstraps + 1),
                         "p_reaches": (1 + np.sum(~(draws < GOAL_SHARE))) / (bootstraps + 1)})
    return pl.DataFrame(rows, schema_overrides={"pct_changed": pl.Float64, "recovered": pl.Float64,
                                                "low": pl.Float64, "high": pl.Float64})


def gap_verdicts(gaps: pl.DataFrame, bars: dict[tuple[str, str], float], budget: str = "pct_intervened",
                 tag: str = "") -> list[claims.Verdict]:
    """Sufficiency (forward) and necessity (reverse) per RL model, from ``recovered_gaps``: agrees if R reaches
    0.9 at some budget (``budget``: "pct_intervened" or "pct_changed") within the sparse bar of ``bars`` (per
    model and direction, % of steps), disagrees if R falls short of 0.9 at every such budget, else inconclusive;
    each family tested by Holm's procedure over the budgets, one-sided at ``ALPHA``. Shown: the budget with the
    strongest evidence of reaching 0.9 (``strongest``), with its 95% interval."""
    out = []
    for (name, direction), g in gaps.group_by("model", "direction", maintain_order=True):
        claim = "cross.forward_sufficient" if direction == "forward" else "cross.reverse_necessary"
        stat = f"cross.{tag + '.' if tag else ''}{name}.{direction}.recovered_gap{BUDGETS[budget]}"
        bar, unit = bars[name, direction], "steps" if budget == "pct_intervened" else "changed tokens"
        within = g.filter(pl.col(budget) <= bar)
        if len(within) == 0:
            out.append(claims.not_testable(claim, stat, 0.0, f"no budget of the sweep lies in (0, {bar:.2f}%] of "
                                                              f"{unit}"))
            continue
        if within["recovered"].is_nan().all():
            out.append(claims.not_testable(claim, stat, 0.0, "the RL model is not more accurate than the base here: "
                                                              "there is no gap to recover"))
            continue
        reaches, short = claims.holm(within["p_short"], ALPHA), claims.holm(within["p_reaches"], ALPHA)
        status = claims.AGREES if reaches.any() else claims.DISAGREES if short.all() else claims.INCONCLUSIVE
        shown = strongest(within).row(0, named=True)
        out.append(claims.Verdict(claim, status, stat, shown["recovered"], shown["low"], shown["high"], rule=(
            f"R = (the mix's accuracy - the start's) / (the goal's - the start's); agrees if R >= {GOAL_SHARE:g} at "
            f"some budget within {bar:.2f}% of {unit}, disagrees if R < {GOAL_SHARE:g} at all {len(within)} of them "
            f"(Holm, one-sided {ALPHA:g}), else inconclusive; shown: {shown[budget]:.2f}% (eps {shown['eps']:g}), "
            "its 95% interval")))
    return out


def examined(gaps: pl.DataFrame, bars: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    """Per model and direction, the eps of the budget ``gap_verdicts`` shows (intervened steps), or where no
    budget lies within the bar, of the smallest: where the controls are compared."""
    out = {}
    for (name, direction), g in gaps.group_by("model", "direction", maintain_order=True):
        within = g.filter(pl.col("pct_intervened") <= bars[name, direction])
        out[name, direction] = strongest(within)["eps"][0] if len(within) else g.sort("pct_intervened")["eps"][0]
    return out


def strongest(gaps: pl.DataFrame) -> pl.DataFrame:
    """``recovered_gaps`` rows from the strongest evidence of R reaching 0.9 (smallest ``p_short``) down; among
    equals, the larger R, then the smaller budget."""
    return gaps.sort(["p_short", "recovered", "pct_intervened"], descending=[False, True, False], nulls_last=True)


def control_table(sweeps: dict[tuple[str, str], pl.DataFrame], at: dict[tuple[str, str], float],
                  controls: dict[tuple[str, str], pl.DataFrame] | None = None, bootstraps: int = 1000,
                  seed: int = 0, tag: str = "") -> pl.DataFrame:
    """At each model and direction's eps of ``at``: the divergence rule and every control found there (in
    ``sweeps``, or in ``controls``, sweeps of the controls at that eps): each one's budgets, accuracy and
    recovered gap R, and the divergence rule's R minus the control's, with 95% intervals (resampling problems,
    paired by prompt and sample slot)."""
    rows = []
    for key, eps in at.items():
        frame = sweeps[key].filter(pl.col("eps") == eps)
        if controls is not None:
            frame = pl.concat([frame, controls[key].filter((pl.col("eps") == eps) & (pl.col("rule") != "divergence"))],
                              how="diagonal_relaxed")
        present = frame["rule"].unique().to_list()
        rules = ["divergence", *sorted((r for r in present if cs.is_control(r)),
                                       key=lambda r: (CONTROL_ORDER.index(control_name(r)), r))]
        x = [gap_samples(sweeps, key, frame, eps, rules)]
        sign = 1 if key[1] == "forward" else -1
        where = f"cross.{tag + '.' if tag else ''}{key[0]}.{key[1]}"
        summary = summarise(frame)
        for i, rule in enumerate(rules):
            s = summary.filter(pl.col("rule") == rule).row(0, named=True)
            r, draws = claims.bootstrap_draws(x, lambda x: recovered(x, i, sign), bootstraps,  # noqa: B023
                                              seeding.derive(seed, where, "recovered", rule))
            diff, diff_draws = claims.bootstrap_draws(
                x, lambda x: recovered(x, 0, sign) - recovered(x, i, sign), bootstraps,  # noqa: B023
                seeding.derive(seed, where, "recovered minus", rule)) if i else (math.nan, np.array([math.nan]))
            (low, high), (minus_low, minus_high) = _interval(draws), _interval(diff_draws)
            rows.append({"model": key[0], "direction": key[1], "eps": eps, "rule": rule, "name": control_name(rule),
                         "pct_intervened": s["pct_intervened"], "pct_changed": s["pct_changed"],
                         "accuracy": s["accuracy"], "recovered": r, "low": low, "high": high,
                         "divergence_minus": diff, "minus_low": minus_low, "minus_high": minus_high})
    return pl.DataFrame(rows, schema_overrides={k: pl.Float64 for k in ("pct_changed", "recovered", "low", "high",
                                                                         "divergence_minus", "minus_low",
                                                                         "minus_high")})


CONTROL_ORDER = ("random", "random_divergent", "entropy")


def control_name(rule: str) -> str:
    """A rule's name in statistics: "divergence", "random", "random_divergent" (at any scale) or "entropy" (the
    base's, on either side)."""
    if rule == "divergence" or rule == "random":
        return rule
    return "random_divergent" if cs.divergent_scale(rule) is not None else "entropy"


def matched_scale(frame: pl.DataFrame, eps: float) -> float:
    """S for "random, divergent xS": the divergence rule's changed tokens over the unscaled control's, at ``eps``
    of a control sweep (3 significant digits; 999 at most, where the control changed nothing)."""
    at = frame.filter(pl.col("eps") == eps)
    changed = {r: at.filter(pl.col("rule") == r)["changed_count"].sum() for r in ("divergence", "random, divergent")}
    if changed["divergence"] == 0:
        return 1.0
    return min(999.0, float(f"{changed['divergence'] / max(changed['random, divergent'], 1e-3):.3g}"))


def beats_random(table: pl.DataFrame, tag: str = "") -> list[claims.Verdict]:
    """Per model and direction of ``control_table``: agrees if the divergence rule's R minus the random control's
    lies above 0 (95% interval), disagrees if below, else inconclusive."""
    out = []
    for r in table.filter(pl.col("rule") == "random").iter_rows(named=True):
        stat = f"cross.{tag + '.' if tag else ''}{r['model']}.{r['direction']}.recovered_minus_random"
        if math.isnan(r["divergence_minus"]):
            out.append(claims.not_testable("cross.beats_random", stat, 0.0, "there is no gap to recover"))
            continue
        out.append(claims.against("cross.beats_random", stat, r["divergence_minus"], 0.0, ">",
                                  (r["minus_low"], r["minus_high"]), rule=(
            f"at {r['pct_intervened']:.2f}% of steps (eps {r['eps']:g}, the budget of the gap verdict): agrees if "
            "the divergence rule's recovered gap minus random positions' lies > 0")))
    return out


def control_values(table: pl.DataFrame, tag: str = "") -> dict[str, float]:
    """``control_table`` as findings: each rule's R and budgets, and each control's gap to the divergence rule."""
    values = {}
    for r in table.iter_rows(named=True):
        where = f"cross.{tag + '.' if tag else ''}{r['model']}.{r['direction']}.at_verdict_budget.{r['name']}"
        values.update({f"{where}.{k}": r[k] for k in ("eps", "pct_intervened", "pct_changed", "recovered", "low",
                                                      "high") if r[k] is not None and not math.isnan(r[k])})
        if r["rule"] != "divergence" and not math.isnan(r["divergence_minus"]):
            values.update({f"{where}.divergence_minus": r["divergence_minus"],
                           f"{where}.divergence_minus.low": r["minus_low"],
                           f"{where}.divergence_minus.high": r["minus_high"]})
    return values


def paired_with_rl_alone(sweeps, name: str, eps: float) -> list[np.ndarray]:
    """Per problem, [samples, 2]: correctness of the forward mix at ``eps`` and of the RL model alone (the
    reverse sweep at eps = inf), on the same problems."""
    mix = sweeps[(name, "forward")].filter((pl.col("eps") == eps) & (pl.col("rule") == "divergence"))
    rl = alone(sweeps[(name, "reverse")])
    out = []
    for (problem,), m in mix.sort("response").group_by("problem", maintain_order=True):
        a = rl.filter(pl.col("problem") == problem).sort("response")["correct"].to_numpy()
        out.append(np.stack([m["correct"].to_numpy(), a], axis=1).astype(float))
    return out


def mix_against_rl(sweeps: dict[tuple[str, str], pl.DataFrame], bootstraps: int = 1000,
                   seed: int = 0) -> tuple[pl.DataFrame, list[claims.Verdict]]:
    """The mixed policy (forward: the base, handing RL's high-JS tokens over) against the RL model alone, per
    budget: accuracy difference with an interval from resampling problems, Bonferroni-corrected over the
    budgets (so looking at every budget does not manufacture a win). The verdict per model agrees if some
    budget's interval lies above 0, disagrees if every budget's lies below 0, else inconclusive."""
    rows, verdicts = [], []
    for name in sorted({n for n, d in sweeps if d == "forward" and (n, "reverse") in sweeps}):
        s = summarise(sweeps[(name, "forward")])
        budgets = s.filter((pl.col("rule") == "divergence") & (pl.col("pct_intervened") > 0))
        budgets = budgets.sort("pct_intervened", "eps")
        if len(budgets) == 0:
            continue
        level = 1 - 0.05 / len(budgets)
        for b in budgets.iter_rows(named=True):
            stat = f"cross.{name}.mix_minus_rl.eps_{b['eps']:g}"
            value, (low, high) = claims.bootstrap([paired_with_rl_alone(sweeps, name, b["eps"])],
                                                  lambda x: float(x[:, 0].mean() - x[:, 1].mean()), bootstraps,
                                                  seeding.derive(seed, stat), level=level)
            rows.append({"model": name, "eps": b["eps"], "pct_intervened": b["pct_intervened"],
                         "mix_accuracy": b["accuracy"], "mix_minus_rl": value, "low": low, "high": high})
        mine = [r for r in rows if r["model"] == name]
        best = max(mine, key=lambda r: r["low"])
        status = claims.AGREES if best["low"] > 0 else claims.DISAGREES if all(r["high"] < 0 for r in mine) \
            else claims.INCONCLUSIVE
        verdicts.append(claims.Verdict("cross.mix_beats_rl", status, f"cross.{name}.mix_minus_rl.best",
                                       best["mix_minus_rl"], best["low"], best["high"], rule=(
            f"agrees if at some budget the mix's accuracy minus the RL model's lies > 0 (intervals at "
            f"{100 * level:.1f}%, Bonferroni over {len(mine)} budgets); shown: the budget whose interval starts "
            f"highest, {best['pct_intervened']:.2f}% (eps {best['eps']:g})")))
    return pl.DataFrame(rows), verdicts
