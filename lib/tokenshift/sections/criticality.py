"""Notebook 06, sparse but critical against ground truth: where the JS mass sits by the organism's own labels,
what the top-p metric cannot see, whether divergence predicts a position's measured consequence (coupled
counterfactual rollouts), and where cross-sampling hands over."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from ..analyses import criticality as cr
from ..organism.problems import OrganismProblems
from ..suite import plotting

METRICS = ("js", "js_top_p")
GROUPS = ["decision", "choice", "deterministic", "unparsed"]


def labelled(this) -> dict[str, pl.DataFrame]:
    """Each RL model's shift table with the organism's label at every position; refused off the organism."""
    if not isinstance(this.problems, OrganismProblems):
        raise ValueError("this notebook needs the organism: its labels come from the organism's own task")
    print(f"decided in advance: critical at |c| >= {cr.CRITICAL}; the verdict needs rho above {cr.MIN_RHO}")
    return {name: cr.label_table(t, this.problems_for(name)) for name, t in this.tables(this.pairs.rl_names).items()}


def mass(this, tables: dict[str, pl.DataFrame]) -> dict:
    """JS mass by label (both metrics), the top-p metric's blind spots, and conditional sparsity; printed."""
    seed, out = this.setup.seed, {"mass": {}}
    for name, t in tables.items():
        for js in METRICS:
            out["mass"][name, js] = cr.mass_by_label(t, js, seed=seed)
            with pl.Config(float_precision=3):
                print(f"{this.labels[name]}, {'full' if js == 'js' else 'top-p'} JS:", out["mass"][name, js], sep="\n")
        print("unparsed share of positions:", f"{(t['label'] == 'unparsed').mean():.3f}")
    out["blind"] = {name: cr.metric_blind_spots(t, this.setup.high_js) for name, t in tables.items()}
    for name, b in out["blind"].items():
        with pl.Config(float_precision=3, tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200):
            print(this.labels[name], b, sep="\n")
    out["sparsity"] = {(name, js): cr.conditional_sparsity(t, js) for name, t in tables.items() for js in METRICS}
    for (name, js), share in out["sparsity"].items():
        print(f"{this.labels[name]}: of positions where the base's entropy > 0.3 nats, {share:.1%} have "
              f"{'full' if js == 'js' else 'top-p'} JS < 0.01")
    return out


def rollouts(this, tables: dict[str, pl.DataFrame], positions: int, rollouts_: int, min_js: float) -> dict:
    """Coupled counterfactual rollouts at positions where the models differ: per RL model its measured positions,
    rank statistics and groups (printed), and the criticality verdict."""
    config = cr.CriticalityConfig(positions=positions, rollouts=rollouts_, min_js=min_js,
                                  temperature=this.setup.temperature, top_p=this.setup.top_p, seed=this.setup.seed)
    measured = {name: cr.measured(this.pairs.base, this.pairs.tuned[name], this.problems_for(name), tables[name],
                                  config, this.max_new_tokens, show_progress=this.show_progress) for name in tables}
    stats, verdicts = {}, []
    for name, m in measured.items():
        print(f"{this.labels[name]}: {len(m)} positions rolled out")
        stats[name] = cr.rank_statistics(m, seed=this.setup.seed) if len(m) else {}
        for key, (value, (low, high)) in stats[name].items():
            print(f"  {key}: {value:.3f} [{low:.3f}, {high:.3f}]")
        by = m.group_by("group").agg(pl.len().alias("positions"), pl.col("c").mean().alias("mean_c"),
                                     pl.col("critical").mean().alias("share_critical")).sort("group")
        with pl.Config(float_precision=3):
            print(by)
        nothing = (float("nan"), (float("nan"), float("nan")))
        verdicts.append(cr.verdict(name, stats[name].get("spearman_js_size", nothing), len(m)))
    for v in verdicts:
        print(v.line())
    return {"measured": measured, "stats": stats, "verdicts": verdicts}


def handovers(this, eps_grid, js_top_p: float, eps: float) -> dict[str, pl.DataFrame]:
    """Notebook 03's forward handovers at ``eps``, split by label; printed."""
    config = this.sweep_config(eps_grid, js_top_p)
    out = {name: cr.handovers_by_label(this.sweep(name, "forward", config), this.problems_for(name), eps)
           for name in this.pairs.rl_names}
    for name, h in out.items():
        with pl.Config(float_precision=3):
            print(this.labels[name], h, sep="\n")
    return out


