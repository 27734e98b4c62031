"""Benchmark the lockstep cross-sampling decoder, measured side by side in one run.

    .venv/bin/python benchmarks/bench_cross_sampling.py

1. Throughput against ``generate`` of one model on the same batch and length: the lockstep decoder runs two
   models, so 0.5x is the limit; target >= 0.45x.
2. Against the no-cache approach of earlier token-shift code (both models re-run on the full prefix at
   every step) at 256 generated tokens: target >= 10x faster.
Both on a 4-layer, 256-wide Qwen2 with a 4,096-token vocabulary (random weights), EOS disabled so every
run decodes the full length.
"""

from __future__ import annotations

import time

import torch
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.models.divergence import js_divergence, log_probs
from transformers import Qwen2Config, Qwen2ForCausalLM

VOCAB, NO_EOS = 4096, -1


def model(seed: int):
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=VOCAB, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)
    return Qwen2ForCausalLM(config).eval()


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


@torch.no_grad()
def no_cache(primary, intervention, prompts, steps, eps, generator):
    """Re-run both models on the whole prefix at every step (equal-length prompts: no padding needed)."""
    ids = torch.tensor(prompts)
    for _ in range(steps):
        p, q = (log_probs(m(input_ids=ids).logits[:, -1])[1] for m in (primary, intervention))
        choose = js_divergence(p, q) > eps
        token = torch.multinomial(torch.where(choose[:, None], q, p), 1, generator=generator)
        ids = torch.cat([ids, token], dim=1)


def main():
    a, b = model(0), model(1)
    g = torch.Generator().manual_seed(0)
    batch, prompt_len = 16, 16
    prompts = torch.randint(3, VOCAB, (batch, prompt_len), generator=g).tolist()
    kw = dict(eos_token_id=NO_EOS, pad_token_id=0, seed=0)

    def lockstep(steps):
        cross_sample(a, b, prompts, eps=0.05, max_new_tokens=steps, method="lockstep", **kw)

    def generate(steps):
        a.generate(torch.tensor(prompts), do_sample=True, max_new_tokens=steps, min_new_tokens=steps,
                   pad_token_id=0, top_k=0)

    lockstep(8), generate(8)  # warm up
    steps = 128
    t_gen, t_lock = min(timed(lambda: generate(steps)) for _ in range(2)), min(timed(lambda: lockstep(steps)) for _ in range(2))
    tokens = batch * steps
    print(f"batch {batch} x {steps} new tokens: generate (one model) {tokens / t_gen:.0f} tok/s, "
          f"lockstep (two models) {tokens / t_lock:.0f} tok/s, ratio {t_gen / t_lock:.2f} (target >= 0.45, limit 0.5)")

    steps = 256
    t_lock = timed(lambda: lockstep(steps))
    t_naive = timed(lambda: no_cache(a, b, prompts, steps, 0.05, torch.Generator().manual_seed(0)))
    print(f"batch {batch} x {steps} new tokens: lockstep {t_lock:.1f} s, no-cache {t_naive:.1f} s, "
          f"{t_naive / t_lock:.1f}x faster (target >= 10x)")


if __name__ == "__main__":
    main()
