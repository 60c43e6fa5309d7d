"""May they: every generating or scoring action on a page passes :func:`admitted` (public mode).

:func:`admitted` applies the public limits and waits for a place at the one admission gate
(:mod:`dashboard.admission`), showing the place in line instead of a silent spinner;
:func:`generation_turn` is a FIFO turn on one checkpoint (one generation) inside an admitted job,
or — for a single answer — both at once. Local use has no gate: only the checkpoint turns.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard.admission import GATE, Job, check_job, client_key
from dashboard.formatting import markdown_safe
from dashboard.models.loading import LoadedModel
from dashboard.models.turns import WaitCallback
from dashboard.public import LIMITS, proxy_hops, public_mode
from dashboard.ui.resources import get_pool
from dashboard.ui.visitor import current_visitor


def this_client() -> str:
    """This session's client (network address) for the gate's fairness."""
    return client_key(st.context.ip_address, dict(st.context.headers), proxy_hops())


def max_new_tokens_cap(local: int = 4096) -> int:
    """What a max-new-tokens control may offer: ``local`` here, the public cap on a public server."""
    return min(local, LIMITS.max_new_tokens) if public_mode() else local


def max_examples(checkpoints: int, local: int) -> int:
    """What an examples control may offer for ``checkpoints`` checkpoints (public: the per-job cap)."""
    if not public_mode():
        return local
    return max(1, min(local, LIMITS.max_sweep_generations // max(1, checkpoints)))


def max_batch_size(local: int = 64) -> int:
    """What a batch-size control may offer (public: the per-turn cap, so turns stay short for others)."""
    return min(local, LIMITS.max_batch_size) if public_mode() else local


@contextmanager
def admitted(job: Job) -> Iterator[None]:
    """Public mode: refuse ``job`` over a limit (``VisitorLimitError``) or wait for its place; local: no-op."""
    visitor = current_visitor()
    if visitor is None:
        yield
        return
    check_job(job)
    notice = st.empty()

    def on_wait(ahead: int, waited_s: float) -> None:
        notice.info(f"Waiting for a place: {ahead} job(s) of other visitors before yours · waited {waited_s:.0f} s. "
                    f"This public demo runs {LIMITS.concurrent_jobs} jobs at once, taking visitors in turn.",
                    icon=":material/schedule:")

    with GATE.admit(visitor, this_client(), on_wait=on_wait):
        notice.empty()
        yield


@contextmanager
def generation_turn(checkpoint: Path, job: Job | None = None) -> Iterator[LoadedModel]:
    """This session's FIFO turn on ``checkpoint`` (one generation), the wait shown.

    With ``job``, the turn is that whole job (admitted first); without, the caller is already
    inside its own :func:`admitted` block. Raises ``VisitorLimitError`` (a limit) or
    ``QueueTimeoutError`` (waited too long), both with a message for the user.
    """
    with ExitStack() as stack:
        if job is not None:
            stack.enter_context(admitted(job))
        notice = st.empty()
        loaded = stack.enter_context(get_pool().turn(checkpoint, on_wait=queue_notice(checkpoint, notice)))
        notice.empty()
        yield loaded


def queue_notice(checkpoint: Path, notice: Any) -> WaitCallback:
    """``on_wait`` that shows the session's place in ``checkpoint``'s queue in ``notice`` (an ``st.empty()``)."""

    def on_wait(ahead: int, waited_s: float) -> None:
        notice.info(f"Queued for **{markdown_safe(checkpoint.name)}**: {ahead} request(s) ahead of you "
                    f"(you are number {ahead + 1} in line) · waited {waited_s:.0f} s. "
                    "Requests are served in arrival order, one generation each.", icon=":material/schedule:")

    return on_wait
