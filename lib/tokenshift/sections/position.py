"""Notebook 02: where the shifts sit (position in the response), how uncertain the base is there (entropy by JS
bin, entropy as a locator), which tokens carry them (identity against context, categories), and the token
viewer."""

from __future__ import annotations

import html

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import seaborn as sns

from ..analyses import claims, shift_stats, viewer
from ..suite import findings, plotting

JS_BINS = [0, 1e-3, 1e-2, 0.1, np.log(2) + 1e-9]
BIN_LABELS = ["<1e-3", "1e-3–1e-2", "1e-2–0.1", ">0.1"]


def profiles(this, tables: dict[str, pl.DataFrame], bins: int) -> dict[str, pl.DataFrame]:
    """Each model's position profile (``shift_stats.position_profile``), printed."""
    out = {name: shift_stats.position_profile(t, bins=bins, high=this.setup.high_js) for name, t in tables.items()}
    with pl.Config(float_precision=4, tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200):
        for name, prof in out.items():
            print(name)
            print(prof.select("bin", "mean_js", "ci95_low", "ci95_high", "share_high", "positions"))
    return out


def profiles_figure(this, by_model: dict[str, pl.DataFrame], profile: str) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.2))
    for name, prof in by_model.items():
        kw = dict(color=plotting.color(name), label=this.labels[name])
        ls = "-" if name in this.pairs.rl_names else "--"  # the SFT controls dashed
        axes[0].plot(prof["bin_center"], prof["mean_js"], ls, marker="o", ms=4, **kw)
        axes[0].fill_between(prof["bin_center"], prof["ci95_low"], prof["ci95_high"], color=kw["color"], alpha=0.15)
        axes[1].plot(prof["bin_center"], prof["share_high"], ls, marker="o", ms=4, **kw)
    axes[0].set(title="Mean top-p JS by position (95% CI over responses)", xlabel="normalised position in response",
                ylabel="mean JS (nats)")
    axes[1].set(title=f"Share of high-divergence positions (JS > {this.setup.high_js})",
                xlabel="normalised position in response", ylabel="share of positions")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return plotting.save(fig, profile, "02_position")


def verdicts(this, tables: dict[str, pl.DataFrame], by_model: dict[str, pl.DataFrame], bins: int,
             values: dict) -> list:
    """The edges-versus-middle numbers of each RL model (into ``values``) and the position claims, full JS first."""
    for name in this.pairs.rl_names:
        first, middle, last = shift_stats.edges_vs_middle(by_model[name]["mean_js"].to_numpy())
        values.update({f"position.{name}.mean_js_first_bin": first, f"position.{name}.mean_js_middle": middle,
                       f"position.{name}.mean_js_last_bin": last})
        print(f"{this.labels[name]}: first bin {first:.4f}, middle {middle:.4f}, last bin {last:.4f}")
    rl_names, seed = this.pairs.rl_names, this.setup.seed
    out = claims.on_full_js(shift_stats.position_verdicts(tables, rl_names, js="js", bins=bins, seed=seed))
    out += shift_stats.position_verdicts(tables, rl_names, bins=bins, seed=seed)
    for v in out:
        print(v.line())
    return out


def entropy_by_js(this, tables: dict[str, pl.DataFrame], profile: str, values: dict) -> str:
    """Both models' entropy in each top-p JS bin: a box plot per RL model, and the table (printed) whose
    low-entropy shares at the lowest and highest bins go into ``values``."""
    rl_names = this.pairs.rl_names
    long = []
    for name in rl_names:
        t = tables[name].with_columns(js_bin=pl.col("js_top_p").cut(JS_BINS[1:-1], labels=BIN_LABELS,
                                                                    left_closed=True))
        for who in ("base", "tuned"):
            long.append(t.select("js_bin", pl.col(f"entropy_{who}").alias("entropy"))
                        .with_columns(model=pl.lit(name), distribution=pl.lit("base" if who == "base" else "RL")))
    long = pl.concat(long)
    fig, axes = plt.subplots(1, len(rl_names), figsize=(7 * len(rl_names), 4.2), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], rl_names):
        sub = long.filter(pl.col("model") == name).to_pandas()
        sns.boxplot(data=sub, x="js_bin", y="entropy", hue="distribution", order=BIN_LABELS, ax=ax,
                    palette={"base": plotting.color("base"), "RL": plotting.color(name)}, fliersize=1.5)
        ax.set(title=f"{this.labels[name]}: entropy per JS bin", xlabel="top-p JS bin", ylabel="entropy (nats)")
    fig.tight_layout()
    file = plotting.save(fig, profile, "02_entropy_by_js")
    table = (long.group_by("model", "js_bin", "distribution")
             .agg(pl.len().alias("positions"), pl.col("entropy").median().alias("median"),
                  pl.col("entropy").quantile(0.9).alias("q90"),
                  (pl.col("entropy") < 0.1).mean().alias("share_lt_0.1"))
             .sort("model", "js_bin", "distribution"))
    with pl.Config(float_precision=3, tbl_rows=-1, tbl_width_chars=200):
        print(table)
    for name in rl_names:
        e = table.filter((pl.col("model") == name) & (pl.col("distribution") == "base"))
        low, high = (e.filter(pl.col("js_bin") == b) for b in ("<1e-3", ">0.1"))
        if len(low) and len(high):
            values[f"entropy.{name}.low_js_share_low_entropy"] = low["share_lt_0.1"][0]
            values[f"entropy.{name}.high_js_share_low_entropy"] = high["share_lt_0.1"][0]
    return file


