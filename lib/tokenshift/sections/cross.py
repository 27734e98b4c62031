"""Notebook 03, cross-sampling: accuracy against the share of intervened tokens, the recovered gap and its
controls, the capped rule, the mix against the RL model alone, the paper's robustness setting, and examples of
responses the other model's tokens derailed."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from ..analyses import claims, cross_sampling_stats as cs
from ..suite import plotting

WIDE = dict(float_precision=3, tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200)


def sweeps(this, benchmark: str, eps_grid, js_top_p: float, bisection_steps: int, workers: int):
    """The sweeps of every RL model and direction over ``eps_grid`` (refined by bisection), after how each pair
    is asked: (their config, the sweeps)."""
    if float("inf") not in eps_grid:
        raise ValueError("eps_grid must contain inf: the never-intervene runs are the base and RL references")
    for name in this.pairs.rl_names:  # the prompt, stop set and grading each pair is run with
        print(f"{name}: {this.problems_for(name, benchmark).how_asked()}")
    config = this.sweep_config(eps_grid, js_top_p)
    return config, this.sweeps(config, benchmark, bisection_steps, workers)


def references(this, swept: dict) -> dict:
    """The base and each RL model alone (eps inf), printed."""
    reference = cs.references(swept)
    for name in this.pairs.rl_names:
        print(f"{name:9s} base {reference['base', name].summary()}; RL {reference['rl', name].summary()}")
    return reference


def divergence_summaries(swept: dict, config) -> dict:
    """Accuracy and budget per eps for the divergence rule, printed per model and direction."""
    summaries = {key: cs.summarise(frame) for key, frame in swept.items()}
    with pl.Config(float_precision=4, tbl_rows=-1, tbl_width_chars=160):
        for (name, direction), s in summaries.items():
            print(f"{name} {direction}")
            print(s.filter(pl.col("rule") == "divergence").drop("rule").sort("eps", descending=True))
    added = sorted({e for f in swept.values() for e in f["eps"].unique()} - set(config.eps_grid), reverse=True)
    print(f"thresholds added by bisection: {added}")
    return summaries


def accuracy_figure(this, summaries: dict, reference: dict, config, profile: str) -> str:
    rl_names = this.pairs.rl_names
    fig, axes = plt.subplots(len(rl_names), 2, figsize=(14, 4.5 * len(rl_names)), sharey=True, squeeze=False)
    for row, name in enumerate(rl_names):
        for col, direction in enumerate(("forward", "reverse")):
            ax, s = axes[row, col], summaries[(name, direction)]
            for who, color, label in (("base", plotting.color("base"), "base alone"),
                                      ("rl", plotting.color(name), f"{this.labels[name]} alone")):
                acc = reference[who, name]
                ax.axhline(acc.avg, color=color, ls=":", lw=1.2, label=label)
                ax.axhspan(*acc.ci95, color=color, alpha=0.08)
            for rule, style in (("divergence", "-o"), ("random", "--s")):
                # in eps order (largest first): the realised share need not shrink monotonically with eps
                r = s.filter(pl.col("rule") == rule).filter(pl.col("pct_intervened") > 0).sort("eps", descending=True)
                ax.errorbar(r["pct_intervened"], r["accuracy"],
                            yerr=[r["accuracy"] - r["ci95_low"], r["ci95_high"] - r["accuracy"]], fmt=style, ms=4,
                            capsize=2, color="k" if rule == "divergence" else "0.55",
                            label="intervene where JS > eps" if rule == "divergence"
                            else "random positions, same budget")
                if rule == "divergence":  # each point's eps: the lines join budgets in eps order
                    for x, y, e in zip(r["pct_intervened"], r["accuracy"], r["eps"]):
                        ax.annotate(f"eps {e:g}", (x, y), xytext=(5, -11), textcoords="offset points", fontsize=7.5)
            ax.set(xscale="log", title=f"{this.labels[name]}: {direction} "
                   f"({'base -> RL' if direction == 'forward' else 'RL -> base'})",
                   xlabel="tokens taken from the intervention policy (% of response)",
                   ylabel=f"avg@{config.samples_per_problem}", ylim=(0, 1.02))
            ax.legend(fontsize=7.5, loc="center right" if direction == "forward" else "lower left")
    switch = "full-vocabulary JS" if config.js_top_p >= 1 else f"top-p ({config.js_top_p:g}) JS"
    fig.suptitle(f"Cross-sampling: accuracy against the share of intervened tokens (the switch: {switch} > eps)")
    fig.tight_layout()
    return plotting.save(fig, profile, "03_cross_sampling")


def budgets(swept: dict) -> tuple[pl.DataFrame, dict]:
    """The paper's table (``budget_table``), printed, and its numbers as findings."""
    table = cs.budget_table(swept)
    with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=200):
        print(table)
    values = {}
    for row in table.filter(pl.col("pct_intervened").is_not_null()).iter_rows(named=True):
        prefix = f"cross.{row['model']}.{row['direction']}"
        values.update({f"{prefix}.{k}": row[k] for k in (
            "eps", "pct_intervened", "pct_changed", "tokens_per_response", "changed_per_response", "start_accuracy",
            "end_accuracy", "random_control_accuracy") if row[k] is not None})
    return table, values


