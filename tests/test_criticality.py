"""Criticality against ground truth: the labeller reads a response as its writer recorded it; the rollouts
measure c exactly where it can be computed by hand, couple their arms, and do not depend on the batch; the
central verdict can disagree."""

import math
import random

import numpy as np
import polars as pl
import pytest
import torch
from conftest import TINY_SHAPE
from tokenshift.analyses import criticality as cr
from tokenshift.models.scoring import score_pair
from tokenshift.organism import architecture, labels, task
from tokenshift.organism.problems import OrganismProblems


def test_the_labeller_finds_the_demonstrators_own_decisions_and_choices():
    demo, rng = task.Demonstrator(), random.Random(4)
    for problem in task.sample_problems(1500, "train", seed=4):
        written = demo.write(problem, rng)
        read = labels.label_text(written.text)
        assert (read.decisions, read.choices, read.complete) == (written.decisions, written.choices, True), \
            written.text


def test_tokens_take_the_label_of_what_they_decide_and_foreign_text_is_unparsed(tokenizer):
    text = "ones: 12+34, 2+4=6, write 6.\ntens: 1+3, 1+3=4, keep 4.\nSo the answer is 46."
    ids = tokenizer(text)["input_ids"]
    found = cr.response_labels(ids, True, tokenizer)
    assert len(found) == len(ids) + 1 and found[0] == "decision:strategy" and found[-1] == "decision:stop"
    assert {"decision:method", "decision:sum", "decision:check", "choice", "deterministic"} <= set(found)
    garbled = cr.response_labels(tokenizer("ones: 12+34, 2+4=6, write 6.\nbanana")["input_ids"], False, tokenizer)
    assert garbled[-1] == "unparsed" and "decision:sum" in garbled


class EndsInDigit(OrganismProblems):
    """Right exactly when the response's text ends in a digit: with no room to go on, P(correct) after a position
    is a sum over the vocabulary, computable by enumerating every next token."""

    def verify(self, index, response, stopped):
        return bool(response) and response[-1].isdigit()


@pytest.fixture(scope="module")
def pair(tokenizer):
    base, tuned = (architecture.new_model(tokenizer, TINY_SHAPE, seed=s).eval() for s in (0, 1))
    with torch.no_grad():  # peaked distributions, so the two models' odds of a digit differ measurably
        for model in (base, tuned):
            model.lm_head.weight.mul_(8.0)
    return base, tuned


def positions_table(pair, tokenizer, problems, length):
    """A shift table of ``length``-token responses (random ids) to each problem: the frame the rollouts read."""
    rng = np.random.default_rng(0)
    responses = [rng.integers(5, len(tokenizer), length).tolist() for _ in problems.prompts]
    table = score_pair(*pair, tokenizer, problems.prompts, responses, show_progress=False)
    return table.with_columns(pl.col("response").alias("problem"))


def test_c_is_the_expected_gain_enumerated_over_the_vocabulary_where_nothing_follows(pair, tokenizer):
    problems = EndsInDigit(task.sample_problems(6, "train", seed=1), tokenizer)
    table = positions_table(pair, tokenizer, problems, 5)
    sampled = table.filter(pl.col("position") == 4)  # the last step of a 5-token budget
    config = cr.CriticalityConfig(positions=6, rollouts=4000)
    got = cr.summarise(sampled, cr.rollouts(*pair, problems, table, sampled, config, max_new_tokens=5,
                                            show_progress=False))
    for (r, t, c, differ) in got.select("response", "position", "c", "tokens_differ").rows():
        prefix = problems.prompts[r] + table.filter((pl.col("response") == r) & (pl.col("position") < t))[
            "token_id"].to_list()
        with torch.no_grad():
            p = [torch.softmax(m(torch.tensor([prefix])).logits[0, -1, : len(tokenizer)].double(), -1)
                 for m in pair]
        response = prefix[len(problems.prompts[r]) :]
        right = torch.tensor([problems.verify(r, problems.answer_text(response + [v]), v == tokenizer.eos_token_id)
                              for v in range(len(tokenizer))], dtype=torch.float64)
        exact = float((p[1] - p[0]) @ right)
        # the arms share each uniform number: their difference has variance |c| - c^2 at most, not 2 p (1 - p)
        assert abs(c - exact) < 4 * math.sqrt(abs(exact) / 4000) + 1e-3, (r, c, exact)
        assert 0 < differ < 1
    assert got["c"].abs().max() > 0.005  # the models' odds of a digit really differ


