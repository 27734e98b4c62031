"""Sampling with an inference engine (vLLM), optional: the paper profile's ~4k-token responses in minutes, not
hours. Everything after sampling (judging, scoring, the analyses) reads the same responses schema as ever. The
engine also drafts the primary's chunks for cross-sampling by draft and verify (``VllmEngine.draft``), where the
suite's own forward passes decide every handover (``models.draft_verify``).

Exact about ids: prompts go in as token ids and are never re-tokenised (the engine does not even load a tokenizer);
the pair's whole stop set is the only stop rule (the engine's own EOS check is off); output-layer rows past the
tokenizer (Qwen pads 151,665 tokens to 151,936 rows) are pushed down by a logit bias, and a drawn one is refused
(``settings``, ``token_ids``); and every sampling setting is passed explicitly, with the checkpoint's
generation_config ignored (Qwen base configs cap new tokens at 2,048, instruct ones add top_k and a repetition
penalty). Each response is its own request, seeded from the run's seed and its number in the run, so a run is
reproducible on the same engine and hardware, however it is cut into units. The tokens follow the engine's numerics
and random streams: the same seed gives other tokens than the suite's decoder, drawn from the same distributions.

Starting it: the context is the longest prompt plus the new-token budget (``context_length``), not the model's
131k positions; the tensor-parallel size divides the attention heads (``tensor_parallel_size``); the memory
share is sized for the machine (``memory_share``: on a CPU it is a share of RAM), and what cannot fit is refused
with its fix before the engine starts. Requests stay queued a window ahead (``VllmEngine.sample_units``), so
the engine stays full while each work unit is handed back as soon as its responses are done.

vLLM pins its torch and transformers, so it lives in an environment of its own (``make env-vllm``): vLLM's CPU
build here and in ``make test``, the CUDA build of the same release on a GPU machine.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from ..core import seeding
from ..core.behaviour import Version

BEHAVIOUR = Version(1)

# what a profile may name; this module defers its torch-using imports, so checking a profile loads no model code
ENGINES = ("suite", "vllm")


# vLLM's GPU model runner takes at most 1,024 biased (or allowed) ids per request and fails in the engine core
# past that; it clamps a bias to [-100, 100]: -100 leaves a padding row e^-100 of its weight
MAX_BIASED_IDS = 1024
PADDING_BIAS = -100.0
GIB = 1024**3
CPU_OVERHEAD = 3 * GIB  # the engine's own process on a CPU (torch, vLLM, buffers), measured at 1.5-2.5 GiB
CPU_ROWS = 16  # sequences of the whole context whose KV a CPU engine reserves room for
WINDOW_PER_SEQ = 2  # requests kept queued per sequence the engine runs at once


class EngineUnavailable(RuntimeError):
    """The engine asked for is not installed here, or cannot start as asked."""


def require_vllm():
    """The vllm module, or a message that says how to get it."""
    try:
        import vllm
    except ImportError as e:
        raise EngineUnavailable(
            "the vllm engine is not installed in this environment: vLLM pins its own torch and transformers, so it "
            "gets an environment of its own; create it with `make env-vllm` and run the suite from there "
            "(.venv-vllm/bin/tokenshift ...), or sample with --engine suite") from e
    return vllm


def settings(decoding, rows: int, seed: int, max_new_tokens: int | None = None) -> dict:
    """vLLM ``SamplingParams`` keyword arguments for one response decoded as ``decoding`` (a
    ``sampling.Decoding``; ``max_new_tokens``: this request's own limit, default the decoding's), with its own
    ``seed``: every setting explicit. Padding rows of the output layer (``rows`` past the vocabulary) get a bias
    (no per-request id list: vLLM's GPU runner refuses more than 1,024 ids); past 1,024 of them, none, and
    ``token_ids`` refuses a drawn one."""
    vocab_size = decoding.vocab_size or rows
    padding = rows - vocab_size
    bias = {t: PADDING_BIAS for t in range(vocab_size, rows)} if 0 < padding <= MAX_BIASED_IDS else None
    return dict(n=1, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0, min_p=0.0,
                repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0,
                max_tokens=decoding.max_new_tokens if max_new_tokens is None else max_new_tokens, min_tokens=0,
                stop_token_ids=sorted(decoding.stop_ids), ignore_eos=True, seed=seed, detokenize=False,
                skip_special_tokens=False, logit_bias=bias)


def requests(prompts: list[list[int]], n: int, decoding, rows: int,
             responses: list[int] | None = None) -> tuple[list[dict], list[dict]]:
    """One request per response, prompt-major as the suite orders responses: the prompt's token ids, and
    ``settings`` with the response's own seed, derived from the decoding's seed and its number in the run
    (``responses``; default 0, 1, ...)."""
    from .sampling import response_numbers

    jobs = [i for i in range(len(prompts)) for _ in range(n)]
    return ([{"prompt_token_ids": list(prompts[i])} for i in jobs],
            [settings(decoding, rows, seeding.derive(decoding.seed, "engine response", r))
             for r in response_numbers(responses, len(jobs))])


def token_ids(output, stop_ids: set[int], r: int, vocab_size: int | None = None) -> list[int]:
    """One request's generated ids, ending on its stop token where it stopped: the engine may leave a special
    stop token out of its ids, and its ``stop_reason`` names it then. An id past the vocabulary is refused."""
    done = output.outputs[0]
    ids = list(done.token_ids)
    if done.finish_reason == "stop" and not set(ids) & stop_ids:
        if done.stop_reason not in stop_ids:
            raise RuntimeError(f"the engine stopped response {r} on {done.stop_reason!r}, which is not one of the "
                               f"pair's stop ids {sorted(stop_ids)}; it must stop on those only")
        ids.append(done.stop_reason)
    if vocab_size is not None and any(t >= vocab_size for t in ids):
        raise RuntimeError(f"the engine drew id {max(ids)} for response {r}, an output-layer row past the "
                           f"{vocab_size}-token vocabulary (padding): its logit must be far above the others; check "
                           "the checkpoint's output layer")
    return ids


def to_samples(outputs, n: int, stop_ids: set[int], vocab_size: int | None = None):
    """The engine's outputs (one per request, in order) as the suite's ``Samples``: each response cut at its
    first stop token, which is recorded, not kept."""
    from .sampling import Samples, split_at_stop

    out = Samples(prompt_index=[r // n for r in range(len(outputs))], response_ids=[], stopped=[], stop_token=[])
    for r, request in enumerate(outputs):
        ids, stop = split_at_stop(token_ids(request, stop_ids, r, vocab_size), stop_ids)
        out.response_ids.append(ids)
        out.stopped.append(stop is not None)
        out.stop_token.append(stop)
    return out


def context_length(prompts: list[list[int]], max_new_tokens: int) -> int:
    """The engine's context for these prompts: the longest one plus the new-token budget (a draft's prefix is
    at most that too), rather than the model's whole window (131,072 positions for Qwen2.5: 32 GiB of KV for
    a 32B model before the first request)."""
    return max(map(len, prompts)) + max_new_tokens


def tensor_parallel_size(heads: int, visible: int, asked: int | None = None) -> int:
    """GPUs to shard over: ``asked``, or the most of the ``visible`` ones that divide the attention heads (vLLM
    splits heads evenly: 3 GPUs for a 32B's 40 heads, or 8 for a 7B's 28, are refused); 1 on a CPU."""
    valid = [g for g in range(1, max(visible, 1) + 1) if heads % g == 0]
    if asked is None:
        return valid[-1]
    if asked not in valid:
        raise ValueError(f"--gpus-per-rank {asked}: vLLM splits the model's {heads} attention heads evenly over "
                         f"its GPUs, so their number must divide {heads} and be at most the {visible} visible: "
                         f"choose one of {valid}")
    return asked


def memory_share(*, weights: int, kv_per_token: int, context: int, gpus: int, total: int, available: int,
                 asked: float | None = None) -> float:
    """The share of each device's memory the engine may take (vLLM's ``gpu_memory_utilization``; on a CPU,
    of RAM): ``asked``, else 0.9 of a GPU, or on a CPU what the weights, the KV of ``CPU_ROWS`` whole contexts
    and the process need. Refuses, naming the fix, what cannot hold the weights and one whole context."""
    one_context = weights + kv_per_token * context  # per device: the model and one sequence, sharded over gpus
    if gpus == 0:
        need = CPU_OVERHEAD + weights + kv_per_token * context * CPU_ROWS
        share = asked or min(need, 0.9 * available) / total
        if CPU_OVERHEAD + one_context > min(share * total, available):
            raise EngineUnavailable(
                f"the engine needs {(CPU_OVERHEAD + one_context) / GIB:.1f} GiB of RAM (its process, the weights and "
                f"the KV cache of one {context}-token context), but gets {min(share * total, available) / GIB:.1f} "
                f"GiB ({available / GIB:.1f} of {total / GIB:.1f} GiB free): lower max_new_tokens, free memory, or "
                "give a larger memory share")
        return round(share, 4)
    share = asked or 0.9
    if one_context / gpus > share * total:
        raise EngineUnavailable(
            f"the engine needs {one_context / gpus / GIB:.1f} GiB per GPU (the weights and the KV cache of one "
            f"{context}-token context over {gpus} GPU(s)), but its share {share} of {total / GIB:.0f} GiB is "
            f"{share * total / GIB:.1f} GiB: raise the memory share (--engine-memory), shard over more GPUs "
            "(--gpus-per-rank), or lower max_new_tokens")
    return share


def _device_memory(gpus: int) -> tuple[int, int]:
    """(total, free) bytes of one GPU, or of RAM without GPUs."""
    if gpus:
        import torch

        free, total = torch.cuda.mem_get_info(0)
        return total, free
    import psutil

    memory = psutil.virtual_memory()
    return memory.total, memory.available


class VllmEngine:
    """A checkpoint in vLLM, sharded over ``gpus`` GPUs (tensor parallel; default: the most visible ones that
    divide its heads), its context ``max_model_len`` tokens (``context_length``; default: the model's), taking
    ``memory`` of each device's memory (``memory_share``; leave room where the suite loads models beside it);
    ``sample`` and ``sample_units`` as ``sampling.sample``, ``draft`` for cross-sampling by draft and verify
    (``models.draft_verify``)."""

    def __init__(self, source, dtype: str | None = None, gpus: int | None = None, max_model_len: int | None = None,
                 memory: float | None = None):
        import torch
        from transformers import AutoConfig

        from ..core import parallel
        from .loading import check_model_source, hub_arguments, kv_bytes_per_token, weight_bytes

        if parallel.current().world > 1:
            raise ValueError("run --engine vllm as one process, not under a launcher: vLLM shards a model over "
                             "GPUs itself (--gpus-per-rank GPUs, tensor parallel)")
        vllm = require_vllm()
        check_model_source(source)
        name, pinned = hub_arguments(source)
        config = AutoConfig.from_pretrained(name, **pinned)
        text = config.get_text_config()
        self.rows = text.vocab_size  # the output layer's rows
        positions = getattr(text, "max_position_embeddings", None)
        if max_model_len and positions and max_model_len > positions:
            raise EngineUnavailable(f"{source}: a prompt plus the new tokens take up to {max_model_len} positions, "
                                    f"more than the model's {positions}: lower max_new_tokens or shorten the prompts")
        visible = torch.cuda.device_count()
        tp = tensor_parallel_size(text.num_attention_heads, visible, gpus)
        dtype = dtype or "bfloat16"
        width = 4 if dtype == "float32" else 2
        kv_per_token = kv_bytes_per_token(config, width)
        total, available = _device_memory(visible)
        share = memory_share(weights=weight_bytes(source, config, width) // max(tp if visible else 1, 1),
                             kv_per_token=kv_per_token // (tp if visible else 1),
                             context=max_model_len or positions or 4096, gpus=tp if visible else 0, total=total,
                             available=available, asked=memory)
        self.version, self.params, self.source = vllm.__version__, vllm.SamplingParams, source
        try:
            self.llm = vllm.LLM(model=name, **pinned, skip_tokenizer_init=True, dtype=dtype,
                                tensor_parallel_size=tp, generation_config="vllm", max_model_len=max_model_len,
                                gpu_memory_utilization=share, enable_prefix_caching=True,
                                max_logprobs=-1,  # any number on request: a whole distribution where one is needed
                                logits_processors=["tokenshift.models.forced_tokens:ForcedTokens"],  # for force
                                # on a CPU, no prompt split over steps: vLLM then rewinds a seeded request's
                                # random generator, which a CPU generator cannot do (the engine core dies)
                                **({} if visible else {"enable_chunked_prefill": False}))
        except Exception as e:  # the engine core's own error is logged above; this says what to change
            raise EngineUnavailable(
                f"vLLM could not start {source} (context {max_model_len}, {tp} GPU(s), memory share {share}): "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}; if it ran out of memory, lower "
                "max_new_tokens or give a larger memory share (--engine-memory); see the engine's log above") from e
        scheduler = getattr(getattr(self.llm.llm_engine, "vllm_config", None), "scheduler_config", None)
        self.window = WINDOW_PER_SEQ * getattr(scheduler, "max_num_seqs", 256)
        self.work = Work()

    def sample_units(self, units: list[tuple[object, list[list[int]], list[int] | None]], decoding, *,
                     n: int) -> Iterator[tuple[object, object]]:
        """``sampling.decode``'s ``Samples`` for each unit (key, prompts, its responses' numbers in the run or
        None for 0, 1, ...), decoded as ``decoding`` says, yielded as each unit's responses are all done; units are
        queued while fewer than ``window`` requests wait, so the engine stays full. Each response's seed derives
        from the decoding's seed and its number."""
        from .sampling import check_settings

        for _, prompts, _ in units:
            check_settings(prompts, n, 1)
        engine, queue, numbers = self.llm.llm_engine, iter(units), itertools.count()
        running = {}  # unit number -> [its key, its requests still running, its outputs by request index]

        def submit() -> bool:
            unit = next(queue, None)
            if unit is None:
                return False
            key, prompts, responses = unit
            number = next(numbers)
            inputs, params = requests(prompts, n, decoding, self.rows, responses)
            for r, (prompt, p) in enumerate(zip(inputs, params)):
                engine.add_request(f"{number}:{r}", prompt, self.params(**p))
            self.work.add("sample", requests=len(inputs), prompt_tokens=sum(len(x["prompt_token_ids"]) for x in inputs))
            running[number] = [key, len(inputs), {}]
            return True

        while True:
            while sum(unit[1] for unit in running.values()) < self.window and submit():
                pass
            if not running:
                return
            for output in engine.step():
                if output.finished:
                    number, r = map(int, output.request_id.split(":"))
                    unit = running[number]
                    unit[1] -= 1
                    unit[2][r] = output
                    if not unit[1]:
                        del running[number]
                        done = [unit[2][i] for i in range(len(unit[2]))]
                        yield unit[0], to_samples(done, n, decoding.stop_ids, decoding.vocab_size)

    def sample(self, prompts: list[list[int]], *, n: int = 1, max_new_tokens: int, eos_token_id, vocab_size: int,
               temperature: float = 1.0, top_p: float = 1.0, seed: int = 0, responses: list[int] | None = None,
               **_):
        """``sampling.sample``'s ``Samples`` for one list of prompts, with its names (its ``pad_token_id`` and
        ``batch_size`` have no use here)."""
        from .sampling import Decoding

        decoding = Decoding(max_new_tokens, eos_token_id, 0, vocab_size, temperature, top_p, seed)
        return next(self.sample_units([(0, prompts, responses)], decoding, n=n))[1]

    def draft(self, prefixes: list[list[int]], lengths: list[int], seeds: list[int], decoding, *,
              logprobs: int | None = None, kind: str = "draft"):
        """Up to ``lengths[i]`` new tokens after each prefix (ids, as a prompt), drawn as ``decoding`` says with
        ``seeds[i]``; each ends on its stop token where it stopped. Prefixes share their beginnings round after
        round, which vLLM's prefix cache keeps. With ``logprobs``: (ids, per new token the model's ``logprobs``
        most likely ids -> log-probability, untempered and untruncated; {} where the engine gave none) per
        prefix. ``kind`` names the call in ``work``."""
        params = [self.params(**settings(decoding, self.rows, s, max_new_tokens=m), logprobs=logprobs)
                  for m, s in zip(lengths, seeds)]
        outputs = self._generate(prefixes, params, kind)
        ids = [token_ids(o, decoding.stop_ids, r, decoding.vocab_size) for r, o in enumerate(outputs)]
        if logprobs is None:
            return ids
        given = [[ranked(d) for d in o.outputs[0].logprobs or []] for o in outputs]
        return [(i, (g + [{}] * len(i))[: len(i)]) for i, g in zip(ids, given)]

    def force(self, prefixes: list[list[int]], chunks: list[list[int]], logprobs: int) -> list[list[dict[int, float]]]:
        """Teacher-forced: for each prefix, the model's ``logprobs`` most likely next ids (-> log-probability; the
        forced id among them) at each position of its chunk, each given the prefix and the chunk before it. The
        chunk is decoded as forced tokens (``forced_tokens``), the prefix read from the prefix cache."""
        params = [self.params(max_tokens=len(chunk), temperature=0.0, logprobs=logprobs, ignore_eos=True,
                              detokenize=False, skip_special_tokens=False, extra_args={"forced": list(chunk)})
                  for chunk in chunks]
        outputs = self._generate(prefixes, params, "force")
        return [[ranked(d) for d in o.outputs[0].logprobs] for o in outputs]

    def next_token(self, prefixes: list[list[int]], seeds: list[int], decoding, *, logprobs: int | None = None,
                   kind: str = "next token"):
        """One token after each prefix, drawn with ``seeds[i]``; with ``logprobs``, (token, the position's most
        likely ids -> log-probability (-1: every id)), as ``draft`` gives them."""
        drawn = self.draft(prefixes, [1] * len(prefixes), seeds, decoding, logprobs=logprobs, kind=kind)
        return [ids[0] for ids in drawn] if logprobs is None else [(ids[0], lps[0]) for ids, lps in drawn]

    def _generate(self, prefixes: list[list[int]], params: list, kind: str) -> list:
        if not prefixes:
            return []
        outputs = self.llm.generate([{"prompt_token_ids": list(x)} for x in prefixes], params, use_tqdm=False)
        self.work.add(kind, requests=len(prefixes), prompt_tokens=sum(map(len, prefixes)),
                      new_tokens=sum(len(o.outputs[0].token_ids) for o in outputs))
        return outputs


def ranked(logprobs: dict) -> dict[int, float]:
    """An engine's {id: Logprob} at one position as {id: log-probability}."""
    return {int(t): float(lp.logprob) for t, lp in logprobs.items()}


class Work:
    """What an engine was asked: per kind of call, the calls (one ``generate``), requests, prompt tokens read and
    new tokens drawn; the benchmark and ``plan`` count with it."""

    def __init__(self):
        self.kinds: dict[str, dict[str, int]] = {}

    def add(self, kind: str, **counts: int) -> None:
        entry = self.kinds.setdefault(kind, {"calls": 0})
        entry["calls"] += 1
        for name, value in counts.items():
            entry[name] = entry.get(name, 0) + value