def entropy_verdicts(this, tables: dict[str, pl.DataFrame]) -> list:
    rl_names, high_js, seed = this.pairs.rl_names, this.setup.high_js, this.setup.seed
    out = claims.on_full_js(shift_stats.entropy_verdicts(tables, rl_names, js="js", high=high_js, seed=seed))
    out += shift_stats.entropy_verdicts(tables, rl_names, high=high_js, seed=seed)
    for v in out:
        print(v.line())
    return out


def focus(this, tables: dict[str, pl.DataFrame]) -> str:
    """The model whose tokens are followed: the paper's example, DAPO, where the profile has it."""
    return "dapo" if "dapo" in tables else this.pairs.rl_names[0]


def identity(this, tables: dict[str, pl.DataFrame], n_tokens: int, profile: str, values: dict,
             figures: list[str]) -> list:
    """The focus model's most frequent high-JS tokens across all their contexts: table, strip plot (into
    ``figures``), their median high-JS share (into ``values``) and the identity claim."""
    high_js, seed, name = this.setup.high_js, this.setup.seed, focus(this, tables)
    t = tables[name]
    table = shift_stats.token_identity(t, high=high_js, n_tokens=n_tokens)
    frequent = table["token"].to_list()
    if not frequent:
        print(f"no position above JS {high_js}: there is no high-divergence token to follow")
    else:
        with pl.Config(float_precision=4, tbl_rows=-1):
            print(table)
        occurrences = t.filter(pl.col("token").is_in(frequent)).with_columns(
            js_floor=pl.max_horizontal(pl.col("js_top_p"), pl.lit(1e-8)))
        fig, ax = plt.subplots(figsize=(10, 4.2))
        np.random.seed(seed)  # seaborn's strip jitter draws from numpy's global generator
        pretty = lambda tok: tok.replace("Ġ", "␣").replace("Ċ", "↵")  # noqa: E731  byte-level BPE's space, newline
        sns.stripplot(data=occurrences.with_columns(pl.col("token").map_elements(pretty, return_dtype=pl.String))
                      .to_pandas(), x="token", y="js_floor", order=[pretty(x) for x in frequent], size=2, alpha=0.35,
                      jitter=0.3, color=plotting.color(name), ax=ax)
        ax.axhline(high_js, color="k", ls=":", lw=1)
        ax.set(yscale="log", title=f"{this.labels[name]}: the same token across all its contexts (top-p JS; 0 drawn "
                                   "at 1e-8)",
               xlabel="token (most frequent at high-JS positions; ␣ = space)", ylabel="JS divergence (nats)")
        figures.append(plotting.save(fig, profile, "02_token_identity"))
        values[f"identity.{name}.median_share_high"] = float(np.median(table["share_high"].to_numpy()))
    out = claims.on_full_js([shift_stats.identity_verdict(t, name, js="js", high=high_js, n_tokens=n_tokens,
                                                          seed=seed)])
    out.append(shift_stats.identity_verdict(t, name, high=high_js, n_tokens=n_tokens, seed=seed))
    for v in out:
        print(v.line())
    return out


def categories(this, tables: dict[str, pl.DataFrame], profile: str, values: dict) -> str:
    """Token categories' share of all positions against their share of high-JS positions: tables, scatter, and
    each category's enrichment (into ``values``)."""
    high_js = this.setup.high_js
    shares = {name: shift_stats.category_shares(tables[name], high=high_js) for name in this.pairs.rl_names}
    with pl.Config(float_precision=3, tbl_rows=-1, tbl_cols=-1, tbl_width_chars=200):
        for name, c in shares.items():
            print(this.labels[name])
            print(c)
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    top = max(max(c["share_of_positions"].max(), c["share_of_high_js"].max()) for c in shares.values())
    for name, c in shares.items():
        ax.scatter(c["share_of_positions"], c["share_of_high_js"], s=45, color=plotting.color(name),
                   label=this.labels[name])
        for r in c.iter_rows(named=True):
            ax.annotate(r["category"], (r["share_of_positions"], r["share_of_high_js"]), fontsize=8,
                        xytext=(4, 3), textcoords="offset points")
    ax.plot([0, top * 1.1], [0, top * 1.1], ":", color="k", lw=1, label="carries its share")
    ax.set(title=f"Token categories: frequency vs share of high-JS positions (JS > {high_js})",
           xlabel="share of all positions", ylabel="share of high-JS positions")
    ax.legend(fontsize=8)
    fig.tight_layout()
    file = plotting.save(fig, profile, "02_token_categories")
    values.update({f"categories.{name}.{r['category'].replace(' ', '_')}.enrichment": r["enrichment"]
                   for name, c in shares.items() for r in c.iter_rows(named=True) if r["high_js"] > 0})
    return file


def token_viewer(this, tables: dict[str, pl.DataFrame], n_viewer: int, profile: str) -> tuple[str, str]:
    """The focus model's token viewer on one response per problem and outcome (half correct, half incorrect where
    there are enough): its file name, and the page framed for a notebook's output."""
    name = focus(this, tables)
    t = tables[name]
    by_response = (t.group_by("response", maintain_order=True).agg(pl.col("problem", "correct").first())
                   .unique(subset=["problem", "correct"], keep="first", maintain_order=True))
    chosen = pl.concat([by_response.filter(pl.col("correct")).head(n_viewer // 2),
                        by_response.filter(~pl.col("correct")).head(n_viewer - n_viewer // 2)])["response"]
    page = viewer.write(findings.output_dir(profile) / "02_token_viewer.html",
                        t.filter(pl.col("response").is_in(chosen.implode())), this.problems.tokenizer,
                        this.problems.texts, title=f"{this.labels[name]} vs base: top-p JS per token")
    print(f"{len(chosen)} responses in {page.name}")
    return page.name, (f'<iframe srcdoc="{html.escape(page.read_text())}" '
                       'style="width:100%;height:480px;border:1px solid #ccc"></iframe>')
