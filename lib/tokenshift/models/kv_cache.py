"""The KV cache the suite's decoders keep, and the one place that knows how this transformers takes it.

transformers renamed the forward pass's cache keyword (``past_key_values`` up to 5.2x, ``cache`` after), and a
model's forward passes an unknown keyword on to attention, which ignores it: with the wrong name every step
would see only its own new tokens, with finite, plausible, wrong logits and no error. So the keyword is read
from the model's own signature (``cache_keyword``), and ``forward`` is the only call that passes a cache; the
tests check in each supported environment that the cache grows and that incremental logits equal a full pass.
"""

from __future__ import annotations

import functools
import inspect

import torch
import transformers
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from ..core.behaviour import Version

BEHAVIOUR = Version(1, libraries=("torch", "transformers"))
KEYWORDS = ("cache", "past_key_values")  # newest first


@functools.cache
def cache_keyword(model_class: type) -> str:
    """The keyword under which ``model_class.forward`` takes its KV cache in the installed transformers."""
    taken = inspect.signature(model_class.forward).parameters
    for name in KEYWORDS:
        if name in taken:
            return name
    raise TypeError(f"{model_class.__name__}.forward takes its KV cache under neither of {KEYWORDS} in transformers "
                    f"{transformers.__version__}: install a transformers the suite supports (pyproject.toml)")


def forward(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
            cache: DynamicCache) -> torch.Tensor:
    """The model's logits for ``input_ids`` after what ``cache`` holds, which grows by them (inputs moved to
    the model's device; the logits stay where they come out)."""
    device = model.device
    return model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                 position_ids=position_ids.to(device), use_cache=True,
                 **{cache_keyword(type(model)): cache}).logits


class PreallocatedLayer(DynamicLayer):
    """A growing KV cache layer that writes into buffers sized for the whole decode: transformers' own layer
    concatenates, copying everything it holds at every step, which made long decodes quadratic."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.device, self.is_initialized, self.filled = key_states.device, True, 0
            shape = (*key_states.shape[:2], self.capacity, key_states.shape[-1])
            self.buffers = key_states.new_empty(shape), value_states.new_empty(shape)
        n = key_states.shape[-2]
        for buffer, states in zip(self.buffers, (key_states, value_states)):
            buffer[:, :, self.filled : self.filled + n] = states
        self.filled += n
        self.keys, self.values = (buffer[:, :, : self.filled] for buffer in self.buffers)
        return self.keys, self.values

    def keep(self, rows: torch.Tensor) -> None:
        """Drop every batch row but ``rows`` (indices into the current batch)."""
        self.buffers = tuple(buffer[rows.to(buffer.device)] for buffer in self.buffers)
        self.keys, self.values = (buffer[:, :, : self.filled] for buffer in self.buffers)


def new_cache(model, capacity: int, layer=PreallocatedLayer) -> DynamicCache:
    """An empty cache for ``model`` whose layers hold ``capacity`` positions per row."""
    cache = DynamicCache(config=model.config)
    cache.layers = [layer(capacity) for _ in cache.layers]
    return cache


def cached_length(cache: DynamicCache) -> int:
    """How many positions the cache holds (0 when a forward ignored it)."""
    return int(cache.get_seq_length())
