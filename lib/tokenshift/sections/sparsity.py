"""Notebook 01: how much of a response each tuned model changes (sparsity), how the shift builds up over RL
training (evolution), and the SFT controls: did they learn, and are they denser at a matched distance."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from .. import organism
from ..analyses import claims, controls as controls_mod, shift_stats
from ..organism.problems import OrganismProblems
from ..suite import plotting

METRICS = {"js_top_p": "top-p JS", "js": "full JS"}


def tables(this) -> dict[str, pl.DataFrame]:
    """Each tuned model's shift table, after how each pair is asked and what each table holds."""
    for name in this.pairs.tuned:  # the prompt, stop set and grading each pair is run with
        print(f"{name}: {this.problems_for(name).how_asked()}")
    out = this.tables()
    for name, t in out.items():
        print(f"{name:12s} {t['response'].n_unique()} responses, {len(t)} positions, accuracy of these responses "
              f"{t.group_by('response').agg(pl.col('correct').first())['correct'].mean():.3f}")
    return out


def summary(this, tables: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """``shift_stats.sparsity_summary`` per model and metric (top-p JS, then full JS), printed."""
    rows = [{"model": name, "metric": METRICS[js], **shift_stats.sparsity_summary(t, js=js, high=this.setup.high_js)}
            for name, t in tables.items() for js in METRICS]
    out = pl.DataFrame(rows).drop("positions")
    with pl.Config(float_precision=4, tbl_cols=-1, tbl_width_chars=200):
        print(out)
    return out


def histograms(this, tables: dict[str, pl.DataFrame], profile: str) -> str:
    high_js = this.setup.high_js
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
    floor = 1e-8  # the log axes start here; exact zeros (identical distributions) are counted in the legend
    edges = np.logspace(np.log10(floor), np.log10(np.log(2)), 50)
    for ax, js, title in [(axes[0], "js_top_p", f"top-p ({this.setup.js_top_p}) JS"),
                          (axes[1], "js", "full-vocabulary JS")]:
        for name, t in tables.items():
            x = t[js].to_numpy()
            nonzero = np.clip(x[x > 0], floor, None)
            ax.hist(nonzero, bins=edges, histtype="step", lw=1.8, color=plotting.color(name),
                    weights=np.full(len(nonzero), 1 / len(x)),
                    label=f"{this.labels[name]}: {np.mean(x == 0):.0%} exactly 0 (not drawn)")
        ax.axvline(high_js, color="k", ls=":", lw=1)
        ax.set(xscale="log", title=f"Per-token {title}", xlabel="JS divergence (nats)",
               ylabel="share of all positions")
        ax.legend(fontsize=7.5, loc="upper center")
    qs = np.linspace(0, 100, 201)
    for name, t in tables.items():
        axes[2].plot(qs, np.maximum(np.percentile(t["js_top_p"].to_numpy(), qs), floor),  # zeros drawn at the floor
                     color=plotting.color(name), label=this.labels[name])
    axes[2].axhline(high_js, color="k", ls=":", lw=1)
    axes[2].set(yscale="log", title="Percentile curve (top-p JS)", xlabel="percentile of positions",
                ylabel=f"JS divergence (nats; 0 drawn at {floor:g})")
    axes[2].legend(fontsize=7.5)
    fig.suptitle("Sparsity of the token-level shift: each tuned model vs the base, on its own responses")
    fig.tight_layout()
    return plotting.save(fig, profile, "01_sparsity_histograms")


def _by(summary: pl.DataFrame, name: str, metric: str) -> dict:
    return summary.filter((pl.col("model") == name) & (pl.col("metric") == metric)).to_dicts()[0]


def verdicts(this, tables: dict[str, pl.DataFrame], summary: pl.DataFrame) -> list:
    """The sparsity claims judged on full JS first, then on top-p JS, printed with each model's headline shares."""
    high_js = this.setup.high_js
    out = claims.on_full_js(shift_stats.sparsity_verdicts(tables, this.pairs.rl_names, js="js", seed=this.setup.seed))
    out += shift_stats.sparsity_verdicts(tables, this.pairs.rl_names, seed=this.setup.seed)
    for v in out:
        print(v.line())
    for name in tables:
        top = _by(summary, name, "top-p JS")
        print(f"{name:14s} near zero (<1e-2): {top['frac_js_lt_0.01']:.1%}   above {high_js}: "
              f"{top[f'frac_js_gt_{high_js:g}']:.1%}   q99 {top['q99']:.3f}")
    return out


def evolution(this, tables: dict[str, pl.DataFrame]) -> dict:
    """Per RL run with checkpoints: its checkpoints' tables and the evolution of their percentiles and high-JS set
    (top-p JS, printed; and full JS)."""
    high_js = this.setup.high_js
    evolved = [name for name in this.pairs.rl_names if this.pairs.checkpoints(name)]
    if not evolved:
        print("The profile names no intermediate checkpoints (pairs: checkpoints), so there is no evolution to show.")
    checkpoints = {name: this.checkpoint_tables(name) for name in evolved}
    top_p = {name: shift_stats.evolution(checkpoints[name], tables[name], high=high_js) for name in evolved}
    full = {name: shift_stats.evolution(checkpoints[name], tables[name], js="js", high=high_js) for name in evolved}
    for name, e in top_p.items():
        with pl.Config(float_precision=4, tbl_rows=-1):
            print(this.labels[name], e, sep="\n")
    return {"checkpoints": checkpoints, "top_p": top_p, "full": full}


def evolution_figure(this, evolution: dict, profile: str) -> list[str]:
    evolved = list(evolution["top_p"])
    if not evolved:
        return []
    styles = {"q50": ":", "q90": "-.", "q95": "--", "q99": "-"}
    fig, axes = plt.subplots(1, len(evolved) + 1, figsize=(5.7 * (len(evolved) + 1), 4.2))
    for ax, name in zip(axes[:-1], evolved):
        e = evolution["top_p"][name]
        for q, ls in styles.items():
            ax.plot(e["step"], e[q], ls, marker="o", ms=3, color=plotting.color(name), label=f"{q[1:]}th percentile")
        ax.set(title=f"{this.labels[name]}: JS percentiles", xlabel="RL step (0 = base)", ylabel="top-p JS (nats)")
        ax.legend(fontsize=8)
    for name, e in evolution["top_p"].items():
        axes[-1].plot(e["step"], e["jaccard_with_final"], marker="o", ms=3, color=plotting.color(name),
                      label=this.labels[name])
    axes[-1].set(title=f"High-JS set (JS > {this.setup.high_js}) vs the final model's", xlabel="RL step",
                 ylabel="Jaccard overlap", ylim=(0, 1.05))
    axes[-1].legend(fontsize=8)
    fig.suptitle("How the shift builds up during RL")
    fig.tight_layout()
    return [plotting.save(fig, profile, "01_evolution")]


def evolution_verdicts(this, evolution: dict) -> list:
    out = []
    for name, e in evolution["top_p"].items():
        judged = claims.on_full_js(shift_stats.evolution_verdicts(evolution["full"][name], name))
        judged += shift_stats.evolution_verdicts(e, name)
        out += judged
        jaccard = " ".join(f"{v:.2f}" for v in e["jaccard_with_final"])
        print(f"{this.labels[name]}: Jaccard with the final set {jaccard}")
        for v in judged:
            print("  " + v.line())
    return out


def sft_controls(this, tables: dict[str, pl.DataFrame], evolution: dict) -> dict:
    """The manipulation check and distance from the base of every model (and of the SFT controls' dose points),
    each SFT point placed against the RL runs' checkpoints at the same mean KL; printed."""
    sft_names = [n for n in this.pairs.tuned if n not in this.pairs.rl_names]
    organism_run = isinstance(this.problems, OrganismProblems)
    checks = {name: {**controls_mod.manipulation_check(t, this.problems_for(name)),
                     **controls_mod.distance_and_density(t)} for name, t in tables.items()}
    if organism_run:  # the base's own samples: cheap here, a whole sampling run at scale
        checks["base"] = controls_mod.manipulation_check(this.own_table("base"), this.problems)
    for name in sft_names:
        if organism_run:  # the organism's own training log says where SFT stopped
            log = organism.run_log(this.pairs.tuned[name])
            if "kept_step" in log[-1]:
                print(f"{this.labels[name]}: stopped at step {log[-1]['step']}, kept step {log[-1]['kept_step']} "
                      f"(held-out NLL {log[-1]['kept_held_out_nll']:.3f} nats/token)")
        # its dose points, scored (like the RL checkpoints) on the final model's responses
        for step, t in this.checkpoint_tables(name)[1:]:
            checks[f"{name}@{step}"] = controls_mod.distance_and_density(t)
    with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=200):
        print(pl.from_dicts([{"model": n, **c} for n, c in checks.items()], infer_schema_length=None))
    curves = {name: pl.DataFrame([{"step": step, **controls_mod.distance_and_density(t)} for step, t in points])
              for name, points in evolution["checkpoints"].items()}
    matched = {}
    for point in [n for n in checks if n.split("@")[0] in sft_names]:
        for rl in curves:
            for column in ("full_js_near_zero", "top_p_js_near_zero"):
                matched[point, rl, column] = controls_mod.at_matched_kl(curves[rl], checks[point], column)
            print(f"{point} (mean KL {checks[point]['mean_kl']:.4f}): full JS near zero "
                  f"{checks[point]['full_js_near_zero']:.3f}; {rl} at that KL: "
                  f"{matched[point, rl, 'full_js_near_zero']:.3f}" + (
                      " (outside the KL its checkpoints span)"
                      if np.isnan(matched[point, rl, "full_js_near_zero"]) else ""))
    rl_checks = [n for n in this.pairs.rl_names if n in checks]
    if "sft_rejection" in checks and this.pairs.rl_names:
        rej, rl = checks["sft_rejection"], [checks[n] for n in rl_checks]
        side = "sparser than every RL model" if all(rej["full_js_near_zero"] > r["full_js_near_zero"] for r in rl) \
            else "denser than every RL model" if all(rej["full_js_near_zero"] < r["full_js_near_zero"] for r in rl) \
            else "neither sparser nor denser than every RL model"
        print(f"Rejection-sampling SFT (on-policy data without RL's objective) is {side}: "
              f"{rej['full_js_near_zero']:.3f} of its positions near zero (full JS) against "
              + ", ".join(f"{n} {checks[n]['full_js_near_zero']:.3f}" for n in rl_checks)
              + f", at pass@1 {rej['pass@1']:.3f} against "
              + ", ".join(f"{n} {checks[n]['pass@1']:.3f}" for n in rl_checks) + ".")
    return {"sft_names": sft_names, "checks": checks, "curves": curves, "matched": matched}


