"""Sampling with an inference engine (vLLM), optional: the paper profile's ~4k-token responses in minutes, not
hours. Everything after sampling (judging, scoring, the analyses) reads the same responses schema as ever. The
engine also drafts the primary's chunks for cross-sampling by draft and verify (``VllmEngine.draft``), where the
suite's own forward passes decide every handover (``models.draft_verify``).

Exact about ids: prompts go in as token ids and are never re-tokenised (the engine does not even load a
tokenizer); the pair's whole stop set is the only stop rule (the engine's own EOS check is off); output-layer
rows past the tokenizer (Qwen pads 151,665 tokens to 151,936 rows) are masked, as the suite's decoder slices
them; and every sampling setting is passed explicitly, with the checkpoint's generation_config ignored (Qwen
base configs cap new tokens at 2,048, instruct ones add top_k and a repetition penalty). Each response is its
own request, seeded from its work unit's seed and its index, so a run is reproducible on the same engine and
hardware. The tokens follow the engine's numerics and random streams: the same seed gives other tokens than the
suite's decoder, drawn from the same distributions.

vLLM pins its own torch and transformers, so it lives in an environment of its own (``make env-vllm``).
Until ``benchmarks/gpu_check.py`` has passed on a GPU, this path is unverified.
"""

from __future__ import annotations

from ..core import seeding

# what a profile may name; this module defers its torch-using imports, so checking a profile loads no model code
ENGINES = ("suite", "vllm")


class EngineUnavailable(RuntimeError):
    """The engine asked for is not installed here."""


def require_vllm():
    """The vllm module, or a message that says how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise EngineUnavailable(
            "the vllm engine is not installed in this environment: vLLM pins its own torch and transformers, so it "
            "gets an environment of its own; create it with `make env-vllm` (on a machine with a GPU) and run the "
            "suite from there (.venv-vllm/bin/tokenshift ...), or sample with --engine suite") from e
    return vllm


def settings(*, max_new_tokens: int, stop_ids: set[int], vocab_size: int, rows: int, temperature: float,
             top_p: float, seed: int) -> dict:
    """vLLM ``SamplingParams`` keyword arguments for one response: every setting explicit."""
    return dict(n=1, temperature=temperature, top_p=top_p, top_k=0, min_p=0.0, repetition_penalty=1.0,
                presence_penalty=0.0, frequency_penalty=0.0, max_tokens=max_new_tokens, min_tokens=0,
                stop_token_ids=sorted(stop_ids), ignore_eos=True, seed=seed, detokenize=False,
                skip_special_tokens=False, allowed_token_ids=list(range(vocab_size)) if vocab_size < rows else None)


def requests(prompts: list[list[int]], n: int, seed: int, **kw) -> tuple[list[dict], list[dict]]:
    """One request per response, prompt-major as the suite orders responses: the prompt's token ids, and
    ``settings`` with the response's own seed (derived from ``seed``, the work unit's, and its index)."""
    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    return ([{"prompt_token_ids": list(prompts[i])} for i in jobs],
            [settings(seed=seeding.derive(seed, "engine response", r), **kw) for r in range(len(jobs))])


def token_ids(output, stop_ids: set[int], r: int) -> list[int]:
    """One request's generated ids, ending on its stop token where it stopped: the engine may leave a special
    stop token out of its ids, and its ``stop_reason`` names it then."""
    done = output.outputs[0]
    ids = list(done.token_ids)
    if done.finish_reason == "stop" and not set(ids) & stop_ids:
        if done.stop_reason not in stop_ids:
            raise RuntimeError(f"the engine stopped response {r} on {done.stop_reason!r}, which is not one of the "
                               f"pair's stop ids {sorted(stop_ids)}; it must stop on those only")
        ids.append(done.stop_reason)
    return ids


def to_samples(outputs, n: int, stop_ids: set[int]):
    """The engine's outputs (one per request, in order) as the suite's ``Samples``: each response cut at its
    first stop token, which is recorded, not kept."""
    from .sampling import Samples, split_at_stop

    out = Samples(prompt_index=[r // n for r in range(len(outputs))], response_ids=[], stopped=[], stop_token=[])
    for r, request in enumerate(outputs):
        ids, stop = split_at_stop(token_ids(request, stop_ids, r), stop_ids)
        out.response_ids.append(ids)
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
    return out


class VllmEngine:
    """A checkpoint in vLLM, sharded over ``gpus`` GPUs (tensor parallel; default: every visible one), using at
    most ``memory`` of each GPU's memory (leave room where the suite loads models beside it); ``sample`` as
    ``sampling.sample``, ``draft`` for cross-sampling by draft and verify (``models.draft_verify``)."""

    def __init__(self, source, dtype: str | None = None, gpus: int | None = None, max_model_len: int | None = None,
                 memory: float = 0.9):
        import torch
        from transformers import AutoConfig

        from ..core import parallel
        from .loading import hub_arguments

        if parallel.current().world > 1:
            raise ValueError("run --engine vllm as one process, not under a launcher: vLLM shards a model over "
                             "GPUs itself (--gpus-per-rank GPUs, tensor parallel)")
        vllm = require_vllm()
        name, pinned = hub_arguments(source)
        self.version, self.params = vllm.__version__, vllm.SamplingParams
        self.rows = AutoConfig.from_pretrained(name, **pinned).get_text_config().vocab_size  # output layer's rows
        self.llm = vllm.LLM(model=name, **pinned, skip_tokenizer_init=True, dtype=dtype or "bfloat16",
                            tensor_parallel_size=gpus or max(torch.cuda.device_count(), 1), generation_config="vllm",
                            max_model_len=max_model_len, gpu_memory_utilization=memory,
                            enable_prefix_caching=True)

    def sample(self, prompts: list[list[int]], *, n: int = 1, max_new_tokens: int, eos_token_id, vocab_size: int,
               temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, **_):
        from .sampling import check_settings, stop_set

        check_settings(prompts, n, max_new_tokens, temperature, top_p, 1)
        stop_ids = stop_set(eos_token_id)
        inputs, params = requests(prompts, n, seed, max_new_tokens=max_new_tokens, stop_ids=stop_ids,
                                  vocab_size=vocab_size, rows=self.rows, temperature=temperature, top_p=top_p)
        outputs = self.llm.generate(inputs, [self.params(**p) for p in params], use_tqdm=False)
        return to_samples(outputs, n, stop_ids)

    def draft(self, prefixes: list[list[int]], lengths: list[int], seeds: list[int], *, stop_ids: set[int],
              vocab_size: int, temperature: float, top_p: float) -> list[list[int]]:
        """Up to ``lengths[i]`` new tokens after each prefix (ids, as a prompt), drawn with ``seeds[i]``; each
        ends on its stop token where it stopped. Prefixes share their beginnings round after round, which
        vLLM's prefix cache keeps."""
        params = [self.params(**settings(max_new_tokens=m, stop_ids=stop_ids, vocab_size=vocab_size, rows=self.rows,
                                         temperature=temperature, top_p=top_p, seed=s))
                  for m, s in zip(lengths, seeds)]
        outputs = self.llm.generate([{"prompt_token_ids": list(x)} for x in prefixes], params, use_tqdm=False)
        return [token_ids(o, stop_ids, r) for r, o in enumerate(outputs)]
