"""The two-model decoder writes what the per-token lockstep (``reference_lockstep``, the reference) writes: the same
tokens, handovers and recorded JS for the same seed, at every intervention rate, for both rules and the cap,
greedy and sampled, in chunks of one token or adaptive ones, in batches of any size; and it adapts its chunks.
With an engine drafting (other random streams), the same tokens greedy and the same distributions sampled."""

import math

import numpy as np
import pytest
import torch
from conftest import TINY_SHAPE
from reference_lockstep import lockstep as reference
from scipy.stats import chi2_contingency
from transformers import Qwen2Config, Qwen2ForCausalLM
from tokenshift.analyses import cross_sampling as cs
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.models import draft_verify
from tokenshift.models.metrics import pair_metrics
from tokenshift.models.sampling import Decoding, sample
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
    expected = reference(*pair, prompts, **args)
    for method in ("lockstep", "draft"):
        same(expected, cross_sample(*pair, prompts, method=method, **args))
    if temperature == 1.0:
        assert 0 < sum(map(sum, expected.chosen)) < sum(map(len, expected.chosen))  # both policies had turns


def test_the_random_control_and_the_cap_as_the_lockstep_draws_them(pair, prompts, tokenizer, js_quantile):
    fractions = [0.05 * (i % 5) for i in range(24)]
    for extra in (dict(random_fraction=fractions), dict(eps=js_quantile(0.5), cap=2)):
        same(reference(*pair, prompts, **extra, **kw(tokenizer)),
             cross_sample(*pair, prompts, method="draft", **extra, **kw(tokenizer)))


def test_the_controls_as_the_lockstep_draws_them(pair, prompts, tokenizer, js_quantile):
    """The restricted random and the entropy controls, at a divergence run's budget: the decoder's tokens are the
    reference's, the restricted control hands over only where the models disagree, and the entropy control only
    at steps whose recorded entropy of the base (the primary here) lies above its response's threshold."""
    numbers = list(range(24))
    by_divergence = cross_sample(*pair, prompts, eps=js_quantile(0.8), **kw(tokenizer))
    assert all(len(h) == len(j) for h, j in zip(by_divergence.first_entropy, by_divergence.js))
    for name in ("random, divergent", "random, divergent x3.5", "entropy, primary", "entropy, intervention"):
        rule = lambda: cs.control(name, by_divergence, 2, numbers, 24)  # noqa: E731
        ours = cross_sample(*pair, prompts, method="draft", rule=rule(), **kw(tokenizer))
        same(reference(*pair, prompts, rule=rule(), **kw(tokenizer)), ours)
        assert sum(ours.intervened_count()) > 0
        if name.startswith("random, divergent"):
            assert all(js[t] > cs.DIVERGENT for flags, js in zip(ours.chosen, ours.js)
                       for t, f in enumerate(flags) if f)
            continue
        base = ours.first_entropy if name == "entropy, primary" else ours.second_entropy
        for flags, h, tau in zip(ours.chosen, base, rule().thresholds.tolist()):
            assert all((h[t] > tau) == f for t, f in enumerate(flags))


def test_the_entropy_control_spends_the_divergence_rules_budget():
    """Thresholds keep each response's `count` highest-entropy steps (none, or all, at the ends)."""
    entropies = [[0.1, 0.9, 0.5, 0.7], [0.3, 0.2], [0.4]]
    tau = cs.top_entropy_thresholds(entropies, [2, 0, 1])
    assert tau == [0.5, math.inf, -math.inf]
    assert [sum(h > t for h in e) for e, t in zip(entropies, tau)] == [2, 0, 1]


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


def test_responses_numbered_in_a_run_draw_as_there(pair, prompts, tokenizer, js_quantile):
    # 24 responses in batches of 5, numbered as the last 24 of a run: each draws from its own streams
    args = dict(eps=js_quantile(0.9), responses=range(100, 124), **kw(tokenizer, batch_size=5))
    same(reference(*pair, prompts, **args), cross_sample(*pair, prompts, method="draft", **args))


def test_chunks_follow_the_rate_the_rule_fires_at():
    chunks = lambda rate, largest=32: int(draft_verify.best_chunks(torch.tensor([int(rate * 1000)]),  # noqa: E731
                                                                   torch.tensor([1000]), largest)[0])
    assert chunks(0.0) == 32 and chunks(1.0) == 1 and chunks(0.0, 5) == 4
    sizes = [chunks(r) for r in (0.01, 0.05, 0.2, 0.5)]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    # before a response has kept anything: the first guess, within the largest allowed
    assert draft_verify.best_chunks(torch.tensor([0]), torch.tensor([0]), 32).tolist() == [draft_verify.FIRST_CHUNK]
    assert draft_verify.best_chunks(torch.tensor([0]), torch.tensor([0]), 1).tolist() == [1]


def test_the_cache_grows_past_its_first_capacity():
    layer = draft_verify._GrowingLayer(3)
    keys = torch.arange(2 * 1 * 7 * 2, dtype=torch.float).view(2, 1, 7, 2)
    for t in range(7):
        k, v = layer.update(keys[:, :, t : t + 1], -keys[:, :, t : t + 1])
    assert torch.equal(k, keys) and torch.equal(v, -keys)


def test_bad_settings_are_refused(pair, prompts, tokenizer):
    with pytest.raises(ValueError, match="unknown cross-sampling method 'fast'"):
        cross_sample(*pair, prompts, method="fast", **kw(tokenizer))
    with pytest.raises(ValueError, match="max_chunk must be an integer of at least 1"):
        draft_verify.draft_verify(*pair, prompts, None, Decoding(4, {2}, 0), max_chunk=0)


