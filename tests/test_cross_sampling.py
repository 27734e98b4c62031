import math

import pytest
import torch

from tokenshift import models
from tokenshift.cross_sampling import cross_sample
from tokenshift.metrics import pair_metrics
from tokenshift.sampling import sample

from conftest import TINY_SHAPE


@pytest.fixture
def pair(tokenizer):
    return (models.new_model(tokenizer, TINY_SHAPE, seed=0).eval(),
            models.new_model(tokenizer, TINY_SHAPE, seed=1).eval())


def prompts(tokenizer, texts=("1234+5678=", "9+1=", "55+5=")):
    return [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in texts]


def kw(tokenizer, max_new_tokens=16):
    return dict(max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)


@pytest.mark.parametrize("top_p", [1.0, 0.7])
def test_infinite_eps_is_plain_sampling_from_the_primary(tokenizer, pair, top_p):
    ps = prompts(tokenizer)
    ours = cross_sample(*pair, ps, eps=math.inf, n=3, seed=5, top_p=top_p, **kw(tokenizer))
    plain = sample(pair[0], ps, n=3, seed=5, top_p=top_p, **kw(tokenizer))
    assert ours.response_ids == plain.response_ids and ours.stopped == plain.stopped
    assert not any(any(f) for f in ours.intervened)


def test_negative_eps_is_plain_sampling_from_the_intervention(tokenizer, pair):
    ps = prompts(tokenizer)
    ours = cross_sample(*pair, ps, eps=-1.0, n=3, seed=5, **kw(tokenizer))
    plain = sample(pair[1], ps, n=3, seed=5, **kw(tokenizer))
    assert ours.response_ids == plain.response_ids
    assert all(all(f) for f in ours.intervened)
    assert ours.intervened_fraction() == [1.0] * 9


def test_greedy_infinite_eps_equals_generate(tokenizer, pair):
    for p in prompts(tokenizer):
        ours = cross_sample(*pair, [p], eps=math.inf, temperature=0, **kw(tokenizer))
        ref = pair[0].generate(torch.tensor([p]), do_sample=False, max_new_tokens=16,
                               eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)[0, len(p):].tolist()
        if ours.stopped[0]:
            ref = ref[: ref.index(tokenizer.eos_token_id)]
        assert ours.response_ids[0] == ref


def test_recorded_divergence_equals_a_teacher_forced_forward(tokenizer, pair):
    # left-padded batch of mixed prompt lengths; a middle eps so both policies get turns
    ps = prompts(tokenizer)
    seen = cross_sample(*pair, ps, n=2, seed=3, **kw(tokenizer)).js
    eps = float(torch.tensor([x for row in seen for x in row]).median())
    out = cross_sample(*pair, ps, eps=eps, n=2, seed=3, **kw(tokenizer))
    assert any(any(f) for f in out.intervened) and not all(all(f) for f in out.intervened)
    for i, ids, stopped, js, flags in zip(out.prompt_index, out.response_ids, out.stopped, out.js, out.intervened):
        seq = ps[i] + ids + [tokenizer.eos_token_id] * stopped
        with torch.no_grad():
            a, b = (m(torch.tensor([seq])).logits[0, len(ps[i]) - 1 : len(seq) - 1] for m in pair)
        expected = pair_metrics(a, b)["js"]
        assert torch.allclose(torch.tensor(js), expected, atol=1e-5)
        assert flags == (torch.tensor(js) > eps).tolist()


def test_random_control_meets_its_budget_on_average(tokenizer, pair):
    ps = prompts(tokenizer)
    n = 40
    targets = [0.1, 0.3, 0.6] * n  # one target per response
    out = cross_sample(*pair, ps, random_fraction=targets, n=n, seed=0, **kw(tokenizer, max_new_tokens=24))
    lengths = [len(f) for f in out.intervened]
    expected_tokens = sum(t * l for t, l in zip(targets, lengths)) / len(targets)
    realised_tokens = sum(out.intervened_count()) / len(targets)
    assert abs(realised_tokens - expected_tokens) < 0.5


def test_bad_inputs_are_refused(tokenizer, pair):
    with pytest.raises(ValueError, match="empty prompt"):
        cross_sample(*pair, [[]], **kw(tokenizer))
    with pytest.raises(ValueError, match="one value per response"):
        cross_sample(*pair, prompts(tokenizer), random_fraction=[0.5], **kw(tokenizer))
