"""Benchmark cross-sampling with both models in the engine, side by side in one run with its two references:
one-model engine sampling of the same prompts (the floor: what sampling the primary alone costs) and the per-token
method of the closest public code (RLVR-Directions: at every token, one one-token ``generate`` with the top
log-probabilities on each model's engine, the handover decided between them).

    .venv-vllm/bin/python benchmarks/bench_engine_cross_sampling.py [--responses-per-prompt 32]

The pair: the Qwen-shaped tiny pair of the engine tests (2 layers, two heads of 64 dimensions, a byte vocabulary;
its base half-learnt the answers its RL model knows), built on the fly; vLLM's CPU build. Each timing is the
fastest of three runs taken in turn, so that a slow spell of the machine falls on all alike. Printed, and written
to docs/benchmarks/engine_cross_sampling.md with the date and the machine: per eps, the handed-over share of steps,
wall time, engine calls and requests, tokens, and the ratios engine backend / per-token method (target: >= 5x
faster) and engine backend / one-model sampling (target: within 2.5x).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import tempfile
from pathlib import Path

REPORT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks" / "engine_cross_sampling.md"
EPS = (math.inf, 0.3, 0.1)  # never, ~2% and ~6% of steps handed over on this pair
NEW = 40


def per_token(primary, intervention, prompts, *, n, eps, seed, stops, vocab, top_p, js_top_p):
    """The per-token method: both engines asked for one token and their top log-probabilities at every step;
    the intervention's token where the top-p JS between them exceeds eps. Returns the handed-over share."""
    from tokenshift.core import seeding
    from tokenshift.models.engine_cross import LISTED, js, nucleus
    from tokenshift.models.sampling import Decoding

    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    kept, handed, steps = [[] for _ in jobs], 0, 0
    live = list(range(len(jobs)))
    decoding = Decoding(1, stops, 0, vocab, top_p=top_p)
    while live:
        prefixes = [prompts[jobs[r]] + kept[r] for r in live]
        seeds = [seeding.derive(seed, "per token", r, len(kept[r])) for r in live]
        ours, theirs = (e.next_token(prefixes, seeds, decoding, logprobs=LISTED) for e in (primary, intervention))
        for r, (a, lp_a), (b, lp_b) in zip(live, ours, theirs):
            sets = nucleus(lp_a, js_top_p, vocab), nucleus(lp_b, js_top_p, vocab)
            hand = None not in sets and js(*sets) > eps  # an uncovered nucleus counts as agreement here
            kept[r].append(b if hand else a)
            handed, steps = handed + hand, steps + 1
        live = [r for r in live if len(kept[r]) < NEW and kept[r][-1] not in stops]
    return handed / steps


def counted(engines, fn):
    """fn's result, and the engine calls and requests it made (both engines together)."""
    for e in engines:
        e.work.kinds.clear()
    out = fn()
    kinds = [k for e in engines for k in e.work.kinds.values()]
    return out, sum(k["calls"] for k in kinds), sum(k.get("requests", 0) for k in kinds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses-per-prompt", type=int, default=32)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import qwen_like
    from bench_draft_verify import fastest  # each timing the fastest of three runs taken in turn
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
    from tokenshift.models import engine
    from tokenshift.problems import problem_sets
    from transformers import AutoTokenizer

    root = Path(tempfile.mkdtemp(prefix="bench-engine-cross-"))
    base, rl, _ = qwen_like.build(root, hidden=128, padded=False, base_steps=25)
    tok = AutoTokenizer.from_pretrained(rl)
    prompts = [problem_sets.math_prompt(tok, p["problem"]) for p in qwen_like.PROBLEMS]
    stops = set(tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]))
    context = max(map(len, prompts)) + NEW
    engines = tuple(engine.VllmEngine(str(m), dtype="float32", max_model_len=context) for m in (base, rl))
    n, vocab = args.responses_per_prompt, len(tok)
    common = dict(max_new_tokens=NEW, eos_token_id=stops, vocab_size=vocab, temperature=1.0, top_p=0.7, seed=7)
    rows = []
    for eps in EPS:
        runs = {"one model": lambda: engines[0].sample(prompts, n=n, **common),
                "engine backend": lambda: cross_sample(*engines, prompts, method="engine", eps=eps, n=n,
                                                       pad_token_id=0, js_top_p=0.7, **common),
                "per token": lambda: per_token(*engines, prompts, n=n, eps=eps, seed=7, stops=stops, vocab=vocab,
                                               top_p=0.7, js_top_p=0.7)}
        times, outs = fastest(runs)
        work = {name: counted(engines, fn)[1:] for name, fn in runs.items()}
        cross = outs["engine backend"]
        tokens = {name: sum(map(len, outs[name].response_ids)) for name in ("one model", "engine backend")}
        rows.append({"eps": eps, "share": sum(map(sum, cross.chosen)) / sum(map(len, cross.chosen)),
                     "per_token_share": outs["per token"], "times": times, "work": work, "tokens": tokens})
    lines = report(rows, n * len(prompts))
    print("\n".join(lines))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")
    print(f"wrote {REPORT}")
    return 0


def report(rows, responses: int) -> list[str]:
    machine = f"{platform.node() or 'unknown host'}, {os.cpu_count()} CPUs, {platform.platform()}"
    lines = [f"# Cross-sampling in the engine: benchmark ({datetime.date.today().isoformat()}; {machine})", "",
             "Written by `benchmarks/bench_engine_cross_sampling.py`; vLLM's CPU build. The pair: 2 layers, 128 wide "
             f"(two heads of 64), a 259-token byte vocabulary; {responses} responses of up to {NEW} tokens, "
             "temperature 1.0, top-p 0.7, top-p (0.7) JS. Times: the fastest of three runs taken in turn.", "",
             "| eps | handed over | one model (s) | engine backend (s) | per token (s) | backend vs per token | "
             "backend vs one model | calls (one / backend / per token) | requests (one / backend / per token) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, w = r["times"], r["work"]
        lines.append(f"| {r['eps']} | {r['share']:.1%} | {t['one model']:.2f} | {t['engine backend']:.2f} | "
                     f"{t['per token']:.2f} | {t['per token'] / t['engine backend']:.1f}x faster | "
                     f"{t['engine backend'] / t['one model']:.1f}x slower | "
                     f"{w['one model'][0]} / {w['engine backend'][0]} / {w['per token'][0]} | "
                     f"{w['one model'][1]} / {w['engine backend'][1]} / {w['per token'][1]} |")
    lines += ["", "Tokens drawn: " + "; ".join(f"eps {r['eps']}: {r['tokens']['engine backend']} cross-sampled, "
                                              f"{r['tokens']['one model']} by one model" for r in rows) + ".",
              "The per-token method's handed-over share: " + ", ".join(f"{r['per_token_share']:.1%}" for r in rows)
              + " (its own random streams)."]
    return lines


if __name__ == "__main__":
    sys.exit(main())
