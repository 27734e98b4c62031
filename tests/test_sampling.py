import torch
from tokenshift.models.sampling import sample


def prompts(tokenizer, texts):
    return [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in texts]


def test_greedy_matches_generate(tokenizer, tiny_model):
    ps = prompts(tokenizer, ["1234+5678=", "9+1="])  # different lengths: left padding is exercised
    ours = sample(tiny_model, ps, max_new_tokens=12, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, temperature=0)
    for p, got, stopped in zip(ps, ours.response_ids, ours.stopped):
        ref = tiny_model.generate(torch.tensor([p]), do_sample=False, max_new_tokens=12,
                                  eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
        ref = ref[0, len(p):].tolist()
        if stopped:
            ref = ref[: ref.index(tokenizer.eos_token_id)]
        assert got == ref


def test_batching_does_not_change_greedy_outputs(tokenizer, tiny_model):
    ps = prompts(tokenizer, ["1234+5678=", "9+1=", "55+5="])
    kw = dict(max_new_tokens=10, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, temperature=0)
    together = sample(tiny_model, ps, **kw)
    one_by_one = [sample(tiny_model, [p], **kw).response_ids[0] for p in ps]
    assert together.response_ids == one_by_one


def test_sampling_is_seeded(tokenizer, tiny_model):
    ps = prompts(tokenizer, ["1234+5678="])
    kw = dict(n=8, max_new_tokens=10, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    a, b, c = (sample(tiny_model, ps, seed=s, **kw).response_ids for s in (3, 3, 4))
    assert a == b and a != c
    assert len(a) == 8


def test_the_draw_follows_the_distribution():
    """Inverse-CDF draws against the distribution they read (chi-square, 5 tokens, 20k draws), and top-p
    truncation keeps exactly its set."""
    from scipy.stats import chisquare

    from tokenshift.models.sampling import draw

    probs = torch.tensor([0.5, 0.25, 0.15, 0.07, 0.03])
    logits = probs.log().expand(20_000, 5)
    uniforms = [torch.rand(20_000, 1, generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    counts = torch.bincount(draw(logits, 1.0, 1.0, uniforms[0]), minlength=5)
    assert chisquare(counts.numpy(), (probs * 20_000).numpy()).pvalue > 0.01
    truncated = torch.bincount(draw(logits, 1.0, 0.7, uniforms[1]), minlength=5)
    assert truncated[2:].sum() == 0 and abs(truncated[0] / 20_000 - 2 / 3) < 0.02
    assert draw(logits[:3], 0.0, 1.0, torch.rand(3, 1)).tolist() == [0, 0, 0]


def test_rows_that_stop_leave_the_batch_without_changing_any_token(tokenizer, tiny_model, monkeypatch):
    """Stopped rows are dropped from the batch (and its KV cache) as they accumulate; a row's tokens, and in
    cross-sampling which model drew them and the divergence, are the same whenever rows leave."""
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
    from tokenshift.models import sampling
    from tokenshift.organism import architecture

    other = architecture.new_model(tokenizer, architecture.ModelShape(hidden_size=16, num_layers=1, num_heads=2,
                                                                      intermediate_size=32), seed=1).eval()
    ps = prompts(tokenizer, ["1234+5678=", "9+1=", "55+5="])
    stops = list(range(0, len(tokenizer), 19))  # many stop tokens: rows end at different steps
    kw = dict(n=6, max_new_tokens=24, eos_token_id=stops, pad_token_id=tokenizer.pad_token_id, seed=5)
    runs = []
    for share in (float("inf"), sampling.COMPACT_SHARE, 0.0):  # never, as built, at every step
        monkeypatch.setattr(sampling, "COMPACT_SHARE", share)
        runs.append((sample(tiny_model, ps, **kw), cross_sample(tiny_model, other, ps, eps=0.01, **kw),
                     cross_sample(tiny_model, other, ps, random_fraction=[0.3] * 18, **kw)))
    lengths = [len(r) for r in runs[0][0].response_ids]
    assert len(set(lengths)) > 3 and not all(runs[0][0].stopped) and any(runs[0][0].stopped)
    for plain, cross, control in runs[1:]:
        assert plain.response_ids == runs[0][0].response_ids and plain.stopped == runs[0][0].stopped
        for got, want in ((cross, runs[0][1]), (control, runs[0][2])):
            assert got.response_ids == want.response_ids and got.chosen == want.chosen
            assert all(torch.allclose(torch.tensor(a), torch.tensor(b), atol=1e-6) for a, b in zip(got.js, want.js))
