"""Forced decoding in vLLM: a request whose ``extra_args`` name ``forced`` token ids emits exactly those, one per
step, while the log-probabilities it returns are the model's own (vLLM's default "raw_logprobs" are taken before
any logits processor). The intervention's engine reads a drafted chunk this way (``VllmEngine.force``): its
distribution at every drafted position, with the response so far read from the prefix cache and only the chunk
decoded, where a request for prompt log-probabilities would prefill the whole response again.

Imported by the engine's own processes (``VllmEngine`` names the class to vLLM)."""

from __future__ import annotations

import torch

try:
    from vllm.v1.sample.logits_processor import AdapterLogitsProcessor
except ImportError:  # the suite's own environment, where no engine runs (its module walks still import this)
    AdapterLogitsProcessor = object


class ForcedTokens(AdapterLogitsProcessor):
    def is_argmax_invariant(self) -> bool:
        return False  # it decides the greedy token too

    def new_req_logits_processor(self, params):
        forced = (params.extra_args or {}).get("forced")
        if not forced:
            return None

        def force(output_ids: list[int], logits: torch.Tensor) -> torch.Tensor:
            if len(output_ids) >= len(forced):
                return logits
            only = torch.full_like(logits, float("-inf"))
            only[forced[len(output_ids)]] = 0.0
            return only

        return force
