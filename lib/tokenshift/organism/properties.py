"""What the organism is like, measured: where its reward-relevant decisions fall, how uncertain its base is on its
own samples, how wide its nuclei are. Notebook 00 shows these beside the accuracies, so a reader can judge what
the organism can and cannot test."""

from __future__ import annotations

import random

import numpy as np
import polars as pl

from . import task


def decision_positions(demonstrator: task.Demonstrator, tokenizer, n: int, seed: int) -> pl.DataFrame:
    """Where the demonstrator's decisions fall in its responses, in tokens: one row per decision of ``n``
    demonstrations on training problems (kind, token position, response length in tokens, relative position
    (position + 0.5) / length, as the shift tables count it). A decision sits before the token it decides."""
    rng = random.Random(seed)
    rows = []
    for problem in task.sample_problems(n, "train", seed=seed):
        written = demonstrator.write(problem, rng)
        starts = [start for start, _ in tokenizer(written.text, return_offsets_mapping=True)["offset_mapping"]]
        length = len(starts) + written.stopped  # the end-of-sequence token is a position too
        for offset, kind in written.decisions:
            position = next((i for i, start in enumerate(starts) if start >= offset), len(starts))
            rows.append({"kind": kind, "position": position, "length": length,
                         "rel_position": (position + 0.5) / length})
    return pl.DataFrame(rows)


def uncertainty(table: pl.DataFrame, model: str = "base") -> dict[str, float]:
    """How uncertain ``model`` ("base" or "tuned") is over the positions of a shift table: mean entropy, the
    shares of positions above 0.3 and 1.0 nats, and its top-p nucleus sizes (share of 1, 2-3 and more tokens)."""
    entropy = table[f"entropy_{model}"].to_numpy()
    nucleus = table[f"nucleus_{model}"].to_numpy()
    return {"entropy_mean": float(entropy.mean()), "entropy_gt_0.3": float((entropy > 0.3).mean()),
            "entropy_gt_1.0": float((entropy > 1.0).mean()), "nucleus_mean": float(nucleus.mean()),
            "nucleus_1": float((nucleus == 1).mean()), "nucleus_2_3": float(((nucleus >= 2) & (nucleus <= 3)).mean()),
            "nucleus_4_up": float((nucleus >= 4).mean())}


def response_lengths(table: pl.DataFrame) -> dict[str, float]:
    """Response lengths in tokens (stop token included) of a shift table's responses: mean and spread."""
    lengths = table.group_by("response").agg(pl.col("length").first())["length"].to_numpy()
    return {"mean": float(lengths.mean()), "q10": float(np.quantile(lengths, 0.1)),
            "q90": float(np.quantile(lengths, 0.9)), "max": float(lengths.max())}


RL_GAIN = 2.0  # the premise: each RL run's pass@1 at least this many times the base's


def acceptance(accuracy: dict, base: dict[str, float], k: int, rl_names) -> dict[str, bool]:
    """The organism's acceptance checks, fixed before it was built: a base that solves some but not most problems
    (and most at k samples), RL runs that at least double it with intervals above its, and base responses long
    and uncertain enough to leave room for a shift. ``accuracy``: model -> ``evaluation.Accuracy`` (avg@k);
    ``base``: the base's ``response_lengths`` (as ``length_*``) and ``uncertainty``."""
    base_acc = accuracy["base"]
    return {
        "base pass@1 in [0.10, 0.35]": 0.10 <= base_acc.avg <= 0.35,
        f"base pass@{k} >= 0.6": base_acc.pass_at(k) >= 0.6,
        **{f"{n} pass@1 >= 2x base and its interval above the base's": accuracy[n].avg >= RL_GAIN * base_acc.avg
           and accuracy[n].ci95[0] > base_acc.ci95[1] for n in rl_names},
        "base responses of 120 tokens or more on average": base["length_mean"] >= 120,
        "base above 0.3 nats at 10% or more of its positions": base["entropy_gt_0.3"] >= 0.10,
    }