def recovered(this, swept: dict, config, benchmark: str, controls: bool, workers: int, values: dict) -> dict:
    """The recovered gap per budget, its sufficiency and necessity verdicts under the sparse bars, and the
    controls at each verdict's budget; printed, their numbers into ``values``."""
    seed = this.setup.seed
    bars = this.sparse_bars(swept)  # % of steps, per model and direction
    gaps = cs.recovered_gaps(swept, seed=seed)
    with pl.Config(**WIDE):
        print(gaps.drop("p_short", "p_reaches"))
    verdicts = [v for budget in cs.BUDGETS for v in cs.gap_verdicts(gaps, bars, budget)]
    at = cs.examined(gaps, bars)
    control_runs = this.control_sweeps(config, at, benchmark, workers) if controls else None
    control = cs.control_table(swept, at, control_runs, seed=seed)
    with pl.Config(**WIDE):
        print(control.drop("rule"))
    verdicts += cs.beats_random(control)
    for v in verdicts:
        print(v.line())
    values.update(cs.control_values(control))
    values.update({f"cross.{name}.{direction}.sparse_bar": bar for (name, direction), bar in bars.items()})
    return {"bars": bars, "gaps": gaps, "control": control, "verdicts": verdicts}


def recovered_figure(this, gap: dict, profile: str) -> str:
    rl_names, gaps, control, bars = this.pairs.rl_names, gap["gaps"], gap["control"], gap["bars"]
    fig, axes = plt.subplots(len(rl_names), 2, figsize=(14, 4.5 * len(rl_names)), sharey=True, squeeze=False)
    # each control where its budget was matched: random and entropy on steps, random where JS > 1e-3 on changed
    markers = {"random": ("s", "0.55", "random steps", "pct_intervened"),
               "random_divergent": ("D", "tab:purple", "random where JS > 1e-3 (same changed tokens)", "pct_changed"),
               "entropy": ("^", "tab:orange", "base's highest entropy", "pct_intervened")}
    for row, name in enumerate(rl_names):
        for col, direction in enumerate(("forward", "reverse")):
            ax, g = axes[row, col], gaps.filter((pl.col("model") == name) & (pl.col("direction") == direction))
            for budget, style, label in (("pct_intervened", "-o", "divergence rule, budget in steps"),
                                         ("pct_changed", ":o", "divergence rule, budget in changed tokens")):
                ax.errorbar(g[budget], g["recovered"], yerr=[g["recovered"] - g["low"], g["high"] - g["recovered"]],
                            fmt=style, ms=4, capsize=2, color="k", mfc="k" if budget == "pct_intervened" else "w",
                            label=label)
            c = control.filter((pl.col("model") == name) & (pl.col("direction") == direction)
                               & (pl.col("rule") != "divergence"))
            for r in c.iter_rows(named=True):
                marker, color, label, budget = markers[r["name"]]
                ax.errorbar([r[budget]], [r["recovered"]],
                            yerr=[[r["recovered"] - r["low"]], [r["high"] - r["recovered"]]],
                            fmt=marker, color=color, ms=6, capsize=2, label=label)
            ax.axhline(cs.GOAL_SHARE, color="tab:green", ls="--", lw=1, label="R = 0.9")
            ax.axhline(0, color="0.7", lw=0.8)
            ax.axvspan(bars[name, direction], 100, color="0.85", alpha=0.5, label="beyond the sparse bar")
            ax.set(xscale="log", xlim=(0.1, 100), title=f"{this.labels[name]}: {direction}", ylabel="recovered gap R",
                   xlabel="budget (% of the response's steps or of its tokens changed)")
            ax.legend(fontsize=7.5, loc="lower right")
    fig.suptitle("Cross-sampling: the share of the accuracy gap each budget recovers (95% intervals)")
    fig.tight_layout()
    return plotting.save(fig, profile, "03_recovered_gap")


