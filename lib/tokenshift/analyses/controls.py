"""The SFT controls beside the RL models (the paper's "SFT shifts densely" contrast), checked before they are
compared and compared where the comparison is fair.

- **Manipulation check** (reported, never used to select a model): did the control learn what it was trained on?
  Its pass@1 and its format adherence (the share of its responses that state an answer as the task asks and
  stop) on its own responses, beside the base's.
- **Matched distance.** A model further from the base has more room to be dense: concentration is compared at
  matched mean KL(tuned || base) per position, with each RL run's checkpoints tracing a curve from the base and
  each control, with its dose point (off-policy SFT at one RL run's budget of steps), placed against it.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..organism import task
from ..problems.problem_sets import ProblemSet
from .shift_stats import NEAR_ZERO


def manipulation_check(table: pl.DataFrame, problems: ProblemSet) -> dict[str, float]:
    """On a shift table's responses (the tuned model's own): pass@1 (the share judged right) and format adherence
    (the share that end by stating "answer is N." once, with the stop token)."""
    stops = set(problems.stop_ids)
    per = table.sort("response", "position").group_by("response", maintain_order=True).agg(
        pl.col("token_id"), pl.col("correct").first())
    formatted = [bool(ids) and ids[-1] in stops and task.extract_answer(problems.answer_text(ids)) is not None
                 for ids in per["token_id"].to_list()]
    return {"pass@1": float(per["correct"].mean()), "format": float(np.mean(formatted))}


def distance_and_density(table: pl.DataFrame) -> dict[str, float]:
    """Mean KL(tuned || base) per position, and the near-zero shares of full and top-p JS."""
    return {"mean_kl": float(table["kl_tuned_base"].mean()),
            "full_js_near_zero": float((table["js"] < NEAR_ZERO).mean()),
            "top_p_js_near_zero": float((table["js_top_p"] < NEAR_ZERO).mean())}


def at_matched_kl(curve: pl.DataFrame, point: dict[str, float], column: str) -> float:
    """An RL run's ``column`` interpolated (linearly in mean KL, along its checkpoints) at the mean KL of a control's
    ``point``; NaN outside the range the run covers (no extrapolation)."""
    kl, values = curve["mean_kl"].to_numpy(), curve[column].to_numpy()
    order = np.argsort(kl)
    if not kl[order][0] <= point["mean_kl"] <= kl[order][-1]:
        return float("nan")
    return float(np.interp(point["mean_kl"], kl[order], values[order]))
