"""May this visitor run this job now? The one public-mode gate every generating action passes.

A *job* is one visitor action that generates or scores: an Inference answer or batch, a
Comparison of one example or an eval set, an attention capture, a capture across checkpoints,
a pointing score, a rollout. :func:`check_job` refuses what is over the public limits
(:data:`dashboard.public.LIMITS`) with a message saying which limit and what to choose instead;
:class:`AdmissionGate` then admits jobs:

- one job at a time per visitor (all their tabs together): a second is refused, not queued;
- at most ``capacity`` public jobs running in the process (a small Space has two cores);
- at most ``per_client`` of them for one client, so twenty identities of one address cannot fill
  every place with long jobs while other visitors wait for a whole job to end;
- waiting jobs take turns *by client* (a client is an IP address, see :func:`client_key`), first
  come first served within a client (start-time fair queuing). Identities are free to make, so
  twenty of them from one client get one client's turn, not twenty: a newcomer from another
  client is admitted next to that client's next job, ahead of the rest of its queue.

Inside an admitted job the pool's per-checkpoint turns (:mod:`dashboard.models.turns`) still
interleave single generations. No Streamlit here: :mod:`dashboard.ui.gate` shows the wait.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from dashboard.generation import GenerationSettings
from dashboard.public import LIMITS, PublicLimits, VisitorLimitError

WaitCallback = Callable[[int, float], None]
"""``on_wait(ahead, waited_s)``: ``ahead`` waiting jobs will be admitted before this one."""


@dataclass(frozen=True)
class Job:
    """What one action asks for: its name (for messages), decoding size, sweep size and, for a map check, the
    pictures the model runs on."""

    action: str
    max_new_tokens: int = 0
    num_beams: int = 1
    examples: int = 1
    checkpoints: int = 1
    pictures: int = 0
    """Forward passes of a picture without generating (*Check this map*); 0 for a job that generates."""

    @classmethod
    def generating(cls, action: str, settings: GenerationSettings | None, examples: int = 1,
                   checkpoints: int = 1) -> Job:
        if settings is None:
            return cls(action, examples=examples, checkpoints=checkpoints)
        return cls(action, settings.max_new_tokens, settings.num_beams, examples, checkpoints)

    @property
    def generations(self) -> int:
        return self.examples * self.checkpoints


def check_job(job: Job, limits: PublicLimits = LIMITS) -> None:
    """Refuse a job over a public limit (``VisitorLimitError``, the message says what to change)."""
    if job.max_new_tokens > limits.max_new_tokens:
        raise VisitorLimitError(f"{job.action}: this public demo caps max new tokens at {limits.max_new_tokens} "
                                f"per answer (asked for {job.max_new_tokens}); lower it and try again")
    if job.num_beams > limits.max_beams:
        raise VisitorLimitError(f"{job.action}: this public demo allows at most {limits.max_beams} beam(s) "
                                f"(asked for {job.num_beams}); lower Beams and try again")
    if job.generations > limits.max_sweep_generations:
        raise VisitorLimitError(
            f"{job.action}: this public demo runs at most {limits.max_sweep_generations} generations per job "
            f"(examples × checkpoints); {job.examples} × {job.checkpoints} = {job.generations} — "
            "choose fewer examples or checkpoints")
    if job.pictures > limits.max_map_check_pictures:
        raise VisitorLimitError(
            f"{job.action}: this public demo runs the model on at most {limits.max_map_check_pictures} pictures "
            f"per map check (this one needs {job.pictures}); run the dashboard locally for the full check")


def client_key(remote_ip: str | None, headers: Mapping[str, str], proxy_hops: int) -> str:
    """Which client (network address) a request comes from, for fairness.

    ``proxy_hops`` is how many reverse proxies in front of the server append to
    ``X-Forwarded-For`` (a Space has one). Only the entry the nearest trusted proxy wrote is
    believed: anything to its left was sent by the client and can be anything. With no proxy the
    socket's address is used. IPv6 clients are grouped by their /64 (one host usually owns one).
    """
    address = remote_ip or "local"
    if proxy_hops > 0:
        forwarded = [part.strip() for part in headers.get("X-Forwarded-For", "").split(",") if part.strip()]
        if len(forwarded) >= proxy_hops:
            address = forwarded[-proxy_hops]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if parsed.version == 6:
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass(eq=False)
class _Ticket:
    visitor: str
    client: str
    tag: int
    """Fair-queuing tag: the client's turn number (see :meth:`AdmissionGate._tag`)."""
    seq: int
    """Arrival order: breaks ties between equal tags."""
    granted: bool = False
    arrived: float = field(default_factory=time.monotonic)

    @property
    def order(self) -> tuple[int, int]:
        return self.tag, self.seq


