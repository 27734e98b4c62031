"""A response's tokens depend only on the models, its prompt, the seed and its number in the run: decoded in
batches of 1, 7 or 256, in work units cut any way, the responses and the cross-sampling handovers are the same.

With a lookup-table model, whose logits cannot depend on the batch (a row's logits are read from a table by its
last token and position), they are bitwise identical; with a real small model, whose arithmetic rounds
differently in other batch shapes, the share of responses that differ is counted and bounded."""

from types import SimpleNamespace

import polars as pl
import pytest
import torch
from conftest import TINY_SHAPE
from reference_lockstep import lockstep as reference
from transformers import Qwen2Config
from tokenshift.analyses import cross_sampling, reference_responses
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.core.cache import plain
from tokenshift.models.sampling import sample
from tokenshift.organism import architecture

VOCAB, STOP, PAD = 12, 11, 0
SIZES = (1, 7, 256)


class Lookup(torch.nn.Module):
    """A causal LM whose next-token logits are ``table[last token, position % 3]``: nothing a row computes
    reads another row. It keeps a KV cache as a transformer does (one layer of empty states), so the decoders'
    cache bookkeeping (growing, compacting) runs as usual."""

    def __init__(self, seed: int):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.table = torch.nn.Parameter(3 * torch.randn(VOCAB, 3, VOCAB, generator=generator), requires_grad=False)
        self.table.data[:, :, PAD] = -torch.inf  # never drawn
        self.config = Qwen2Config(vocab_size=VOCAB, hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                                  num_key_value_heads=1)

    @property
    def device(self):
        return self.table.device

    def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False, past_key_values=None):
        if past_key_values is not None:
            empty = torch.zeros(*input_ids.shape[:1], 1, input_ids.shape[1], 0)
            past_key_values.layers[0].update(empty, empty)
        if position_ids is None:
            position_ids = torch.arange(input_ids.shape[1]).expand_as(input_ids)
        return SimpleNamespace(logits=self.table[input_ids, position_ids % 3])


def prompts(count: int = 40) -> list[list[int]]:
    generator = torch.Generator().manual_seed(7)
    lengths = torch.randint(1, 9, (count,), generator=generator)
    return [torch.randint(1, STOP, (int(n),), generator=generator).tolist() for n in lengths]


ARGS = dict(n=3, max_new_tokens=20, eos_token_id=STOP, pad_token_id=PAD, seed=5)


def test_lookup_logits_are_the_reference_s_with_and_without_a_cache():
    model, ps = Lookup(0), prompts(3)
    out = reference(model, Lookup(1), ps, **ARGS)  # no cache, one response at a time
    assert out.response_ids == cross_sample(model, Lookup(1), ps, batch_size=2, **ARGS).response_ids


def test_sampling_is_the_same_at_every_batch_size():
    model, ps = Lookup(0), prompts()
    runs = [sample(model, ps, batch_size=b, **ARGS) for b in SIZES]
    assert all(r.response_ids == runs[0].response_ids and r.stop_token == runs[0].stop_token for r in runs)
    lengths = {len(ids) for ids in runs[0].response_ids}
    assert len(lengths) > 3 and any(runs[0].stopped) and not all(runs[0].stopped)  # ragged: rows leave early


@pytest.mark.parametrize("method", cross_sampling.SUITE_METHODS)
@pytest.mark.parametrize("rule", ["divergence", "random", "capped"])
def test_cross_sampling_handovers_are_the_same_at_every_batch_size(method, rule):
    pair, ps = (Lookup(0), Lookup(1)), prompts()
    extra = {"divergence": dict(eps=0.2), "random": dict(random_fraction=[0.1 * (i % 4) for i in range(120)]),
             "capped": dict(eps=0.05, cap=2)}[rule]
    runs = [cross_sample(*pair, ps, method=method, batch_size=b, **extra, **ARGS) for b in SIZES]
    for run in runs[1:]:
        assert (run.response_ids, run.chosen, run.changed, run.js) == \
            (runs[0].response_ids, runs[0].chosen, runs[0].changed, runs[0].js)
    handed = sum(map(sum, runs[0].chosen))
    assert 0 < handed < sum(map(len, runs[0].chosen))
    expected = reference(*pair, ps, **extra, **ARGS)
    assert (expected.response_ids, expected.chosen) == (runs[0].response_ids, runs[0].chosen)


