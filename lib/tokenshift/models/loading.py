"""Loading any causal LM pair the analyses compare: the organism's directories, real checkpoints on disk, or
hub ids when online. Bad input is refused before any weights are read."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from jinja2 import TemplateError
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig
from transformers.utils import logging as hf_logging

from ..core import parallel
from ..core.behaviour import Version
from ..core.cache import COMMIT, hub_commit, split_revision
from ..core.paths import looks_like_path

BEHAVIOUR = Version(1)

# transformers draws a progress bar for every load and save: noise around the organism's many small
# checkpoints, which would bury the suite's own progress bars for the work that takes time.
hf_logging.disable_progress_bar()

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0", "false", "False")


def check_model_source(source) -> None:
    """Refuse a model that cannot be loaded here, saying why and what to pass instead."""
    path = Path(source).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model directory {path} has no config.json: pass a directory written by "
                                    "save_pretrained (or a hub download of one)")
        return
    repo_id, revision = split_revision(source)
    if not _HUB_ID.match(repo_id) or looks_like_path(source) or revision == "":
        raise FileNotFoundError(f"model path {source} does not exist: check the path, or pass a hub id such as "
                                "Qwen/Qwen2.5-32B (pinned: Qwen/Qwen2.5-32B@COMMIT) when online")
    if offline():
        raise ConnectionError(f"{source} is not a local directory and is read as a hub id, but the hub is offline "
                              f"(HF_HUB_OFFLINE is set): download it where you are online ({_download(source)}) "
                              "and pass DIR")


def is_pinned(source) -> bool:
    """Whether a model or dataset source reads the same bytes every time: a local path, or a hub id pinned to a
    full commit (``ID@COMMIT``)."""
    _, revision = split_revision(source)
    return Path(source).expanduser().exists() or bool(revision and COMMIT.match(revision))


def provenance(source) -> str:
    """Where a model comes from, as a run records it: a local directory, or a hub id at the commit it names or
    resolves to (from the local hub cache, or the hub when online)."""
    path = Path(source).expanduser()
    if path.exists():
        return f"local directory {path.resolve()}"
    repo_id, revision = split_revision(source)
    return f"{repo_id}@{hub_commit(repo_id, revision)}"


def _download(source) -> str:
    repo_id, revision = split_revision(source)
    return f"`hf download {repo_id}{f' --revision {revision}' if revision else ''} --local-dir DIR`"


def _unreachable(source, e: Exception) -> ConnectionError:
    return ConnectionError(f"could not load {source} ({type(e).__name__}: {str(e).splitlines()[0]}); if it is a hub "
                           f"id and this machine is offline, download it where you are online ({_download(source)}) "
                           "and pass DIR")


def hub_arguments(source) -> tuple[str, dict]:
    """``from_pretrained``'s name and keyword arguments for a directory, a hub id or a pinned ``ID@REVISION``."""
    repo_id, revision = split_revision(source)
    return repo_id, ({"revision": revision} if revision else {})


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def load_tokenizer(source):
    """The tokenizer of a local model directory or hub id, refusing what cannot be loaded here."""
    check_model_source(source)
    path = Path(source).expanduser()
    if path.is_dir() and not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise FileNotFoundError(f"model directory {path} holds no tokenizer (none of {list(TOKENIZER_FILES)}): save "
                                "the tokenizer beside the weights (tokenizer.save_pretrained(DIR)), or copy its files "
                                "from the model it was trained from")
    try:
        name, pinned = hub_arguments(source)
        return AutoTokenizer.from_pretrained(name, **pinned)
    except OSError as e:
        raise _unreachable(source, e) from e
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{source}: its tokenizer files cannot be read ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); save the tokenizer again with "
                         "save_pretrained") from None


def max_positions(source) -> int | None:
    """How many positions the model at ``source`` reads (its config's ``max_position_embeddings``; None if it
    names none)."""
    from transformers import AutoConfig

    name, pinned = hub_arguments(source)
    try:
        config = AutoConfig.from_pretrained(name, **pinned)
    except OSError as e:
        raise _unreachable(source, e) from e
    return getattr(config.get_text_config(), "max_position_embeddings", None)


