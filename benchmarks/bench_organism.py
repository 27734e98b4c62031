"""Benchmark the organism's RL step and what it is made of, measured side by side in one run.

    .venv/bin/python benchmarks/bench_organism.py

Runs on the default organism's base model (read from the artifact cache; built first if missing, ~5 min),
on two threads, the issue's target machine being a 2-core CPU.

1. The first RL steps of the SimpleRL-like run as ``rl.rl_step`` takes them, split into sampling the 128
   rollouts and the teacher-forced passes (reference, the update's forward and backward). The target is
   <= 2 s per step. The first steps are the slowest of a run: the base rambles to the length limit most often.
2. Each speed-up of the decoding loop and the teacher-forced passes against what it replaced, on the same
   problems and seeds:
   - stopped rows leave the batch and its KV cache, against decoding every row to the last one's end
     (same tokens: checked);
   - the preallocated KV cache against transformers' DynamicCache, which concatenates (same tokens: checked;
     both decoding every row to the end, as DynamicCache cannot drop rows);
   - the inverse-CDF draw against torch.multinomial;
   - teacher-forced passes over rows grouped by length (16 at a time) against one padded pass with a padding
     mask, forward and backward.
"""

from __future__ import annotations

import time

import torch
from tokenshift.models import batching, sampling
from tokenshift.models.loading import load_model
from tokenshift.organism import base_model, rl, task
from tokenshift.organism.problems import OrganismProblems
from tokenshift.suite import profiles
from transformers import DynamicCache


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def multinomial(seed: int):
    generator = torch.Generator().manual_seed(seed)

    def draw(logits, temperature, top_p, uniform):
        probs = sampling.top_p_truncate(sampling.log_probs(logits.float() / temperature)[1], top_p)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return draw


def one_padded_pass(model, batch):
    """What ``token_logprobs`` did before: the whole batch at its longest width, with a padding mask."""
    logits = model(input_ids=batch.ids, attention_mask=batch.attention_mask).logits[:, :-1].float()
    return logits.log_softmax(-1).gather(-1, batch.ids[:, 1:, None]).squeeze(-1)


def patched(module, name, value, fn):
    before = getattr(module, name)
    setattr(module, name, value)
    try:
        return timed(fn)
    finally:
        setattr(module, name, before)


def main():
    torch.set_num_threads(2)
    config = profiles.organism_config("default")
    base, tok = load_model(base_model(config), dtype="float32", device_map=None)
    policy, _ = load_model(base_model(config), dtype="float32", device_map=None)
    run = config.part("simplerl")
    opt = torch.optim.AdamW(policy.parameters(), lr=run.lr)

    print(f"1. the first RL steps, {run.rollouts} rollouts of up to {run.max_new_tokens} tokens, 2 threads")
    spent = {}
    for name in ("sample", "token_logprobs"):
        def clocked(*args, _fn=getattr(rl, name), _name=name, **kwargs):
            t, out = timed(lambda: _fn(*args, **kwargs))
            spent[_name] = spent.get(_name, 0.0) + t
            return out
        setattr(rl, name, clocked)
    for step in range(1, 4):
        spent.clear()
        total, stats = timed(lambda: rl.rl_step(policy, base, opt, tok, run, step))
        print(f"   step {step}: {total:.2f} s (target <= 2 s): sampling {spent['sample']:.2f} s, teacher-forced "
              f"passes {spent['token_logprobs']:.2f} s, the rest (loss, backward, optimizer) "
              f"{total - spent['sample'] - spent['token_logprobs']:.2f} s; mean length {stats['response_length']:.0f}")

    print("2. each change against what it replaced (same problems and seeds)")
    problems = OrganismProblems(task.sample_problems(run.prompts_per_step, "train", seed=0), tok)
    kw = dict(n=run.samples_per_prompt, max_new_tokens=run.max_new_tokens, eos_token_id=problems.stop_ids,
              pad_token_id=tok.pad_token_id, seed=0)
    decode = lambda: sampling.sample(base, problems.prompts, **kw)  # noqa: E731
    t_new, new = timed(decode)
    cut = sum(not s for s in new.stopped)
    t_whole, whole = patched(sampling, "COMPACT_SHARE", float("inf"), decode)
    assert whole.response_ids == new.response_ids, "leaving the batch must not change a token"
    print(f"   stopped rows leave the batch: {t_new:.2f} s vs every row to the end {t_whole:.2f} s, "
          f"{t_whole / t_new:.2f}x faster ({cut} of {len(new.stopped)} rollouts ran to the limit)")
    # transformers' cache cannot drop rows, so this pair decodes every row to the end
    dynamic = lambda: patched(sampling, "new_cache", lambda m, capacity: DynamicCache(config=m.config), decode)[1]  # noqa: E731
    t_dyn, dyn = patched(sampling, "COMPACT_SHARE", float("inf"), dynamic)
    assert dyn.response_ids == new.response_ids, "the two caches must decode the same tokens"
    print(f"   preallocated cache {t_whole:.2f} s vs DynamicCache {t_dyn:.2f} s (every row to the end): "
          f"{t_dyn / t_whole:.2f}x faster")
    t_mult, _ = patched(sampling, "draw", multinomial(0), decode)
    print(f"   inverse-CDF draw {t_new:.2f} s vs torch.multinomial {t_mult:.2f} s: {t_mult / t_new:.2f}x faster")

    batch = batching.make_batch([problems.prompts[i] for i in new.prompt_index], new.with_stop_tokens(),
                                tok.pad_token_id)
    with torch.no_grad():
        t_grouped, grouped = timed(lambda: batching.token_logprobs(base, batch))
        t_padded, padded = timed(lambda: one_padded_pass(base, batch))
    gap = ((grouped - padded) * batch.response_mask).abs().max().item()
    print(f"   teacher-forced pass, rows grouped by length {t_grouped:.2f} s vs one padded pass {t_padded:.2f} s: "
          f"{t_padded / t_grouped:.2f}x faster (largest log-prob difference {gap:.1e})")
    policy.train()
    backward = lambda fn: (fn(policy, batch) * batch.response_mask).sum().backward()  # noqa: E731
    t_grouped, _ = timed(lambda: backward(batching.token_logprobs))
    t_padded, _ = timed(lambda: backward(one_padded_pass))
    print(f"   forward + backward, grouped {t_grouped:.2f} s vs padded {t_padded:.2f} s: {t_padded / t_grouped:.2f}x faster")


if __name__ == "__main__":
    main()
