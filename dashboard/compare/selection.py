"""Which checkpoints the Comparison page pre-selects: the sidebar's, plus first, best and last."""

from __future__ import annotations

from collections.abc import Sequence

MIN_CHECKPOINTS = 2
MAX_CHECKPOINTS = 8


def default_checkpoints(names: Sequence[str], best: str | None = None, current: str | None = None) -> list[str]:
    """``current`` (the sidebar's checkpoint) plus the first, best and last of ``names`` (in step
    order), de-duplicated, in step order.

    ``best``/``current`` are ignored when not in ``names`` (e.g. a path from another machine
    whose folder was not copied).
    """
    if not names:
        return []
    picks = {names[0], names[-1]} | {n for n in (best, current) if n in names}
    return [n for n in names if n in picks][:MAX_CHECKPOINTS]


def add_checkpoint(names: Sequence[str], chosen: Sequence[str], extra: str | None) -> list[str]:
    """``chosen`` plus ``extra`` (a newly picked sidebar checkpoint) when it fits under the limit."""
    if extra not in names or extra in chosen or len(chosen) >= MAX_CHECKPOINTS:
        return [n for n in names if n in set(chosen)]
    return [n for n in names if n in {*chosen, extra}]


def limit_note(n_loadable: int, n_chosen: int) -> str | None:
    """What to say when the run has more checkpoints than can be compared at once, else None."""
    if n_loadable <= MAX_CHECKPOINTS:
        return None
    if n_chosen >= MAX_CHECKPOINTS:
        return (f"{n_chosen} of {n_loadable} checkpoints chosen — at most {MAX_CHECKPOINTS} can be compared at "
                "once; remove one to add another.")
    return f"This run has {n_loadable} loadable checkpoints; at most {MAX_CHECKPOINTS} can be compared at once."


def merge_selection(names: Sequence[str], carried: Sequence[str], defaults: Sequence[str]) -> list[str]:
    """Checkpoints carried over from another page win; unknown names are dropped; at most 8."""
    known = [n for n in carried if n in names]
    chosen = known if len(known) >= MIN_CHECKPOINTS else list(dict.fromkeys([*defaults, *known]))
    return [n for n in names if n in set(chosen)][:MAX_CHECKPOINTS]