class Drafter:
    """An engine as draft and verify sees it: it drafts with the suite's own sampler from ``model``, each round's
    requests in one batch seeded by the first request's seed, so its draws are not the lockstep's. ``stale``:
    a broken engine that drafts from each prefix without its last token."""

    def __init__(self, model, stale: bool = False):
        self.model, self.stale, self.asked = model, stale, []

    def draft(self, prefixes, lengths, seeds, decoding):
        self.asked.append(lengths)
        out = sample(self.model, [p[:-1] if self.stale else p for p in prefixes], max_new_tokens=max(lengths),
                     seed=seeds[0], eos_token_id=decoding.stop_ids, pad_token_id=0, vocab_size=decoding.vocab_size,
                     temperature=decoding.temperature, top_p=decoding.top_p)
        return [(ids + [stop] * (stop is not None))[:m] for ids, stop, m in zip(out.response_ids, out.stop_token,
                                                                                lengths)]


@pytest.mark.parametrize("q", [0.0, 0.5, 0.9, 1.0])
def test_an_engine_drafting_writes_the_lockstep_s_tokens_greedy(pair, prompts, tokenizer, js_quantile, q):
    args = dict(eps=js_quantile(q) if q < 1 else math.inf, temperature=0.0, **kw(tokenizer))
    drafter = Drafter(pair[0])
    same(reference(*pair, prompts, **args), cross_sample(*pair, prompts, method="draft", drafter=drafter, **args))
    assert drafter.asked and all(1 <= m <= 32 for lengths in drafter.asked for m in lengths)


def test_an_engine_drafting_hands_over_with_the_lockstep_s_numbers(pair, prompts, tokenizer):
    # eps < 0: every token is the intervention's draw with the lockstep's number, whatever the engine drafted
    drafted = cross_sample(*pair, prompts, eps=-1.0, method="draft", drafter=Drafter(pair[0]), **kw(tokenizer))
    assert drafted.response_ids == sample(pair[1], prompts, **kw(tokenizer)).response_ids
    assert all(all(c) for c in drafted.chosen)


def small_vocabulary_model(seed: int) -> Qwen2ForCausalLM:
    """A random model over 6 tokens (5 ends a response) with peaked distributions: few enough outcomes per step
    for a test of distributions to see a wrong one."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=6, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                         tie_word_embeddings=False)).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)
    return model


def outcomes(out) -> list[np.ndarray]:
    """Per response: its length, its first handed-over step (-1: none), its tokens at steps 0, 1, 2 and 4
    (5 once stopped, -1 past the end)."""
    rows = [ids + [5] * stopped + [-1] * 8 for ids, stopped in zip(out.response_ids, out.stopped)]
    return [np.array([len(ids) + s for ids, s in zip(out.response_ids, out.stopped)]),
            np.array([c.index(True) if True in c else -1 for c in out.chosen]),
            *(np.array([row[t] for row in rows]) for t in (0, 1, 2, 4))]


def smallest_p(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """The smallest chi-square p-value of a against b over the outcomes (values seen under 10 times pooled)."""
    ps = []
    for x, y in zip(a, b):
        values = sorted(set(x) | set(y))
        table = np.array([[np.sum(x == v) for v in values], [np.sum(y == v) for v in values]])
        rare = table.sum(0) < 10
        table = np.concatenate([table[:, ~rare], table[:, rare].sum(1, keepdims=True)], 1) if rare.any() else table
        ps.append(chi2_contingency(table)[1] if table.shape[1] > 1 else 1.0)
    return min(ps)


def test_an_engine_drafting_samples_the_lockstep_s_distribution():
    pair, prompt = (small_vocabulary_model(0), small_vocabulary_model(1)), [[1, 2, 3]]
    args = dict(max_new_tokens=12, eos_token_id=5, pad_token_id=0, n=3000, batch_size=1024)
    js = torch.tensor([x for row in cross_sample(*pair, prompt, seed=2, **(args | {"n": 50})).js for x in row])
    args["eps"] = float(js.quantile(0.8))
    lockstep = cross_sample(*pair, prompt, method="lockstep", seed=3, **args)
    assert 0.05 < np.mean(lockstep.intervened_fraction()) < 0.5  # both policies have their turns
    reference = outcomes(lockstep)
    drafted = outcomes(cross_sample(*pair, prompt, method="draft", seed=4, drafter=Drafter(pair[0]), **args))
    assert smallest_p(reference, drafted) > 1e-3  # six tests at 1e-3 each: wrongly failing under 1% of seeds
    # the same test tells apart an engine that drafts from the wrong model or from the wrong prefix
    for wrong in (Drafter(pair[1]), Drafter(pair[0], stale=True)):
        broken = outcomes(cross_sample(*pair, prompt, method="draft", seed=4, drafter=wrong, **args))
        assert smallest_p(reference, broken) < 1e-6


def test_a_draft_that_breaks_the_contract_is_refused(pair, prompts, tokenizer):
    class Short(Drafter):
        def draft(self, prefixes, lengths, seeds, decoding):
            return [[4] * (m - 1) for m in lengths]

    with pytest.raises(RuntimeError, match=r"a draft must have that many ids in the vocabulary, fewer only when it "
                                           r"ends on a stop token"):
        cross_sample(*pair, prompts, eps=0.1, method="draft", drafter=Short(pair[0]), **kw(tokenizer))
    with pytest.raises(ValueError, match="an engine drafts for draft and verify only"):
        cross_sample(*pair, prompts, eps=0.1, method="lockstep", drafter=Drafter(pair[0]), **kw(tokenizer))
