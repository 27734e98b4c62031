"""Benchmark teacher-forced pair scoring (issue: scoring cost and memory), measured side by side in one run.

    .venv/bin/python benchmarks/bench_scoring.py

1. Time: scoring a batch vs the two plain forward passes it needs (each model's forward with logits), on
   the organism's shape and on Qwen2.5-0.5B's shape (151,936-row output layer); random weights, the final
   norm scaled so next-token distributions are as peaked as a trained model's, and once left flat, the
   worst case for top-p truncation. Target: <= 1.3x.
2. Memory: one 4,096-token sequence through a tiny-hidden model with a 151,936-row output layer; the peak
   resident memory above what the two models occupy, for our scoring and for the naive full-logits way.
   Target: <= 0.5 GB. Each measurement runs in a fresh process so peaks do not mix.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time

import torch
from tokenshift.models import scoring
from tokenshift.organism.tokenizer import build_tokenizer
from transformers import Qwen2Config, Qwen2ForCausalLM

QWEN_VOCAB = 151_936


class Vocab:
    """Stands in for a tokenizer of ``n`` tokens (scoring needs only its length, pad id and token names)."""

    def __init__(self, n: int):
        self.n, self.pad_token_id = n, 0

    def __len__(self):
        return self.n

    def convert_ids_to_tokens(self, ids):
        return [str(i) for i in ids]


def model(vocab: int, hidden: int, layers: int, seed: int, heads: int = 1, intermediate: int | None = None,
          peak: float = 1.0, context: int = 8192):
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate or 4 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=context, tie_word_embeddings=True)
    m = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        m.model.norm.weight.mul_(peak)  # scales the logits: random weights otherwise give near-uniform outputs
    return m


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def time_ratio(name, batch, length, tokenizer, repeats=3, **shape):
    base, rl = model(seed=0, **shape), model(seed=1, **shape)
    vocab = shape["vocab"]
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, vocab, (8,), generator=g).tolist() for _ in range(batch)]
    responses = [torch.randint(3, vocab, (length,), generator=g).tolist() for _ in range(batch)]
    ids = torch.tensor([p + r for p, r in zip(prompts, responses)])

    @torch.no_grad()
    def plain():
        base(input_ids=ids).logits, rl(input_ids=ids).logits

    def ours():
        scoring.score_pair(base, rl, tokenizer, prompts, responses, batch_size=batch, show_progress=False)

    plain(), ours()  # warm up
    t_plain, t_ours = best_of(plain, repeats), best_of(ours, repeats)
    print(f"{name:38s} batch {batch} x {length} tokens: two plain forwards {t_plain:.3f} s, "
          f"scoring {t_ours:.3f} s, ratio {t_ours / t_plain:.2f} (target <= 1.3)")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the parent through fork and exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def memory_child(way: str) -> None:
    torch.set_num_threads(2)
    base, rl = model(QWEN_VOCAB, 16, 1, 0, peak=40.0), model(QWEN_VOCAB, 16, 1, 1, peak=40.0)
    g = torch.Generator().manual_seed(0)
    prompt, response = [1, 2, 3], torch.randint(3, QWEN_VOCAB, (4096,), generator=g).tolist()
    before = rss_mb()
    with torch.no_grad():
        if way == "ours":
            table = scoring.score_pair(base, rl, Vocab(QWEN_VOCAB), [prompt], [response], show_progress=False)
            n = len(table)
        else:  # the naive way's first step alone: both models' full logits (its metrics would need many
            # more [T, V] temporaries and do not fit this machine)
            ids = torch.tensor([prompt + response])
            logits = [m(input_ids=ids).logits[0, 2:-1] for m in (base, rl)]  # both held at the peak
            n = logits[0].shape[0]
    peak = peak_rss_mb()
    print(json.dumps({"way": way, "positions": n, "models_mb": before, "peak_mb": peak, "extra_mb": peak - before}))


def memory(way: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--memory-child", way], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    print("== time: scoring vs two plain forward passes (best of repeats, same process) ==")
    tok = build_tokenizer()
    organism = dict(vocab=len(tok), hidden=64, layers=3, heads=4, intermediate=128)
    # peak 20: median next-token entropy ~0.001 nats, 94% of positions below 0.1 (the trained organism: 0.008, 91%)
    time_ratio("organism shape, peaked", 64, 48, tok, repeats=5, peak=20.0, **organism)
    time_ratio("organism shape, flat (worst case)", 64, 48, tok, repeats=5, **organism)
    qwen05 = dict(vocab=QWEN_VOCAB, hidden=896, layers=24, heads=14, intermediate=4864)
    time_ratio("Qwen2.5-0.5B shape, peaked", 1, 256, Vocab(QWEN_VOCAB), repeats=2, peak=40.0, **qwen05)
    time_ratio("Qwen2.5-0.5B shape, flat (worst case)", 1, 256, Vocab(QWEN_VOCAB), repeats=2, **qwen05)
    print("== memory: one 4,096-token sequence, 151,936-row output layer, hidden 16 ==")
    ours, naive = memory("ours"), memory("naive")
    for r in (ours, naive):
        print(f"{r['way']:6s} {r['positions']} positions: peak {r['peak_mb']:.0f} MB, models and runtime "
              f"{r['models_mb']:.0f} MB, extra {r['extra_mb']:.0f} MB")
    print(f"scoring's extra memory: {ours['extra_mb'] / 1024:.2f} GB (target <= 0.5 GB); "
          f"the naive way's full logits alone: {naive['extra_mb'] / 1024:.2f} GB "
          f"({naive['extra_mb'] / max(ours['extra_mb'], 1):.1f}x)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--memory-child":
        memory_child(sys.argv[2])
    else:
        main()
