"""Benchmark cross-sampling by draft and verify against the lockstep and against sampling one model, side by
side in one run, at intervention rates of about 0%, 2%, 10% and 50%.

    TOKENSHIFT_CACHE=... .venv/bin/python benchmarks/bench_draft_verify.py [--qwen]

For each rate, eps starts at the matching quantile of the JS divergence along the primary's own samples and is
moved until a draft-and-verify run hands over about that share of steps (handovers change the text, so the
quantile alone can miss the rate several-fold); then three decodes of the same prompts and seed, each the fastest
of three runs taken in turn: the primary alone (``sample``), the lockstep and draft and verify. Printed: the
realised share of handed-over steps, tokens per second, and the ratios draft / one model (the limit is 1.0; target
>= 0.8 at 2%) and draft / lockstep (the lockstep sits near 0.5 of one model; at 50% draft and verify should not
fall much below it). Also how many responses both decoders wrote token for token alike.

Pairs: the organism's base and DAPO-like model (the default profile; built on first use), and with --qwen a
Qwen2.5-0.5B-shaped pair of random models (24 layers, 896 wide, 151,936-token vocabulary; EOS disabled).
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
from tokenshift.models.sampling import sample

RATES = (0.0, 0.02, 0.10, 0.50)


def fastest(fns: dict, rounds: int = 3) -> tuple[dict, dict]:
    """Each function's fastest of ``rounds`` runs, taken in turn (one, lockstep, draft, one, ...) so that a slow
    spell of a noisy machine falls on all of them alike; and each one's output."""
    times, outs = {}, {}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            outs[name] = fn()
            times[name] = min(times.get(name, math.inf), time.perf_counter() - start)
    return times, outs


def handed_share(out) -> float:
    return sum(map(sum, out.chosen)) / sum(map(len, out.chosen))


def calibrated_eps(primary, intervention, prompts, kw, js, rate, tries: int = 4) -> float:
    """The eps, of up to ``tries`` JS quantiles, whose run hands over the share of steps nearest ``rate`` (on a
    log scale); each next quantile scales the previous one's tail by rate / realised share."""
    if rate == 0:
        return float("inf")
    tail, best = rate, None
    for _ in range(tries):
        eps = float(js.quantile(1 - tail))
        realised = handed_share(cross_sample(primary, intervention, prompts, eps=eps, method="draft", **kw))
        miss = abs(math.log(max(realised, 1e-6) / rate))
        if best is None or miss < best[0]:
            best = (miss, eps)
        if miss < math.log(1.25):
            break
        tail = min(max(tail * rate / max(realised, 1e-6), 1e-4), 0.999)
    return best[1]


def compare(name, primary, intervention, prompts, kw):
    js = torch.tensor([x for row in cross_sample(primary, intervention, prompts, **kw).js for x in row])
    print(f"\n{name}: {len(prompts)} prompts x {kw['n']} samples, up to {kw['max_new_tokens']} tokens")
    print(f"{'rate':>6} {'eps':>10} {'handed':>7} {'one model':>10} {'lockstep':>9} {'draft':>7}   draft/one  "
          f"draft/lockstep  same tokens")
    for rate in RATES:
        eps = calibrated_eps(primary, intervention, prompts, kw, js, rate)
        times, outs = fastest({
            "one": lambda: sample(primary, prompts, **kw),
            "lockstep": lambda: cross_sample(primary, intervention, prompts, eps=eps, method="lockstep", **kw),
            "draft": lambda: cross_sample(primary, intervention, prompts, eps=eps, method="draft", **kw)})
        (t_one, t_lock, t_draft), (one, lock, draft) = times.values(), outs.values()
        speed = lambda samples, t: sum(map(len, samples.with_stop_tokens())) / t
        handed = handed_share(lock)
        s_one, s_lock, s_draft = speed(one, t_one), speed(lock, t_lock), speed(draft, t_draft)
        print(f"{rate:6.2f} {eps:10.3g} {handed:7.2%} {s_one:8.0f}/s {s_lock:7.0f}/s {s_draft:5.0f}/s   "
              f"{s_draft / s_one:9.2f}  {s_draft / s_lock:14.2f}  "
              f"{sum(x == y for x, y in zip(lock.response_ids, draft.response_ids))}/{len(lock.response_ids)}")


def organism_pair():
    from tokenshift.models.loading import load_model
    from tokenshift.suite import pairs

    found = pairs.for_profile("default", show_progress=False)
    base, tok = load_model(found.base)
    dapo, _ = load_model(found.tuned["dapo"])
    problems = found.problems(32, 0)
    kw = dict(n=2, max_new_tokens=320, eos_token_id=problems.stop_ids, pad_token_id=tok.pad_token_id,
              vocab_size=len(tok), seed=0, batch_size=64)
    return base, dapo, problems.prompts, kw


def qwen_pair():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    def model(seed):
        torch.manual_seed(seed)
        config = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                             num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                             tie_word_embeddings=True)
        return Qwen2ForCausalLM(config).eval()

    g = torch.Generator().manual_seed(0)
    prompts = torch.randint(3, 151_000, (4, 32), generator=g).tolist()
    kw = dict(n=1, max_new_tokens=48, eos_token_id=-1, pad_token_id=0, seed=0, batch_size=4)
    return model(0), model(1), prompts, kw


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qwen", action="store_true", help="also the Qwen2.5-0.5B-shaped random pair (slow on CPU)")
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    compare("organism (base, DAPO-like)", *organism_pair())
    if args.qwen:
        compare("Qwen2.5-0.5B-shaped random pair", *qwen_pair())


if __name__ == "__main__":
    main()
