"""Which checkpoints the Comparison page pre-selects: first, middle, best, last."""

from __future__ import annotations

from collections.abc import Sequence

MIN_CHECKPOINTS = 2
MAX_CHECKPOINTS = 8


def default_checkpoints(names: Sequence[str], best: str | None = None) -> list[str]:
    """First, middle, best and last of ``names`` (already in step order), de-duplicated, in step order.

    ``best`` is ignored when it is not one of ``names`` (e.g. a path from another machine
    whose folder was not copied).
    """
    if not names:
        return []
    picks = {names[0], names[(len(names) - 1) // 2], names[-1]}
    if best in names:
        picks.add(best)  # type: ignore[arg-type]
    return [n for n in names if n in picks][:MAX_CHECKPOINTS]


def merge_selection(names: Sequence[str], carried: Sequence[str], defaults: Sequence[str]) -> list[str]:
    """Checkpoints carried over from another page win; unknown names are dropped; at most 8."""
    known = [n for n in carried if n in names]
    chosen = known if len(known) >= MIN_CHECKPOINTS else list(dict.fromkeys([*defaults, *known]))
    return [n for n in names if n in set(chosen)][:MAX_CHECKPOINTS]
