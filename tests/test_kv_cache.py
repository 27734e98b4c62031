"""The KV cache in the installed transformers (run in both environments, the suite's and the engine's: they
name the cache keyword differently): a forward with the cache grows it, and decoding with it token by token
gives the logits of one full forward, for transformers' own cache and the suite's preallocated one."""

import pytest
import torch
from tokenshift.models import kv_cache
from tokenshift.models.sampling import left_pad, positions
from transformers import DynamicCache


def test_the_keyword_is_one_the_forward_takes(tiny_model):
    import inspect

    keyword = kv_cache.cache_keyword(type(tiny_model))
    assert keyword in inspect.signature(type(tiny_model).forward).parameters

    class Unknown:
        def forward(self, input_ids, **kwargs):  # swallows any keyword, as a model's forward does
            pass

    with pytest.raises(TypeError, match=r"Unknown.forward takes its KV cache under neither of .* in transformers"):
        kv_cache.cache_keyword(Unknown)


@pytest.mark.parametrize("make", [lambda m, n: DynamicCache(config=m.config), kv_cache.new_cache],
                         ids=["DynamicCache", "preallocated"])
def test_cached_decoding_grows_the_cache_and_matches_a_full_forward(tokenizer, tiny_model, make):
    # left padding, positions and the cache as the decoders use them
    prompts = [[tokenizer.bos_token_id, *tokenizer(t)["input_ids"]] for t in ["1234+5678=", "9+1="]]
    continuation = torch.tensor([[5, 6, 7], [8, 9, 10]])
    ids, mask = left_pad(prompts, tokenizer.pad_token_id)
    cache = make(tiny_model, ids.shape[1] + continuation.shape[1])
    step_ids, pos, stepwise = ids, positions(mask), []
    with torch.no_grad():
        for t in range(continuation.shape[1] + 1):
            stepwise.append(kv_cache.forward(tiny_model, step_ids, mask, pos, cache)[:, -1])
            assert kv_cache.cached_length(cache) == ids.shape[1] + t  # a cache the forward ignored stays at 0
            if t == continuation.shape[1]:
                break
            step_ids = continuation[:, t : t + 1]
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
            pos = pos[:, -1:] + 1
        for row, p in enumerate(prompts):
            full = tiny_model(torch.tensor([p + continuation[row].tolist()])).logits[0, len(p) - 1 :]
            assert torch.allclose(torch.stack([s[row] for s in stepwise]), full, atol=1e-5)


def test_a_forward_without_the_cache_would_be_caught(tiny_model):
    # what the wrong keyword does: the model ignores the cache, which then stays empty
    cache = DynamicCache(config=tiny_model.config)
    with torch.no_grad():
        tiny_model(input_ids=torch.tensor([[3, 4, 5]]), use_cache=True, not_the_cache=cache)
    assert kv_cache.cached_length(cache) == 0
