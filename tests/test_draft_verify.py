"""Draft and verify writes what the lockstep writes: the same tokens, handovers and recorded JS for the same
seed, at every intervention rate, for both rules and the cap, greedy and sampled; and it adapts its chunks."""

import math

import pytest
import torch
from conftest import TINY_SHAPE
from tokenshift.analyses.cross_sampling import cross_sample
from tokenshift.models import draft_verify
from tokenshift.models.metrics import pair_metrics
from tokenshift.models.sampling import sample
from tokenshift.organism import architecture


@pytest.fixture(scope="module")
def pair(tokenizer):
    return (architecture.new_model(tokenizer, TINY_SHAPE, seed=0).eval(),
            architecture.new_model(tokenizer, TINY_SHAPE, seed=1).eval())


@pytest.fixture(scope="module")
def prompts(tokenizer):
    # different lengths in one batch, down to the bare <bos> (a prompt whose cached part is all padding)
    return [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in ("1234+5678=", "9+1=", "55+5=")] + \
        [[tokenizer.bos_token_id]]


def kw(tokenizer, **extra):
    return dict(max_new_tokens=24, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                n=6, seed=2, batch_size=16) | extra


@pytest.fixture(scope="module")
def js_quantile(pair, prompts, tokenizer):
    seen = cross_sample(*pair, prompts, **kw(tokenizer)).js
    values = torch.tensor([x for row in seen for x in row])
    return lambda q: float(values.quantile(q))


def same(a, b):
    assert a.response_ids == b.response_ids and a.stopped == b.stopped
    assert a.chosen == b.chosen and a.changed == b.changed
    assert max(abs(x - y) for r, s in zip(a.js, b.js) for x, y in zip(r, s)) < 1e-5


@pytest.mark.parametrize("temperature", [1.0, 0.0])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.98])
def test_the_same_tokens_as_the_lockstep_at_every_rate(pair, prompts, tokenizer, js_quantile, temperature, q):
    args = dict(eps=js_quantile(q), temperature=temperature, **kw(tokenizer))
    lockstep, drafted = (cross_sample(*pair, prompts, method=m, **args) for m in ("lockstep", "draft"))
    same(lockstep, drafted)
    if temperature == 1.0:
        assert 0 < sum(map(sum, drafted.chosen)) < sum(map(len, drafted.chosen))  # both policies had turns


def test_the_random_control_and_the_cap_as_the_lockstep_draws_them(pair, prompts, tokenizer, js_quantile):
    fractions = [0.05 * (i % 5) for i in range(24)]
    for extra in (dict(random_fraction=fractions), dict(eps=js_quantile(0.5), cap=2)):
        same(cross_sample(*pair, prompts, method="lockstep", **extra, **kw(tokenizer)),
             cross_sample(*pair, prompts, method="draft", **extra, **kw(tokenizer)))


def test_never_and_always_are_one_models_sampling(pair, prompts, tokenizer):
    for eps, model in ((math.inf, pair[0]), (-1.0, pair[1])):
        drafted = cross_sample(*pair, prompts, eps=eps, method="draft", **kw(tokenizer))
        alone = sample(model, prompts, **kw(tokenizer))
        assert drafted.response_ids == alone.response_ids


def test_the_recorded_divergence_is_a_teacher_forced_forwards(pair, prompts, tokenizer, js_quantile):
    out = cross_sample(*pair, prompts, eps=js_quantile(0.7), method="draft", **kw(tokenizer, n=2))
    for i, ids, stopped, js in zip(out.prompt_index, out.response_ids, out.stopped, out.js):
        seq = prompts[i] + ids + [tokenizer.eos_token_id] * stopped
        with torch.no_grad():
            a, b = (m(torch.tensor([seq])).logits[0, len(prompts[i]) - 1 : len(seq) - 1] for m in pair)
        assert torch.allclose(torch.tensor(js), pair_metrics(a, b)["js"], atol=1e-5)


def test_a_later_batch_starts_where_the_lockstep_left_the_generator(pair, prompts, tokenizer, js_quantile):
    args = dict(eps=js_quantile(0.9), **kw(tokenizer, batch_size=5))  # 24 responses in batches of 5
    same(cross_sample(*pair, prompts, method="lockstep", **args), cross_sample(*pair, prompts, method="draft", **args))


def test_chunks_follow_the_rate_the_rule_fires_at():
    assert draft_verify.best_chunk(0.0, 32) == 32 and draft_verify.best_chunk(1.0, 32) == 1
    sizes = [draft_verify.best_chunk(r, 32) for r in (0.01, 0.05, 0.2, 0.5)]
    assert sizes == sorted(sizes, reverse=True) and draft_verify.best_chunk(0.0, 5) == 4


def test_the_cache_grows_past_its_first_capacity():
    layer = draft_verify._GrowingLayer(3)
    keys = torch.arange(2 * 1 * 7 * 2, dtype=torch.float).view(2, 1, 7, 2)
    for t in range(7):
        k, v = layer.update(keys[:, :, t : t + 1], -keys[:, :, t : t + 1])
    assert torch.equal(k, keys) and torch.equal(v, -keys)


def test_bad_settings_are_refused(pair, prompts, tokenizer):
    with pytest.raises(ValueError, match="unknown cross-sampling method 'fast'"):
        cross_sample(*pair, prompts, method="fast", **kw(tokenizer))
    with pytest.raises(ValueError, match="max_chunk must be at least 1"):
        draft_verify.draft_verify(*pair, prompts, None, max_new_tokens=4, stop_ids={2}, pad_id=0, max_chunk=0)
