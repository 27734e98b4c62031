"""Benchmark the organism's RL step and the decoding loop under it, measured side by side in one run.

    .venv/bin/python benchmarks/bench_organism.py

1. One RL step of the default shape, split into its phases: sampling the rollouts (16 problems x 8 samples,
   up to 320 tokens), the old-policy and reference log-prob passes, and one update. The issue's target is
   <= 2 s per step on 2 cores. The model is the organism's shape with random weights and end-of-sequence
   disabled, so every rollout runs to the length limit (a trained model stops earlier: this is the worst case).
2. The decoding loop's two changes for long responses, each against what it replaced, on the same batch:
   the preallocated KV cache against transformers' DynamicCache (which concatenates, copying the whole cache
   every step) and the inverse-CDF draw against torch.multinomial. Same seeds, so the sampled tokens of the
   cache comparison are identical (checked).
"""

from __future__ import annotations

import time

import torch
from tokenshift.models import sampling
from tokenshift.models.batching import make_batch, token_logprobs
from tokenshift.organism import architecture, task
from tokenshift.organism.problems import OrganismProblems
from tokenshift.organism.tokenizer import build_tokenizer
from transformers import DynamicCache

NO_EOS = -1


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def multinomial_draw(logits, temperature, top_p, generator):
    if temperature == 0:
        return logits.argmax(-1)
    probs = sampling.top_p_truncate(sampling.log_probs(logits.float() / temperature)[1], top_p)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def main():
    torch.set_num_threads(2)
    tok = build_tokenizer()
    model = architecture.new_model(tok, architecture.ModelShape(), seed=0).eval()
    problems = OrganismProblems(task.sample_problems(16, "train", seed=0), tok)
    kw = dict(n=8, max_new_tokens=320, eos_token_id=NO_EOS, pad_token_id=tok.pad_token_id, seed=0)

    print("1. one RL step, 128 rollouts to 320 tokens (worst case: no rollout stops early)")
    t_sample, out = timed(lambda: sampling.sample(model, problems.prompts, **kw))
    batch = make_batch([problems.prompts[i] for i in out.prompt_index], out.response_ids, tok.pad_token_id)
    with torch.no_grad():
        t_logp, _ = timed(lambda: (token_logprobs(model, batch), token_logprobs(model, batch)))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def update():
        model.train()
        loss = -(token_logprobs(model, batch) * batch.response_mask).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()

    t_update, _ = timed(update)
    total = t_sample + t_logp + t_update
    print(f"   sampling {t_sample:.2f} s, old+reference log-probs {t_logp:.2f} s, update {t_update:.2f} s: "
          f"{total:.2f} s per step (target <= 2 s)")

    print("2. the decoding loop's changes, each against what it replaced (same batch, same seeds)")
    new_time, new = timed(lambda: sampling.sample(model, problems.prompts, **kw))
    preallocated = sampling._cache
    sampling._cache = lambda m, capacity: DynamicCache(config=m.config)
    try:
        old_time, old = timed(lambda: sampling.sample(model, problems.prompts, **kw))
    finally:
        sampling._cache = preallocated
    assert old.response_ids == new.response_ids, "the two caches must decode the same tokens"
    print(f"   preallocated cache {new_time:.2f} s vs DynamicCache {old_time:.2f} s: {old_time / new_time:.2f}x faster")
    inverse_cdf = sampling.draw
    sampling.draw = multinomial_draw
    try:
        multinomial_time, _ = timed(lambda: sampling.sample(model, problems.prompts, **kw))
    finally:
        sampling.draw = inverse_cdf
    print(f"   inverse-CDF draw {new_time:.2f} s vs torch.multinomial {multinomial_time:.2f} s: "
          f"{multinomial_time / new_time:.2f}x faster")


if __name__ == "__main__":
    main()