def test_one_model_twice_has_no_critical_position_and_the_batch_changes_nothing(pair, tokenizer):
    problems = OrganismProblems(task.sample_problems(4, "train", seed=2), tokenizer)
    table = positions_table(pair, tokenizer, problems, 6)
    sampled = table.filter(pl.col("position").is_in([1, 3]))
    config = cr.CriticalityConfig(positions=8, rollouts=4, batch_size=3)
    same = cr.summarise(sampled, cr.rollouts(pair[0], pair[0], problems, table, sampled, config, 12, False))
    assert same["c"].to_list() == [0.0] * len(sampled) and same["tokens_differ"].to_list() == [0.0] * len(sampled)
    runs = [cr.rollouts(*pair, problems, table, sampled, cr.CriticalityConfig(positions=8, rollouts=4,
                                                                            batch_size=b), 12, False)
            for b in (3, 256)]
    assert runs[0].equals(runs[1]) and (runs[0]["tuned_token"] != runs[0]["base_token"]).any()


def frame(js, size2, seed=0):
    rng = np.random.default_rng(seed)
    n = len(js)
    return pl.DataFrame({"response": np.arange(n), "js": js, "size2": size2, "c": np.sqrt(np.abs(size2)),
                         "critical": np.sqrt(np.clip(size2, 0, None)) >= cr.CRITICAL}).with_columns(
        pl.Series("noise", rng.random(n)))


def test_the_verdict_agrees_only_where_divergence_ranks_consequence():
    rng = np.random.default_rng(1)
    js = rng.uniform(1e-3, 0.5, 300)
    agreeing = cr.rank_statistics(frame(js, js + rng.normal(0, 0.05, 300)))
    assert cr.verdict("m", agreeing["spearman_js_size"], 300).status == "agrees"
    assert agreeing["auroc_js_critical"][0] > 0.8
    # consequence placed where divergence is lowest: the same claim must disagree
    disagreeing = cr.rank_statistics(frame(js, 0.5 - js + rng.normal(0, 0.05, 300)))
    assert cr.verdict("m", disagreeing["spearman_js_size"], 300).status == "disagrees"
    unrelated = cr.rank_statistics(frame(js, rng.permutation(js)))
    assert cr.verdict("m", unrelated["spearman_js_size"], 300).status in ("disagrees", "inconclusive")
    assert cr.verdict("m", (float("nan"), (float("nan"), float("nan"))), 2).status == "not testable"


def test_the_metric_s_blind_spots_are_counted_per_label():
    table = pl.DataFrame({"label": ["decision:check"] * 4 + ["choice"] * 2,
                          "js": [0.2, 0.2, 0.005, 0.0, 0.3, 0.2],
                          "js_top_p": [0.0, 0.3, 0.2, 0.0, 0.25, 0.0]})
    found = {r["label"]: r for r in cr.metric_blind_spots(table, 0.1).to_dicts()}
    assert found["decision:check"]["blind_share"] == 0.5 and found["decision:check"]["knife_edge_share"] == 0.5
    assert found["choice"]["blind_share"] == 0.5 and found["choice"]["knife_edge"] == 0


def test_js_mass_and_handovers_by_label_are_plain_shares():
    table = pl.DataFrame({"response": [0, 0, 0, 1, 1], "group": ["decision", "choice", "deterministic", "decision",
                                                                  "deterministic"],
                          "js": [0.3, 0.1, 0.0, 0.1, 0.0]})
    found = {r["group"]: r for r in cr.mass_by_label(table, "js").to_dicts()}
    assert found["decision"]["js_mass"] == pytest.approx(0.4 / 0.5) and found["decision"]["positions"] == 0.4
    assert found["deterministic"]["js_mass"] == 0 and found["choice"]["positions"] == 0.2
    assert found["decision"]["low"] <= found["decision"]["js_mass"] <= found["decision"]["high"]


def test_handovers_are_split_by_the_label_of_the_step_they_took(tokenizer):
    problems = OrganismProblems(task.sample_problems(1, "train", seed=0), tokenizer)
    ids = tokenizer("ones: 12+34, 2+4=6, write 6.\ntens: 1+3, 1+3=4, keep 4.\nSo the answer is 46.")["input_ids"]
    labels_of = cr.response_labels(ids, True, tokenizer)
    handed = [label in ("decision:strategy", "decision:stop") for label in labels_of]
    sweep = pl.DataFrame({"eps": [0.1], "rule": ["divergence"], "response_ids": [ids], "stopped": [True],
                          "intervened": [handed]})
    found = {r["group"]: r for r in cr.handovers_by_label(sweep, problems, 0.1).to_dicts()}
    assert found["decision"]["handovers"] == 2 and found["decision"]["handover_share"] == 1.0
    assert found["decision"]["position_share"] == pytest.approx(
        sum(x.startswith("decision") for x in labels_of) / len(labels_of))
    assert cr.decision_share(sweep, problems) == found["decision"]["position_share"]  # the sparse bar's density