def gpu_group(local_rank: int, world: int, visible: int, gpus_per_rank: int | None = None) -> list[int]:
    """The GPUs this process owns: local rank r of a node takes GPUs [r*G, (r+1)*G) for G ``gpus_per_rank``.
    By default one GPU per process under a launcher, and all of them for a single process."""
    if gpus_per_rank is None:
        gpus_per_rank = 1 if world > 1 else visible
    if isinstance(gpus_per_rank, bool) or not isinstance(gpus_per_rank, int) or gpus_per_rank < 1:
        raise ValueError(f"gpus_per_rank must be an integer of at least 1, got {gpus_per_rank!r}")
    first = local_rank * gpus_per_rank
    if first + gpus_per_rank > visible:
        raise ValueError(f"local rank {local_rank} with {gpus_per_rank} GPU(s) per rank would own GPUs "
                         f"{first}-{first + gpus_per_rank - 1}, but this node has {visible}: start at most "
                         f"{visible // gpus_per_rank} process(es) per node (torchrun --nproc-per-node), or lower "
                         "--gpus-per-rank")
    return list(range(first, first + gpus_per_rank))


def placement(group: list[int], free: dict[int, int]) -> dict:
    """``from_pretrained``'s device_map (and max_memory) for a process owning ``group``: a whole model on a
    lone GPU, else sharded over the group only, each GPU filled to 90% of its ``free`` bytes (transformers'
    own margin), so two models of a pair loaded one after the other share the group."""
    if len(group) == 1:
        return {"device_map": {"": group[0]}}
    return {"device_map": "auto", "max_memory": {g: int(0.9 * free[g]) for g in group}}


def weight_bytes(source, config, dtype_bytes: int) -> int:
    """The weights' size in ``dtype_bytes`` per parameter, from a local checkpoint's files (0 for a hub id,
    whose size is not known before download)."""
    path = Path(source).expanduser()
    files = [*path.glob("*.safetensors"), *path.glob("*.bin")] if path.is_dir() else []
    stored = {"float32": 4, "float64": 8}.get(str(getattr(config, "dtype", None) or "").replace("torch.", ""), 2)
    return sum(f.stat().st_size for f in files) * dtype_bytes // stored


def kv_bytes_per_token(config, width: int) -> int:
    """Bytes of keys and values one token takes in every layer's cache, at ``width`` bytes per number."""
    text = config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * width


