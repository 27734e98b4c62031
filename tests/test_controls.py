"""The SFT controls' checks: format adherence and pass@1 read off a model's own responses, and density compared at a
matched distance from the base by interpolating along an RL run's checkpoints."""

import math

import polars as pl
import pytest
from tokenshift.analyses import controls
from tokenshift.organism import task
from tokenshift.organism.problems import OrganismProblems


def table_of(responses, tokenizer, correct):
    """A shift table's columns the checks read, for responses given as (text, stopped)."""
    rows = []
    for r, ((text, stopped), ok) in enumerate(zip(responses, correct)):
        ids = tokenizer(text)["input_ids"] + [tokenizer.eos_token_id] * stopped
        rows += [{"response": r, "position": i, "token_id": t, "correct": ok} for i, t in enumerate(ids)]
    return pl.DataFrame(rows)


def test_format_adherence_needs_one_stated_answer_at_the_end_and_the_stop_token(tokenizer):
    problems = OrganismProblems(task.sample_problems(4, "train", seed=0), tokenizer)
    responses = [("ones: 1+2=3, write 3. So the answer is 3.", True),  # the format, stopped
                 ("So the answer is 3.", False),  # cut by the length limit
                 ("the answer is 3. the answer is 4.", True),  # stated twice
                 ("write 3.", True)]  # never stated
    table = table_of(responses, tokenizer, [True, False, False, False])
    assert controls.manipulation_check(table, problems) == {"pass@1": 0.25, "format": 0.25}


def test_a_control_is_compared_with_each_run_where_that_run_was_as_far_from_the_base():
    curve = pl.DataFrame({"mean_kl": [0.0, 0.02, 0.01, 0.05], "full_js_near_zero": [1.0, 0.8, 0.9, 0.6]})
    at = lambda kl: controls.at_matched_kl(curve, {"mean_kl": kl}, "full_js_near_zero")  # noqa: E731
    assert at(0.015) == pytest.approx(0.85) and at(0.035) == pytest.approx(0.7) and at(0.0) == 1.0
    assert math.isnan(at(0.06))  # beyond the run's last checkpoint: no extrapolation
    table = pl.DataFrame({"kl_tuned_base": [0.0, 0.2], "js": [0.001, 0.3], "js_top_p": [0.0, 0.0]})
    assert controls.distance_and_density(table) == pytest.approx({"mean_kl": 0.1, "full_js_near_zero": 0.5,
                                                                  "top_p_js_near_zero": 1.0})
