"""Public mode: the rules for a dashboard that strangers open (a Hugging Face Space).

On when the Space's environment says so (``SPACE_ID`` is set) or with ``VLMLAB_PUBLIC=1``;
``VLMLAB_PUBLIC=0`` turns it off (a private Space). In public mode every browser gets an
unguessable visitor token (kept in the page URL, see README), history is per visitor, and the
limits below keep one visitor from taking both cores of a small Space. No Streamlit here: the
pages apply these rules through :mod:`dashboard.ui.visitor`.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from dashboard.generation import GenerationInputError, GenerationSettings

PUBLIC_ENV = "VLMLAB_PUBLIC"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")


def public_mode(env: Mapping[str, str] | None = None) -> bool:
    """``VLMLAB_PUBLIC`` if set (1/0, true/false …), else whether this runs on a Space (``SPACE_ID``)."""
    env = os.environ if env is None else env
    value = env.get(PUBLIC_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return bool(env.get("SPACE_ID", "").strip())


@dataclass(frozen=True)
class PublicLimits:
    """Per-visitor limits in public mode (one place; the banner and the messages quote them)."""

    max_new_tokens: int = 64
    max_sweep_generations: int = 64
    """Eval sweeps: examples × checkpoints per run of the sweep."""
    concurrent_generations: int = 1
    retention_days: int = 7


LIMITS = PublicLimits()


class VisitorLimitError(GenerationInputError):
    """A public-mode limit refused the request; the message says which and what to do."""


def new_visitor_token() -> str:
    """128+ bits from ``secrets``: nobody can guess another visitor's token."""
    return secrets.token_urlsafe(18)


def is_visitor_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN_RE.fullmatch(value) is not None


def check_settings(settings: GenerationSettings, limits: PublicLimits = LIMITS) -> None:
    if settings.max_new_tokens > limits.max_new_tokens:
        raise VisitorLimitError(f"this public demo caps max new tokens at {limits.max_new_tokens} per answer "
                                f"(asked for {settings.max_new_tokens}); lower it in Generation settings")


def check_sweep(n_examples: int, n_checkpoints: int, limits: PublicLimits = LIMITS) -> None:
    total = n_examples * n_checkpoints
    if total > limits.max_sweep_generations:
        raise VisitorLimitError(
            f"this public demo runs at most {limits.max_sweep_generations} generations per sweep "
            f"(examples × checkpoints); {n_examples} × {n_checkpoints} = {total} — "
            "choose fewer examples or checkpoints")


class GenerationSlots:
    """How many generations each visitor has running, process-wide (all their tabs together)."""

    def __init__(self, per_visitor: int = LIMITS.concurrent_generations) -> None:
        self.per_visitor = per_visitor
        self._lock = threading.Lock()
        self._running: dict[str, int] = {}

    def running(self, visitor: str) -> int:
        with self._lock:
            return self._running.get(visitor, 0)

    @contextmanager
    def hold(self, visitor: str) -> Iterator[None]:
        with self._lock:
            if self._running.get(visitor, 0) >= self.per_visitor:
                raise VisitorLimitError(
                    "you already have a generation running (in another tab?); this public demo runs "
                    f"{self.per_visitor} at a time per visitor — wait for it to finish, then try again")
            self._running[visitor] = self._running.get(visitor, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running.get(visitor, 1) - 1
                if left > 0:
                    self._running[visitor] = left
                else:
                    self._running.pop(visitor, None)


SLOTS = GenerationSlots()