def sft_controls_figure(this, controls: dict, profile: str) -> list[str]:
    if not controls["curves"]:
        return []
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for name, curve in controls["curves"].items():
        ax.plot(curve["mean_kl"], curve["full_js_near_zero"], marker="o", ms=3, color=plotting.color(name),
                label=f"{this.labels[name]}: checkpoints")
    for point, c in controls["checks"].items():
        name = point.split("@")[0]
        if name in controls["sft_names"]:
            ax.scatter([c["mean_kl"]], [c["full_js_near_zero"]], s=60, marker="D" if "@" in point else "*",
                       color=plotting.color(name), zorder=3,
                       label=f"{this.labels[name]}" + (f", step {point.split('@')[1]}" if "@" in point else ", final"))
    ax.set_xscale("symlog", linthresh=1e-3)  # linear below 0.001 nats, where the base sits at 0
    ax.set(xlabel="mean KL(tuned || base) per position (nats; symmetric log scale)",
           ylabel="share of positions with full JS < 0.01", title="Density at a matched distance from the base")
    ax.legend(fontsize=7.5)
    return [plotting.save(fig, profile, "01_controls")]


def values(summary: pl.DataFrame, evolution: dict, controls: dict) -> dict:
    """The notebook's findings by name."""
    out = {}
    for name in dict.fromkeys(summary["model"]):  # the summary's top-p row, and the full-JS near-zero share beside it
        out.update({f"sparsity.{name}.{key}": v for key, v in _by(summary, name, "top-p JS").items()
                    if key not in ("model", "metric")})
        out[f"sparsity.{name}.full_js.frac_js_lt_0.01"] = _by(summary, name, "full JS")["frac_js_lt_0.01"]
    for name, e in evolution["top_p"].items():
        out[f"evolution.{name}.jaccard_first_checkpoint"] = e["jaccard_with_final"][1]
        out[f"evolution.{name}.q99_final"] = e["q99"][-1]
    for point, c in controls["checks"].items():
        for key, v in c.items():
            out[f"controls.{point.replace('@', '.step_')}.{key.replace('@', '_at_')}"] = v
    for (point, rl, column), v in controls["matched"].items():
        if np.isfinite(v):
            out[f"controls.{point.replace('@', '.step_')}.{rl}_{column}_at_matched_kl"] = v
    return out
