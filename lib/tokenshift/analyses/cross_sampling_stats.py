"""A cross-sampling sweep (``cross_sampling.sweep``) in the paper's terms: accuracy per budget, the smallest
budget that moves accuracy all the way (the paper's table), and the verdicts on sufficiency and necessity, in
which the random-position control takes part."""

from __future__ import annotations

import numpy as np
import polars as pl

from ..core import seeding
from ..problems.evaluation import Accuracy
from . import claims
from .cross_sampling import cap_of

DIRECTIONS = ("forward", "reverse")
SPARSE = 10.0  # % of decoding steps: the largest budget the verdicts call sparse (the paper's largest is 10.1%)


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


def paired_by_problem(frame: pl.DataFrame, eps: float) -> list[np.ndarray]:
    """Per problem, [samples, 2]: correctness under the divergence rule and under the random control at ``eps``
    (same prompts and sampler seeds, so the pair differs only in where tokens were handed over)."""
    at = frame.filter(pl.col("eps") == eps).sort("response")
    div, rnd = (at.filter(pl.col("rule") == r) for r in ("divergence", "random"))
    both = div.select("problem", "response", pl.col("correct").alias("d")).join(
        rnd.select("response", pl.col("correct").alias("r")), on="response")
    return [np.stack([g["d"].to_numpy(), g["r"].to_numpy()], axis=1).astype(float)
            for g in both.partition_by("problem", maintain_order=True)]


def crossing_verdicts(sweeps: dict[tuple[str, str], pl.DataFrame], sparse: float = SPARSE, bootstraps: int = 1000,
                      seed: int = 0, tag: str = "") -> list[claims.Verdict]:
    """Sufficiency (forward) and necessity (reverse) per RL model. The claim is about sparse budgets, so it
    needs a budget of at most ``sparse`` % of steps whose accuracy reaches the goal's interval, AND the
    divergence rule beating random positions at that budget: the 95% interval (resampling problems, paired)
    of accuracy(divergence) - accuracy(random) above 0 forward, below 0 reverse. ``tag`` names another sweep's
    statistics apart (e.g. a robustness sweep's: cross.<tag>.<model>...)."""
    refs, out = references(sweeps), []
    for (name, direction), frame in sweeps.items():
        claim = "cross.forward_sufficient" if direction == "forward" else "cross.reverse_necessary"
        where = f"cross.{tag + '.' if tag else ''}{name}.{direction}"
        stat = f"{where}.divergence_minus_random_at_sparse_budget"
        s = summarise(frame)
        sparse_points = s.filter((pl.col("rule") == "divergence") & (pl.col("pct_intervened") > 0)
                                 & (pl.col("pct_intervened") <= sparse))
        if len(sparse_points) == 0:
            out.append(claims.not_testable(claim, stat, 0.0, f"no budget of the sweep lies in (0, {sparse:g}%]"))
            continue
        goal = start_and_goal(refs, name, direction)[1]
        hit = reaches(sparse_points, goal, direction)
        if len(hit) == 0:
            best = sparse_points.sort("accuracy", descending=direction == "forward").row(0, named=True)
            edge = goal.ci95[0] if direction == "forward" else goal.ci95[1]
            short = abs(best["accuracy"] - edge)
            out.append(claims.Verdict(claim, claims.DISAGREES, f"{where}.shortfall_at_sparse_budget",
                                      short, rule=(
                f"no budget <= {sparse:g}% reaches the goal's interval: the closest, {best['pct_intervened']:.2f}% "
                f"(eps {best['eps']:g}), stops {short:.3f} short of its edge")))
            continue
        first = hit.row(0, named=True)
        value, ci = claims.bootstrap([paired_by_problem(frame, first["eps"])],
                                     lambda x: float(x[:, 0].mean() - x[:, 1].mean()), bootstraps,
                                     seeding.derive(seed, stat))
        out.append(claims.against(claim, stat, value, 0.0, ">" if direction == "forward" else "<", ci, rule=(
            f"{first['pct_intervened']:.2f}% of steps (eps {first['eps']:g}) reach the goal; agrees if the "
            f"divergence rule's accuracy minus random positions' at that budget lies "
            f"{'> 0' if direction == 'forward' else '< 0'}")))
    return out



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
