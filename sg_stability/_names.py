"""Layer names in tables: full where they fit, otherwise shortened so that rows stay distinct and short."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

#: marks a shortened name
ELLIPSIS = "…"


def short_names(names: Sequence[str], limit: int) -> dict[str, str]:
    """Each name as shown in a column of ``limit`` characters: whole if it fits, else its last dotted parts
    (``…blocks.3.attn.q_lif``, as many as fit), else cut in the middle. Names never collide: two that would
    look the same are cut in the middle instead, or kept whole."""
    out = {n: n if len(n) <= limit else _suffix(n, limit) or _middle(n, limit) for n in names}
    for attempt in (lambda n, others: _around(n, _first_difference(n, others), limit), lambda n, others: n):
        shown = Counter(out.values())
        clash = [n for n in names if shown[out[n]] > 1 or (out[n] != n and out[n] in out)]
        for n in clash:
            if out[n] != n:
                out[n] = attempt(n, [m for m in clash if m != n and out[m] == out[n]] or list(names))
    return out


def shortened_note(shown: dict[str, str]) -> str | None:
    """The line to print under a table whose names were shortened, else None."""
    if all(k == v for k, v in shown.items()):
        return None
    return f"({ELLIPSIS}: a layer name shortened to fit the table)"


def _suffix(name: str, limit: int) -> str | None:
    parts = name.split(".")
    for k in range(len(parts) - 1, 0, -1):  # the most trailing parts that fit
        short = ELLIPSIS + ".".join(parts[-k:])
        if len(short) <= limit:
            return short if len(short) > limit // 2 else None  # too little left: a middle cut shows more
    return None


def _first_difference(name: str, others: Sequence[str]) -> int:
    """The first position where ``name`` differs from the most similar of ``others``."""
    def common(a: str, b: str) -> int:
        return next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))

    return max((common(name, o) for o in others if o != name), default=0)


def _around(name: str, at: int, limit: int) -> str:
    """The ``limit - 2`` characters of ``name`` around position ``at``, with an ellipsis where it was cut."""
    width = limit - 2
    start = max(0, min(at - width // 2, len(name) - width))
    end = start + width
    return (ELLIPSIS if start > 0 else "") + name[start:end] + (ELLIPSIS if end < len(name) else "")


def _middle(name: str, limit: int) -> str:
    head = max((limit - 1) // 2, 1)
    tail = max(limit - 1 - head, 1)
    return name[:head] + ELLIPSIS + name[-tail:]
