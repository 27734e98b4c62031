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
    counts = torch.bincount(draw(logits, 1.0, 1.0, torch.Generator().manual_seed(0)), minlength=5)
    assert chisquare(counts.numpy(), (probs * 20_000).numpy()).pvalue > 0.01
    truncated = torch.bincount(draw(logits, 1.0, 0.7, torch.Generator().manual_seed(1)), minlength=5)
    assert truncated[2:].sum() == 0 and abs(truncated[0] / 20_000 - 2 / 3) < 0.02
    assert draw(logits[:3], 0.0, 1.0, torch.Generator()).tolist() == [0, 0, 0]
