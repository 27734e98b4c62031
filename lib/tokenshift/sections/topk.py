"""Notebook 04: where RL moves probability mass at high-divergence positions (top-k overlap, the base's rank and
probability of the RL model's top-1 token), and the re-ranking claims."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import polars as pl

from ..analyses import claims, shift_stats
from ..suite import plotting


def summary(this, tables: dict[str, pl.DataFrame]) -> dict[str, dict]:
    """``shift_stats.reallocation_summary`` per RL model, printed."""
    out = {name: shift_stats.reallocation_summary(t, high=this.setup.high_js) for name, t in tables.items()}
    with pl.Config(float_precision=3, tbl_cols=-1, tbl_width_chars=250):
        print(pl.DataFrame([{"model": n, **s} for n, s in out.items()]))
    return out


def figure(this, tables: dict[str, pl.DataFrame], profile: str) -> str:
    high_js = this.setup.high_js
    high = {name: t.filter(pl.col("js_top_p") > high_js) for name, t in tables.items()}
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
    width = 0.8 / len(high)
    for i, (name, t) in enumerate(high.items()):
        if len(t) == 0:
            continue
        kw = dict(color=plotting.color(name), label=f"{this.labels[name]} ({len(t)} positions)")
        ks = [int(c.rsplit("_", 1)[1]) for c in t.columns if c.startswith("topk_overlap_")]
        axes[0].plot(ks, [t[f"topk_overlap_{k}"].mean() for k in ks], marker="o", ms=4, **kw)
        ranks = np.minimum(t["tuned_top1_base_rank"].to_numpy(), 10)
        axes[1].bar(np.arange(11) - 0.4 + width * (i + 0.5), np.bincount(ranks, minlength=11) / max(len(ranks), 1),
                    width=width, color=kw["color"], label=kw["label"])
        probs = np.sort(t["tuned_top1_base_prob"].to_numpy())
        axes[2].step(probs, np.arange(1, len(probs) + 1) / max(len(probs), 1), where="post", **kw)
    axes[0].axhline(0.8, color="k", ls=":", lw=1, label="paper: > 0.8 for k >= 2 (SimpleRL)")
    axes[0].set(title=f"Top-k overlap at JS > {high_js}", xlabel="k", ylabel="|top-k(base) ∩ top-k(RL)| / k",
                ylim=(0, 1.05))
    axes[1].set(title="Base rank of the RL top-1 token", xlabel="rank under the base (0 = base top-1; 10 = 10 or more)",
                ylabel="share of positions", xticks=range(11))
    axes[2].axvline(0.01, color="k", ls=":", lw=1)
    axes[2].set(xscale="log", title="CDF of the base's probability of the RL top-1",
                xlabel="base probability of RL's top-1 token", ylabel="cumulative share")
    for ax in axes:
        ax.legend(fontsize=7.5)
    fig.suptitle("Where RL moves probability mass at high-divergence positions")
    fig.tight_layout()
    return plotting.save(fig, profile, "04_topk_overlap")


def verdicts(this, tables: dict[str, pl.DataFrame], summary: dict[str, dict]) -> list:
    """The re-ranking claims, full JS first, printed."""
    high_js, seed = this.setup.high_js, this.setup.seed
    out = claims.on_full_js(shift_stats.reallocation_verdicts(tables, js="js", high=high_js, seed=seed))
    out += shift_stats.reallocation_verdicts(tables, high=high_js, seed=seed)
    for name, s in summary.items():
        if s["positions"] == 0:
            print(f"{name}: no position above JS {high_js}; nothing to judge")
    for v in out:
        print(v.line())
    return out


def values(summary: dict[str, dict]) -> dict:
    return {f"topk.{name}.{key}": v for name, s in summary.items() for key, v in s.items()}