def check_group_fits(need: int, free: list[int], gpus_per_rank: int | None) -> None:
    """Refuse, before any weights load, a pair that needs ``need`` bytes on a rank whose GPUs have ``free``
    bytes free, naming how many GPUs per rank would hold it (at 90% of their free memory)."""
    if need <= 0.9 * sum(free):
        return
    per_gpu = 0.9 * min(free)
    enough = -(-need // int(per_gpu)) if per_gpu > 0 else None
    fix = (f"give each rank {enough} GPUs (--gpus-per-rank {enough}) and start that many fewer processes per "
           "node" if enough else "free the GPUs")
    raise ValueError(f"the pair's weights take {need / 2**30:.1f} GiB, but this rank's {len(free)} GPU(s) (--gpus-per-"
                     f"rank {gpus_per_rank or len(free)}) have {sum(free) / 2**30:.1f} GiB free: {fix}, or load the "
                     "weights in bfloat16 (--dtype bfloat16)")


def check_pair_fits(sources, dtype: str | None = None, gpus_per_rank: int | None = None, rows: int = 0,
                    context: int = 0) -> None:
    """``check_group_fits`` for models ``sources`` on this rank's GPUs, with each model's KV cache for ``rows``
    sequences of ``context`` tokens; a batch whose caches cannot fit beside the weights is refused naming the
    largest that can (nothing to check on a CPU, or for hub ids not yet downloaded)."""
    if not torch.cuda.is_available():
        return
    width = DTYPES[dtype].itemsize if dtype else 2
    configs = {path: AutoConfig.from_pretrained(path) for path in (Path(s).expanduser() for s in sources)
               if path.is_dir()}
    weights = sum(weight_bytes(path, config, width) for path, config in configs.items())
    per_row = context * sum(kv_bytes_per_token(config, width) for config in configs.values())
    rank = parallel.current()
    group = gpu_group(rank.local_rank, rank.world, torch.cuda.device_count(), gpus_per_rank)
    free = [torch.cuda.mem_get_info(g)[0] for g in group]
    check_group_fits(weights, free, gpus_per_rank)
    if weights + rows * per_row > 0.9 * sum(free):
        fits = int((0.9 * sum(free) - weights) // per_row) if per_row else rows
        raise ValueError(f"a batch of {rows} sequences of {context} tokens needs {rows * per_row / 2**30:.1f} GiB of "
                         f"KV cache beside the pair's {weights / 2**30:.1f} GiB of weights, but this rank's GPUs have "
                         f"{sum(free) / 2**30:.1f} GiB free: at most {fits} fit; set the cross-sampling batch "
                         "(cross_batch_size in the profile's shifts, or --batch-size) to that or less")


def default_placement(gpus_per_rank: int | None = None) -> dict:
    """``placement`` for this process on this node's GPUs; the CPU when there are none."""
    if not torch.cuda.is_available():
        return {"device_map": None}
    rank = parallel.current()
    group = gpu_group(rank.local_rank, rank.world, torch.cuda.device_count(), gpus_per_rank)
    torch.cuda.set_device(group[0])  # this rank's own device: nothing it allocates lands on another rank's GPU
    return placement(group, {g: torch.cuda.mem_get_info(g)[0] for g in group} if len(group) > 1 else {})


def load_model(source, dtype: str | None = None, device_map="default", gpus_per_rank: int | None = None):
    """Model (eval mode) and tokenizer from a local directory or a hub id.

    ``dtype``: "float32", "bfloat16" or "float16"; by default bfloat16 on a GPU and float32 on the CPU.
    ``device_map``: as transformers takes it; by default ``default_placement(gpus_per_rank)``: one GPU per
    process under a launcher, or ``gpus_per_rank`` GPUs each with the model sharded over them, and all GPUs for a
    single process. Metrics are computed in fp32 whatever the weights' dtype.
    """
    check_model_source(source)
    if dtype is not None and dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {sorted(DTYPES)}")
    where = default_placement(gpus_per_rank) if device_map == "default" else {"device_map": device_map}
    torch_dtype = DTYPES[dtype] if dtype else (torch.bfloat16 if where["device_map"] is not None else torch.float32)
    tokenizer = load_tokenizer(source)
    try:
        name, pinned = hub_arguments(source)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=torch_dtype, **pinned, **where)
    except OSError as e:
        raise _unreachable(source, e) from e
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(f"{source}: the tokenizer has {len(tokenizer)} tokens but the output layer only "
                         f"{model.config.vocab_size} rows; the directory mixes files of different models")
    return model.eval(), tokenizer


def runtime(dtype: str | None = None) -> dict:
    """The numerics a model loaded by ``load_model`` runs with, for cache keys: device type and dtype."""
    gpu = torch.cuda.is_available()
    return {"device": "cuda" if gpu else "cpu", "dtype": dtype or ("bfloat16" if gpu else "float32")}


@dataclass(frozen=True)
class Placement:
    """Where a run's models live and in what precision. The dtype shapes the numbers (it enters cache keys
    through ``runtime``); the GPUs each rank owns and an engine's share of memory only shape how the work runs."""

    dtype: str | None = None  # None: bfloat16 on a GPU, float32 on the CPU
    gpus_per_rank: int | None = None  # None: ``default_placement``'s
    engine_memory: float | None = None  # an inference engine's share of each GPU (of RAM on a CPU); None: its own

    def load(self, source):
        return load_model(source, dtype=self.dtype, gpus_per_rank=self.gpus_per_rank)

    def runtime(self) -> dict:
        return runtime(self.dtype)

    def engine(self, source, prompts: list[list[int]], max_new_tokens: int, share: float | None = None):
        """``source`` as an inference engine (``models.engine.VllmEngine``) in the dtype the cache keys say
        (``runtime``), its context sized for ``prompts`` plus ``max_new_tokens``, taking the placement's memory
        share, else ``share`` (None: the engine's own choice)."""
        from .engine import VllmEngine, context_length

        return VllmEngine(source, dtype=self.runtime()["dtype"], gpus=self.gpus_per_rank,
                          max_model_len=context_length(prompts, max_new_tokens), memory=self.engine_memory or share)

    def check_fits(self, sources, rows: int = 0, context: int = 0) -> None:
        check_pair_fits(sources, self.dtype, self.gpus_per_rank, rows=rows, context=context)


DEFAULT_PLACEMENT = Placement()  # the device's own dtype, every GPU for a process (one under a launcher)


def model_name(model) -> str:
    return getattr(model.config, "_name_or_path", "") or type(model).__name__


def check_logits(logits: torch.Tensor, model, where) -> None:
    """Refuse NaN or +inf logits, or a row where every token is -inf, naming the model and ``where(i)`` of the
    first such row (its response and step or position). -inf alone is fine: a masked token has probability 0."""
    if torch.isfinite(logits).all():
        return
    bad = torch.isnan(logits).any(-1) | torch.isposinf(logits).any(-1) | torch.isneginf(logits).all(-1)
    if bad.any():
        raise ValueError(f"model {model_name(model)!r} gives non-finite logits (NaN, +inf, or -inf everywhere) for "
                         f"{where(int(bad.nonzero()[0, 0]))}: its weights or inputs are broken; check the "
                         "checkpoint (e.g. for NaN weights) before analysing it")


def check_same_vocabulary(base_tokenizer, tuned_tokenizer) -> None:
    """Refuse a pair whose vocabularies differ (added special tokens included), saying which tokens differ.

    Special-token *roles* may differ (a base model's EOS is <|endoftext|>, its instruct sibling's <|im_end|>):
    both are in the shared vocabulary, and the pair's stop set holds both. Output layers padded past the
    vocabulary may differ too: logits are sliced to the tokenizer's length.
    """
    a, b = base_tokenizer.get_vocab(), tuned_tokenizer.get_vocab()
    if a != b:
        only_a = sorted(set(a) - set(b))[:5]
        only_b = sorted(set(b) - set(a))[:5]
        moved = sorted(t for t in set(a) & set(b) if a[t] != b[t])[:5]
        raise ValueError(
            "the two models' vocabularies differ, so their distributions cannot be compared token by token: "
            f"only in base {only_a}, only in the tuned model {only_b}, different ids {moved} (first 5 of each). "
            "Pair models that share a tokenizer."
        )


def save(model, tokenizer, path) -> None:
    """A model directory that ``load_model`` (and ``AutoModelForCausalLM``) reads back."""
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def pad_id(tokenizer) -> int:
    """The id that pads batches: the tokenizer's pad token, else its EOS (Llama-style tokenizers have no pad
    token). Padded positions are masked or never read, so any id of the vocabulary serves."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


def generation_eos(source) -> list[int]:
    """The EOS ids a model's generation_config.json names (none if it has no such file)."""
    try:
        name, pinned = hub_arguments(source)
        eos = GenerationConfig.from_pretrained(name, **pinned).eos_token_id
    except OSError:
        return []
    return [eos] if isinstance(eos, int) else list(eos or [])


def end_of_turn(tokenizer) -> int | None:
    """The special token a tokenizer's chat template closes a turn with (ChatML's <|im_end|>, Llama 3's
    <|eot_id|>): the first special token after the words of an assistant turn the template renders. None
    without a template, when the template closes turns with plain text, or when it cannot render one."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    words = "tokenshift end-of-turn probe"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "1+1?"},
                                              {"role": "assistant", "content": words}], tokenize=False)
    except (TemplateError, ValueError, TypeError):  # e.g. a template that only renders user turns
        return None
    if words not in text:
        return None
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    for i in tokenizer(text[text.rindex(words) + len(words):], add_special_tokens=False)["input_ids"]:
        if i in special:
            return i
        if tokenizer.decode([i]).strip():
            return None  # the turn ends on plain text
    return None


def stop_ids(tokenizers, sources) -> tuple[int, ...]:
    """One stop set for a pair: every EOS its tokenizers and generation configs name (a base model stops on
    <|endoftext|>, its instruct sibling on <|im_end|>; sampled with one set, both end where either would), and
    the token each chat template ends a turn with, named by a config or not: a response never runs on into a
    turn of its own making."""
    tokenizers = list(tokenizers)
    ids = {tok.eos_token_id for tok in tokenizers if tok.eos_token_id is not None}
    ids.update(i for i in map(end_of_turn, tokenizers) if i is not None)
    for source in sources:
        ids.update(generation_eos(source))
    if not ids:
        raise ValueError("neither model nor tokenizer names an end-of-sequence token: set eos_token in the "
                         "tokenizer or eos_token_id in generation_config.json")
    return tuple(sorted(ids))