class AdmissionGate:
    """Process-wide admission of public jobs: a global cap, one per visitor, turns shared by clients."""

    def __init__(self, capacity: int = LIMITS.concurrent_jobs, per_visitor: int = LIMITS.concurrent_generations,
                 poll_s: float = 0.25, report_every_s: float = 1.0,
                 per_client: int = LIMITS.concurrent_jobs_per_client) -> None:
        if capacity < 1 or per_visitor < 1 or per_client < 1:
            raise ValueError("capacity, per_visitor and per_client must be at least 1")
        self.capacity = capacity
        self.per_visitor = per_visitor
        self.per_client = per_client
        self.poll_s = poll_s
        self.report_every_s = report_every_s
        self.admitted_total = 0
        self._cond = threading.Condition(threading.Lock())
        self._waiting: list[_Ticket] = []
        self._running: list[_Ticket] = []
        self._seq = 0
        self._now = 0
        """Tag of the job admitted last (the fair-queuing clock)."""
        self._last_tag: dict[str, int] = {}

    # -- what tests and the pages may read ---------------------------------------------------

    @property
    def running(self) -> int:
        with self._cond:
            return len(self._running)

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    def running_for(self, visitor: str) -> int:
        with self._cond:
            return sum(t.visitor == visitor for t in self._running)

    # -- admission ---------------------------------------------------------------------------

    @contextmanager
    def admit(self, visitor: str, client: str, wait_limit_s: float = 300.0,
              on_wait: WaitCallback | None = None) -> Iterator[None]:
        """Wait for this job's turn, hold a place for the ``with`` block.

        Raises ``VisitorLimitError`` at once when the visitor already has a job running or
        waiting, or after ``wait_limit_s`` without a place (nothing was run). An exception
        raised by ``on_wait`` (Streamlit stopping the script) leaves the queue cleanly.
        """
        with self._cond:
            mine = sum(t.visitor == visitor for t in (*self._running, *self._waiting))
            if mine >= self.per_visitor:
                raise VisitorLimitError(
                    "you already have a job running or queued (in another tab?); this public demo runs "
                    f"{self.per_visitor} at a time per visitor — wait for it to finish, then try again")
            self._seq += 1
            ticket = _Ticket(visitor, client, self._tag(client), self._seq)
            self._waiting.append(ticket)
            self._dispatch()
        try:
            self._wait(ticket, wait_limit_s, on_wait)
        except BaseException:
            with self._cond:
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
                if ticket in self._running:
                    self._running.remove(ticket)
                self._dispatch()
            raise
        try:
            yield
        finally:
            with self._cond:
                self._running.remove(ticket)
                self._dispatch()

    def _tag(self, client: str) -> int:
        """The client's next turn: one after its previous job's turn, but never behind the clock.

        A client's jobs get turns 0, 1, 2 … relative to when it started asking; a newcomer starts
        at the clock, i.e. level with every other client's *next* job and ahead of their later ones
        (start-time fair queuing). An idle client gathers no credit: it restarts at the clock.
        """
        last = self._last_tag.get(client)
        tag = self._now if last is None else max(self._now, last + 1)
        self._last_tag[client] = tag
        return tag

    def _dispatch(self) -> None:
        """Admit the waiting jobs with the lowest (turn, arrival) while there is room, skipping clients at
        their ``per_client`` share (caller holds the lock)."""
        while len(self._running) < self.capacity:
            busy = Counter(t.client for t in self._running)
            eligible = [t for t in self._waiting if busy[t.client] < self.per_client]
            if not eligible:
                break
            ticket = min(eligible, key=lambda t: t.order)
            self._waiting.remove(ticket)
            ticket.granted = True
            self._running.append(ticket)
            self._now = max(self._now, ticket.tag)
            self.admitted_total += 1
        clients = {t.client for t in (*self._waiting, *self._running)}
        for client in [c for c, tag in self._last_tag.items() if c not in clients and tag < self._now]:
            del self._last_tag[client]  # idle and behind the clock: its entry would change nothing
        self._cond.notify_all()

    def _ahead_of(self, ticket: _Ticket) -> int:
        return sum(t.order < ticket.order for t in self._waiting)

    def _wait(self, ticket: _Ticket, wait_limit_s: float, on_wait: WaitCallback | None) -> None:
        reported: int | None = None
        reported_at = 0.0
        while True:
            with self._cond:
                if ticket.granted:
                    return
                ahead = self._ahead_of(ticket)
                waited = time.monotonic() - ticket.arrived
                if waited >= wait_limit_s:
                    raise VisitorLimitError(
                        f"the public demo is busy: waited {waited:.0f} s for a place ({ahead} job(s) still "
                        "ahead of yours); nothing was run — try again in a moment")
                if reported == ahead and waited - reported_at < self.report_every_s:
                    self._cond.wait(min(self.poll_s, wait_limit_s - waited))
                    continue
            reported, reported_at = ahead, waited
            if on_wait is not None:
                on_wait(ahead, waited)


GATE = AdmissionGate()
"""The one gate of this server process (module-level: a cache clear must not forget running jobs)."""
