"""What the answer graders share about LaTeX text."""

from __future__ import annotations

from ..core.behaviour import Version

BEHAVIOUR = Version(1)


def braced(text: str, open_at: int) -> str | None:
    """The content of the brace group whose ``{`` is at ``open_at``, nested groups included; None when it never
    closes (a response cut off by the length limit)."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at + 1 : i]
    return None
