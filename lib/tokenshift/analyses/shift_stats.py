"""Summaries of a shift table (``shifts.shift_table``) in the paper's terms, shared by notebooks 01, 02, 04."""

from __future__ import annotations

import numpy as np
import polars as pl

NEAR_ZERO_CUTOFFS = (1e-3, 1e-2, 1e-1)


def sparsity_summary(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> dict[str, float]:
    """The paper's sparsity finding (most positions near zero JS: >83% for DAPO, >98% for SimpleRL), legible at
    a glance (after llama.cpp's --kl-divergence summary): mean, percentiles, max, top-1 agreement, and the shares
    of positions below each near-zero cut-off and above ``high``."""
    x = table[js].to_numpy()
    out = {"positions": float(len(x)), "mean": float(x.mean())}
    out.update({f"q{q}": float(np.quantile(x, q / 100)) for q in (50, 90, 95, 99)})
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


def position_profile(table: pl.DataFrame, js: str = "js_top_p", bins: int = 10, high: float = 0.1) -> pl.DataFrame:
    """The paper's position finding (shifts cluster at the start of responses, with a smaller rise at the end):
    mean divergence per bin of normalised position, with a 95% interval that treats responses as the unit
    (positions of one response are not independent), and the share of high-divergence positions per bin."""
    binned = table.with_columns(bin=(pl.col("rel_position") * bins).floor().cast(pl.Int32).clip(0, bins - 1))
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


def reallocation_summary(table: pl.DataFrame, js: str = "js_top_p", high: float = 0.1) -> dict[str, float]:
    """The paper's probability-mass reallocation finding (at JS > 0.1, RL re-ranks candidates the base already
    had: top-k overlap > 80% for k >= 2, the RL top-1 within the base's top 3): how probability mass moved at
    high-divergence positions."""
    hits = table.filter(pl.col(js) > high)
    if len(hits) == 0:
        return {"positions": 0.0}
    rank = hits["tuned_top1_base_rank"].to_numpy()
    out = {"positions": float(len(hits)),
           "tuned_top1_is_base_top1": float((rank == 0).mean()),
           "tuned_top1_in_base_top3": float((rank < 3).mean()),
           "tuned_top1_base_prob_lt_0.01": float((hits["tuned_top1_base_prob"].to_numpy() < 0.01).mean())}
    for col in sorted((c for c in table.columns if c.startswith("topk_overlap_")), key=lambda c: int(c.rsplit("_", 1)[1])):
        out[col.replace("topk_overlap_", "overlap_top")] = float(hits[col].mean())
    return out