def figure(this, mass_: dict, rolled: dict, handed: dict[str, pl.DataFrame], eps: float, profile: str) -> str:
    names = this.pairs.rl_names
    fig, axes = plt.subplots(1, 3, figsize=(18, 4.8))
    width = 0.8 / (2 * len(names))
    x = np.arange(len(GROUPS))
    for i, name in enumerate(names):
        shares = {r["group"]: r for r in mass_["mass"][name, "js"].to_dicts()}
        axes[0].bar(x - 0.4 + width * (2 * i + 0.5), [shares.get(g, {}).get("positions", 0) for g in GROUPS], width,
                    color=plotting.color(name), alpha=0.35, label=f"{this.labels[name]}: share of positions")
        axes[0].bar(x - 0.4 + width * (2 * i + 1.5), [shares.get(g, {}).get("js_mass", 0) for g in GROUPS], width,
                    color=plotting.color(name), label=f"{this.labels[name]}: share of full-JS mass")
        h = {r["group"]: r for r in handed[name].to_dicts()}
        axes[2].bar(x - 0.4 + width * (2 * i + 0.5), [h.get(g, {}).get("position_share", 0) for g in GROUPS], width,
                    color=plotting.color(name), alpha=0.35, label=f"{this.labels[name]}: share of positions")
        axes[2].bar(x - 0.4 + width * (2 * i + 1.5), [h.get(g, {}).get("handover_share", 0) for g in GROUPS], width,
                    color=plotting.color(name), label=f"{this.labels[name]}: share of handovers")
        m = rolled["measured"][name]
        if len(m):
            markers = {"decision": "o", "choice": "s", "deterministic": "^", "unparsed": "x"}
            for g, marker in markers.items():
                part = m.filter(pl.col("group") == g)
                axes[1].scatter(part["js"], part["size"], marker=marker, s=22, color=plotting.color(name), alpha=0.7,
                                label=f"{this.labels[name]}, {g}" if len(part) else None)
    for ax, title in ((axes[0], "Where the full-JS mass sits"),
                      (axes[2], f"Where cross-sampling hands over (eps = {eps:g})")):
        ax.set(xticks=np.arange(len(GROUPS)), xticklabels=GROUPS, title=title, ylabel="share", ylim=(0, 1.05))
        ax.legend(fontsize=7)
    axes[1].axhline(cr.CRITICAL, color="k", ls=":", lw=1, label=f"critical: |c| >= {cr.CRITICAL} (fixed in advance)")
    axes[1].set(xscale="log", title="Divergence against measured consequence", xlabel="full JS at the position (nats)",
                ylabel="noise-corrected size of c (signed sqrt of c_A c_B)")
    axes[1].legend(fontsize=6.5, ncol=2)
    fig.suptitle("Are the divergent tokens the critical ones? Labels and rollouts on the organism")
    fig.tight_layout()
    return plotting.save(fig, profile, "06_criticality")


def values(this, mass_: dict, rolled: dict, handed: dict[str, pl.DataFrame]) -> dict:
    out = {}
    for name in this.pairs.rl_names:
        for js in METRICS:
            metric = "full" if js == "js" else "top_p"
            for r in mass_["mass"][name, js].to_dicts():
                out[f"criticality.{name}.{metric}_js_mass.{r['group']}"] = r["js_mass"]
                out[f"criticality.{name}.positions.{r['group']}"] = r["positions"]
            if np.isfinite(mass_["sparsity"][name, js]):
                out[f"criticality.{name}.{metric}_conditional_sparsity"] = mass_["sparsity"][name, js]
        for r in mass_["blind"][name].to_dicts():
            if r["top_p_high"]:
                out[f"criticality.{name}.knife_edge_share.{r['label'].replace(':', '.')}"] = r["knife_edge_share"]
            if r["full_high"]:
                out[f"criticality.{name}.blind_share.{r['label'].replace(':', '.')}"] = r["blind_share"]
        for r in handed[name].to_dicts():
            out[f"criticality.{name}.handover_share.{r['group']}"] = r["handover_share"]
        for key, (value, _) in rolled["stats"].get(name, {}).items():
            if key != "spearman_js_size" and np.isfinite(value):  # the verdict records rho with its interval
                out[f"criticality.{name}.{key}"] = value
    return out