def capped(this, swept: dict, table: pl.DataFrame, config, caps, benchmark: str, workers: int, values: dict):
    """The divergence rule with each response's first m handovers only, at each row's sufficient eps (or the
    grid's least): (the table, printed, and those eps); the smallest sufficient cap into ``values``."""
    at = cs.cap_thresholds(table, config.eps_grid)
    caps_table = cs.cap_table(this.capped_sweeps(config, at, caps, benchmark, workers), swept)
    with pl.Config(**WIDE):
        print(caps_table)
    for (name, direction), g in caps_table.group_by("model", "direction", maintain_order=True):
        enough = g.filter(pl.col("reaches_goal"))
        print(f"{name} {direction}: " + (f"the first {enough['cap'][0]} handovers per response reach the goal"
                                         if len(enough) else f"no cap up to {max(caps)} reaches the goal"))
        if len(enough):
            values[f"cross.{name}.{direction}.smallest_sufficient_cap"] = float(enough["cap"][0])
    return caps_table, at


def capped_figure(this, caps_table: pl.DataFrame, at: dict, reference: dict, caps, config, profile: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    for ax, direction in zip(axes, ("forward", "reverse")):
        for name in this.pairs.rl_names:
            g = caps_table.filter((pl.col("model") == name) & (pl.col("direction") == direction))
            ax.errorbar(g["cap"], g["accuracy"], yerr=[g["accuracy"] - g["ci95_low"], g["ci95_high"] - g["accuracy"]],
                        fmt="-o", ms=4, capsize=2, color=plotting.color(name),
                        label=f"{this.labels[name]} (eps {at[name, direction]:g})")
            goal = reference["rl" if direction == "forward" else "base", name]
            ax.axhline(goal.avg, color=plotting.color(name), ls=":", lw=1.2)
        ax.set(xscale="log", xticks=caps, xticklabels=[str(c) for c in caps], ylim=(0, 1.02),
               title=f"{direction}: goal (dotted) = the {'RL model' if direction == 'forward' else 'base'} alone",
               xlabel="at most this many handovers per response", ylabel=f"avg@{config.samples_per_problem}")
        ax.legend(fontsize=8)
    fig.suptitle("Cross-sampling with each response's first m high-divergence handovers only")
    fig.tight_layout()
    return plotting.save(fig, profile, "03_cross_sampling_caps")


def mix(this, swept: dict) -> list:
    """The mix against the RL model alone (printed with its verdicts), then the paper's forward rows."""
    table, verdicts = cs.mix_against_rl(swept, seed=this.setup.seed)
    with pl.Config(float_precision=4, tbl_rows=-1, tbl_width_chars=160):
        print(table)
    for v in verdicts:
        print(v.line())
    rows = [{"paper": f"{model} forward, {bench}",
             **{k: claims.PAPER[f"{key}.{k}"].value for k in ("pct_intervened", "tokens_per_response",
                                                             "start_accuracy", "end_accuracy")}}
            for model in ("simplerl", "dapo")
            for bench, key in (("AIME24", f"cross.{model}.forward"), ("AIME25", f"cross.{model}.forward.aime25"))]
    with pl.Config(float_precision=4, tbl_width_chars=160):
        print(pl.DataFrame(rows))
    return verdicts


def robustness(this, bars: dict, benchmark: str, top_p: float, eps_grid, workers: int, values: dict) -> list:
    """The paper's setting (sample with top-p ``top_p`` and switch on top-p JS): its table, recovered gaps,
    verdicts and controls (tagged with the top-p), printed, numbers into ``values``; nothing when ``top_p`` is 1."""
    if top_p >= 1:
        return []
    seed, tag = this.setup.seed, f"top_p_{top_p:g}"
    robust = this.sweeps(this.sweep_config(eps_grid, js_top_p=top_p, top_p=top_p), benchmark, workers=workers)
    with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=200):
        print(cs.budget_table(robust))
    for (name, direction), s in ((k, cs.summarise(f)) for k, f in robust.items()):
        div = s.filter((pl.col("rule") == "divergence") & (pl.col("pct_intervened") > 0))
        for r in div.iter_rows(named=True):
            print(f"top-p {top_p:g}, {name} {direction}, eps {r['eps']:g}: {r['pct_intervened']:.2f}% "
                  f"intervened ({r['pct_changed']:.2f}% changed), accuracy {r['accuracy']:.3f}")
    gaps = cs.recovered_gaps(robust, seed=seed, tag=tag)
    verdicts = [v for budget in cs.BUDGETS for v in cs.gap_verdicts(gaps, bars, budget, tag=tag)]
    control = cs.control_table(robust, cs.examined(gaps, bars), seed=seed, tag=tag)
    verdicts += cs.beats_random(control, tag=tag)
    values.update(cs.control_values(control, tag=tag))
    for v in verdicts:
        print(f"top-p {top_p:g}: {v.line()}")
    return verdicts


