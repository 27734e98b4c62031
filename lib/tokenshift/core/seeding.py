"""The one way the suite derives seeds: every random stream is named by the run's seed and labels that say
what it is for, e.g. ``derive(seed, "rl", "rollout", step)``.

Hashing the labels keeps streams apart: arithmetic schemes such as ``seed + 1`` or ``seed * K + i`` make one
part's stream coincide with another's (unit u's chooser with unit u + 1's sampler).
"""

from __future__ import annotations

import hashlib
import json

from .behaviour import Version

BEHAVIOUR = Version(1)


def derive(seed: int, *labels: str | int) -> int:
    """A 63-bit seed for the stream ``labels`` of a run seeded ``seed`` (fits ``torch.Generator.manual_seed``
    and ``random.Random``); the same arguments give the same seed on every machine."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"a seed must be an int, got {seed!r}")
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise TypeError(f"seed labels are strings or ints, got {label!r}")
    digest = hashlib.sha256(json.dumps([seed, *labels]).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
