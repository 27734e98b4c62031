"""The engine backend's arithmetic on listed log-probabilities (``models.engine_cross``), against the suite's own
on whole distributions: top-p sets, top-p JS, padding rows and draws."""

import math
import random

import pytest
import torch
from tokenshift.models.divergence import log_probs, top_p_js
from tokenshift.models.engine_cross import drawn, js, nucleus


def listed(logits: torch.Tensor, k: int) -> dict[int, float]:
    """An engine's answer: the k most likely rows with their log-probabilities over every row."""
    lp = torch.log_softmax(logits.double(), -1)
    top = lp.topk(k)
    return dict(zip(top.indices.tolist(), top.values.tolist()))


def peaked(seed: int, rows: int = 300) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, generator=g) * 4


@pytest.mark.parametrize("seed", range(20))
def test_top_p_js_from_listed_ids_is_the_suites_on_whole_distributions(seed):
    a, b = peaked(seed), peaked(seed + 100)
    expected = float(top_p_js(log_probs(a[None])[1], log_probs(b[None])[1], 0.7)[0])
    sets = nucleus(listed(a, 20), 0.7, 300), nucleus(listed(b, 20), 0.7, 300)
    if None in sets:  # the listed ids do not hold the top-p set: the whole distribution decides
        sets = nucleus(listed(a, 300), 0.7, 300, whole=True), nucleus(listed(b, 300), 0.7, 300, whole=True)
    assert js(*sets) == pytest.approx(expected, abs=1e-6)


def test_a_top_p_set_reaching_past_the_listed_ids_is_not_guessed():
    flat = torch.zeros(300)
    assert nucleus(listed(flat, 20), 0.7, 300) is None
    assert len(nucleus(listed(flat, 300), 0.7, 300, whole=True)) == 210  # 0.7 of 300 equal tokens


def test_padding_rows_leave_the_distribution_as_the_suites_decoder_leaves_them():
    logits = peaked(3, 300)
    logits[280:] = 2.0  # twenty padding rows with real mass
    expected = float(top_p_js(log_probs(logits[None, :280])[1], log_probs(peaked(4, 280)[None])[1], 0.7)[0])
    ours = nucleus(listed(logits, 300), 0.7, 280, whole=True)
    theirs = nucleus(listed(peaked(4, 280), 280), 0.7, 280, whole=True)
    assert js(ours, theirs) == pytest.approx(expected, abs=1e-6) and max(ours) < 280


def test_draws_from_listed_ids_follow_the_top_p_set():
    logits = peaked(5)
    given = listed(logits, 20)
    kept = nucleus(given, 0.7, 300)
    counts = {}
    for i in range(20_000):
        token = drawn(given, 1.0, 0.7, 300, (i + 0.5) / 20_000)
        counts[token] = counts.get(token, 0) + 1
    assert set(counts) == set(kept) and all(abs(counts[t] / 20_000 - p) < 1e-3 for t, p in kept.items())
    assert drawn(given, 0.0, 0.7, 300, 0.3) == int(logits.argmax())
    assert drawn(given, 0.8, 0.7, 300, 0.3) is None  # another temperature reshapes mass the list does not show
    assert drawn(listed(torch.zeros(300), 20), 1.0, 0.7, 300, 0.3) is None


def test_js_is_symmetric_zero_on_equal_sets_and_ln2_on_disjoint_ones():
    a, b = {1: 0.6, 2: 0.4}, {3: 1.0}
    assert js(a, a) == 0.0 and js(a, b) == pytest.approx(math.log(2)) and js(a, b) == js(b, a)
    rng = random.Random(0)
    c = {t: rng.random() for t in range(5)}
    total = sum(c.values())
    assert 0 < js(a, {t: v / total for t, v in c.items()}) < math.log(2)