def examples(this, swept: dict, table: pl.DataFrame, config, benchmark: str, n: int) -> str:
    """Up to ``n`` responses the RL model got right alone that the base's tokens derailed in the reverse
    direction (DAPO's where the profile has it, at its sufficient eps or the grid's least), and as many that
    survived, intervened tokens marked: printed, and as HTML for a notebook."""
    problems = this.benchmark_problems(benchmark)
    name = "dapo" if "dapo" in this.pairs.rl_names else this.pairs.rl_names[0]
    row = table.filter((pl.col("model") == name) & (pl.col("direction") == "reverse"))
    eps = row["eps"][0] if row["eps"][0] is not None else config.eps_grid[-1]
    crossed = swept[(name, "reverse")].filter((pl.col("eps") == eps) & (pl.col("rule") == "divergence"))
    alone = swept[(name, "reverse")].filter(pl.col("eps") == np.inf).select("response",
                                                                             pl.col("correct").alias("alone"))
    crossed = crossed.join(alone, on="response")
    # only responses the RL model got right on its own (eps = inf, same seed): the base's tokens derailed those
    shown = {"derailed": crossed.filter(pl.col("alone") & ~pl.col("correct") & (pl.col("count") > 0)).head(n),
             "survived": crossed.filter(pl.col("alone") & pl.col("correct") & (pl.col("count") > 0)).head(n)}

    def render(frame: pl.DataFrame) -> str:
        lines = []
        for r in frame.iter_rows(named=True):
            spans = []
            for token, flag in zip(r["response_ids"], r["intervened"]):
                text = html.escape(problems.decode([token]))
                spans.append(f"<b style='background:#fdd'>{text}</b>" if flag else text)
            mark = "✓" if r["correct"] else "✗"
            lines.append(f"<div style='font-family:monospace'>{mark} {html.escape(problems.texts[r['problem']])}"
                         f"{''.join(spans)}</div>")
        return "\n".join(lines)

    for label, frame in shown.items():
        for r in frame.iter_rows(named=True):
            text = "".join(f"[{problems.decode([t])}]" if f else problems.decode([t])
                           for t, f in zip(r["response_ids"], r["intervened"]))
            print(f"{label:8s} {problems.texts[r['problem']]}{text}")
    return (f"<p>eps = {eps}: derailed</p>" + render(shown["derailed"]) + "<p>survived</p>"
            + render(shown["survived"]))