def test_a_responses_tokens_follow_its_number_not_its_place():
    model, ps = Lookup(0), prompts()
    whole = sample(model, ps, **ARGS)
    tail = sample(model, ps[30:], responses=range(90, 120), batch_size=7, **ARGS)
    assert tail.response_ids == whole.response_ids[90:]
    other_seed = sample(model, ps, **{**ARGS, "seed": 6})
    assert other_seed.response_ids != whole.response_ids
    with pytest.raises(ValueError, match="responses must number each of the 9 responses once"):
        sample(model, ps[:3], responses=[0, 1, 2, 3, 4, 5, 6, 7, 7], **ARGS)


class Problems(SimpleNamespace):
    """The little of a problem set that the runners read."""

    def __len__(self):
        return len(self.prompts)


def run_cut(root, pair, problems, per_unit: int, batch: int) -> list[pl.DataFrame]:
    """Reference sampling and a cross-sampling sweep, in units of ``per_unit`` prompts, ``batch`` at a time."""
    config = reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=16, prompts_per_unit=per_unit,
                                                batch_size=batch)
    reference_responses.sample_responses(pair[0], problems, config, root / "responses.parquet", root / "parts",
                                         show_progress=False)
    sweep = cross_sampling.SweepConfig(eps_grid=(float("inf"), 0.2), samples_per_problem=2, max_new_tokens=16,
                                       prompts_per_unit=per_unit, batch_size=batch)
    cross_sampling.run_sweep(*pair, problems, sweep, root / "sweep.parquet", root / "sweep-parts",
                             show_progress=False)
    # the cache identity of both settings ignores how the work is cut
    assert plain(config) == plain(reference_responses.SamplingConfig(samples_per_problem=2, max_new_tokens=16))
    assert plain(sweep) == plain(cross_sampling.SweepConfig(eps_grid=(float("inf"), 0.2), samples_per_problem=2,
                                                            max_new_tokens=16))
    return [pl.read_parquet(root / name) for name in ("responses.parquet", "sweep.parquet")]


def test_units_and_batches_change_nothing_in_a_run(tmp_path):
    pair = (Lookup(0), Lookup(1))
    tokenizer = type("Tok", (), {"pad_token_id": PAD, "__len__": lambda self: VOCAB})()
    problems = Problems(prompts=prompts(12), stop_ids=[STOP], tokenizer=tokenizer)
    cuts = [(1, 1), (3, 7), (64, 256)]
    runs = [run_cut(tmp_path / f"{u}-{b}", pair, problems, u, b) for u, b in cuts]
    assert all(f.equals(g) for run in runs[1:] for f, g in zip(run, runs[0]))
    assert runs[0][1]["count"].sum() > 0  # the sweep handed over somewhere


# A real model's rows round differently in other batch shapes (other padding, other kernels); a draw whose
# uniform number sits within that rounding of a boundary can flip, and the response differs from there on.
REAL_DIFFER_BOUND = 0.05


def test_a_real_models_responses_differ_across_batch_sizes_in_few_places(tokenizer):
    pair = tuple(architecture.new_model(tokenizer, TINY_SHAPE, seed=s).eval() for s in (0, 1))
    texts = [f"{a}+{b}=" for a in range(10, 25) for b in (7, 93)]
    ps = [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in texts]
    args = dict(n=2, max_new_tokens=24, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                seed=1)
    eps = float(torch.tensor([x for row in cross_sample(*pair, ps[:4], **args).js for x in row]).median())
    for run in (lambda b: sample(pair[0], ps, batch_size=b, **args),
                lambda b: cross_sample(*pair, ps, eps=eps, batch_size=b, **args)):
        outs = [run(b) for b in SIZES]
        differ = [sum(a != b for a, b in zip(o.response_ids, outs[0].response_ids)) / len(o.response_ids)
                  for o in outs[1:]]
        print("share of responses that differ from batch 1's:", differ)
        assert max(differ) <= REAL_DIFFER_BOUND
