"""A process-wide, memory-budgeted, thread-safe LRU pool of loaded checkpoints.

Streamlit serves every browser session from threads of one process, and ``st.cache_resource``
counts entries rather than bytes, so the budget and the locking live here:

* the budget is in bytes (parameter + buffer bytes of each model, see ``model_nbytes``);
* loading a model evicts least-recently-used *unpinned* models until it fits; a model larger
  than the whole budget is refused with :class:`ModelTooLargeError`;
* ``acquire`` pins a model for the ``with`` block, so it is never evicted mid-generation;
* two threads asking for the same checkpoint share one load (the second waits for the first);
* ``turn`` queues sessions that generate on the same checkpoint first come, first served
  (:mod:`dashboard.models.turns`), one generation per turn, with a wait limit;
* ``prefetch`` loads a checkpoint the user has just chosen in the background, so the first
  Generate does not wait for the load; it only uses free budget and never evicts.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dashboard.config import LoadOptions, Settings, parse_size
from dashboard.formatting import fmt_bytes
from dashboard.models.loading import (
    CheckpointLoadError,
    CheckpointPlan,
    LoadedModel,
    PickleRefusedError,
    RemoteCodeRequiredError,
    default_dtype,
    inspect_checkpoint,
    load_checkpoint,
    resolve_device,
)
from dashboard.models.turns import QueueTimeoutError, TurnQueue, WaitCallback

__all__ = [
    "CheckpointLoadError", "LoadedModel", "ModelPool", "ModelTooLargeError", "PickleRefusedError",
    "PoolBusyError", "PoolEntry", "QueueTimeoutError", "RemoteCodeRequiredError", "available_memory", "resolve_budget",
]

QUEUE_WAIT_LIMIT_S = 120.0
"""How long a session waits in a checkpoint's queue before it is told to try again."""

AUTO_FRACTION = 0.5
"""``auto`` budget: this share of the memory available when the pool is created."""


class ModelTooLargeError(CheckpointLoadError):
    """The model alone needs more than the whole budget."""


class PoolBusyError(CheckpointLoadError):
    """The model would fit the budget, but models in use by running generations block eviction."""


class _NoFreeRoom(Exception):
    """A prefetch found the model would not fit the free budget (it never evicts)."""


@dataclass(frozen=True)
class PoolEntry:
    """A read-only view of one pooled model, for display."""

    path: Path
    model_type: str
    device: str
    dtype: str
    nbytes: int
    load_seconds: float
    last_used: float
    """``time.time()`` of the last acquire."""
    in_use: int
    """How many ``acquire`` blocks currently pin it."""


@dataclass
class _Slot:
    loaded: LoadedModel
    last_used: float
    pins: int = 0
    holders: Counter[int] = field(default_factory=Counter)
    """Thread ids holding a pin: waiting for pins held by the waiting thread itself would deadlock."""


def available_memory(device: torch.device) -> int:
    """Free bytes on ``device``: CUDA free memory, else the OS's "available" RAM."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil ships with streamlit
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("cannot determine available memory")  # pragma: no cover


def resolve_budget(spec: str, device: torch.device) -> int:
    """``auto`` → 50 % of available memory; a number ≤ 1 → that fraction; else a size (``4GB``, bytes)."""
    text = str(spec).strip()
    if text.lower() in ("", "auto"):
        return int(available_memory(device) * AUTO_FRACTION)
    try:
        number = float(text)
    except ValueError:
        return parse_size(text, "memory_budget")
    if number <= 0:
        raise ValueError(f"memory_budget must be positive, got {spec!r}")
    return int(available_memory(device) * number) if number <= 1 else int(number)


class ModelPool:
    """Loaded checkpoints under a byte budget; use :meth:`acquire` as a context manager."""

    def __init__(self, budget_bytes: int, device: torch.device | str = "auto", dtype: torch.dtype | None = None,
                 allow_pickle: bool = False, trust_remote_code: bool = False,
                 loader: Callable[..., LoadedModel] = load_checkpoint, busy_timeout_s: float = 60.0,
                 roots: tuple[Path, ...] | None = None, queue_wait_limit_s: float = QUEUE_WAIT_LIMIT_S,
                 options: LoadOptions | None = None) -> None:
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        self.dtype = dtype or default_dtype(self.device)
        self.budget_bytes = int(budget_bytes)
        self.options = options or LoadOptions(roots=roots, allow_pickle=allow_pickle,
                                              trust_remote_code=trust_remote_code)
        """Passed whole to every inspection and load (``options`` wins over the loose flags)."""
        self.allow_pickle = self.options.allow_pickle
        self.trust_remote_code = self.options.trust_remote_code
        self.load_count = 0
        self.busy_timeout_s = busy_timeout_s
        self.roots = self.options.roots
        """Runs roots every checkpoint (and adapter base, shard) must lie in; None: each folder's own run."""
        self.queue_wait_limit_s = queue_wait_limit_s
        self._queues: dict[Path, TurnQueue] = {}
        self._loader = loader
        self._slots: OrderedDict[Path, _Slot] = OrderedDict()  # LRU order: oldest first
        self._loading: dict[Path, threading.Event] = {}
        self._reserved: dict[Path, int] = {}  # bytes promised to loads in flight
        self._cond = threading.Condition(threading.RLock())
        self.prefetch_count = 0
        """Prefetches that loaded a model (the rest found it loaded, loading, or without room)."""
        self._prefetch_next: Path | None = None
        self._prefetch_thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelPool:
        device = resolve_device(settings.device)
        return cls(resolve_budget(settings.memory_budget, device), device=device,
                   options=settings.load_options())

    # ------------------------------------------------------------------ views
    @property
    def used_bytes(self) -> int:
        with self._cond:
            return sum(slot.loaded.nbytes for slot in self._slots.values())

    def entries(self) -> list[PoolEntry]:
        """Pooled models, most recently used first."""
        with self._cond:
            return [PoolEntry(path, s.loaded.model_type, str(s.loaded.device), str(s.loaded.dtype).removeprefix(
                "torch."), s.loaded.nbytes, s.loaded.load_seconds, s.last_used, s.pins)
                for path, s in reversed(self._slots.items())]

    def __contains__(self, checkpoint: object) -> bool:
        if not isinstance(checkpoint, (str, Path)):
            return False
        with self._cond:
            return self._key(checkpoint) in self._slots

    # ------------------------------------------------------------------ eviction
    def evict(self, checkpoint: str | Path) -> bool:
        """Drop one model and free its memory; False if absent or in use by a running generation."""
        with self._cond:
            key = self._key(checkpoint)
            slot = self._slots.get(key)
            if slot is None or slot.pins:
                return False
            del self._slots[key]
        self._free_memory()
        return True

    def clear(self) -> None:
        """Evict every model not in use."""
        with self._cond:
            for key in [k for k, s in self._slots.items() if not s.pins]:
                del self._slots[key]
        self._free_memory()

    def recover_after_oom(self) -> None:
        """After an out-of-memory error: drop every unpinned model and return cached memory."""
        self.clear()

    # ------------------------------------------------------------------ turns
    def queue_for(self, checkpoint: str | Path) -> TurnQueue:
        """The one FIFO queue of generations on ``checkpoint`` (created on first use)."""
        key = self._key(checkpoint)
        with self._cond:
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = TurnQueue(key.name)
            return queue

    @contextmanager
    def turn(self, checkpoint: str | Path, wait_limit_s: float | None = None,
             on_wait: WaitCallback | None = None) -> Iterator[LoadedModel]:
        """Wait for this caller's turn on ``checkpoint`` (FIFO), then load/pin it for one generation.

        Use one ``turn`` per ``generate`` call. Raises :class:`QueueTimeoutError` after
        ``wait_limit_s`` (default ``queue_wait_limit_s``) in the queue.
        """
        limit = self.queue_wait_limit_s if wait_limit_s is None else wait_limit_s
        with self.queue_for(checkpoint).turn(limit, on_wait), self.acquire(checkpoint) as loaded:
            yield loaded

    # ------------------------------------------------------------------ prefetch
    def prefetch(self, checkpoint: str | Path) -> bool:
        """Start loading ``checkpoint`` in a background thread; True if a load was scheduled.

        A hint, not a request: nothing happens when the model is loaded or loading already, one
        prefetch runs at a time (a newer hint replaces one still waiting), and a model that does
        not fit the *free* budget is skipped rather than evicting anyone's model. Load errors are
        left for the real request to report with its message.
        """
        key = self._key(checkpoint)
        with self._cond:
            if key in self._slots or key in self._loading:
                return False
            self._prefetch_next = key
            if self._prefetch_thread is None or not self._prefetch_thread.is_alive():
                self._prefetch_thread = threading.Thread(target=self._prefetch_worker, name="pool-prefetch",
                                                         daemon=True)
                self._prefetch_thread.start()
        return True

    def _prefetch_worker(self) -> None:
        while True:
            with self._cond:
                key, self._prefetch_next = self._prefetch_next, None
                if key is None:
                    self._prefetch_thread = None
                    return
                if key in self._slots or key in self._loading:
                    continue
            try:
                self._pin(key, evict=False)
            except Exception:  # a hint: the user's own request reports the error
                continue
            with self._cond:
                self.prefetch_count += 1
                slot = self._slots.get(key)
                if slot is not None:
                    slot.pins -= 1
                    slot.holders[threading.get_ident()] -= 1
                self._cond.notify_all()

    # ------------------------------------------------------------------ acquire
    @contextmanager
    def acquire(self, checkpoint: str | Path) -> Iterator[LoadedModel]:
        """Load ``checkpoint`` (or reuse it) and pin it for the ``with`` block."""
        key = self._key(checkpoint)
        loaded = self._pin(key)
        try:
            yield loaded
        finally:
            with self._cond:
                slot = self._slots.get(key)
                if slot is not None and slot.loaded is loaded:
                    slot.pins -= 1
                    slot.holders[threading.get_ident()] -= 1
                    slot.last_used = time.time()
                self._cond.notify_all()

    def _pin(self, key: Path, evict: bool = True) -> LoadedModel:
        while True:
            with self._cond:
                slot = self._slots.get(key)
                if slot is not None:
                    slot.pins += 1
                    slot.holders[threading.get_ident()] += 1
                    slot.last_used = time.time()
                    self._slots.move_to_end(key)
                    return slot.loaded
                pending = self._loading.get(key)
                if pending is None:
                    done = threading.Event()
                    self._loading[key] = done
                    break
            pending.wait()  # another thread is loading it; then re-check (it may have failed)
        try:
            return self._load_and_pin(key, evict)
        finally:
            with self._cond:
                self._loading.pop(key, None)
                self._reserved.pop(key, None)
                self._cond.notify_all()
            done.set()

    def _load_and_pin(self, key: Path, evict: bool = True) -> LoadedModel:
        plan = inspect_checkpoint(key, self.dtype, options=self.options)
        if evict:
            self._make_room(key, plan)
        else:
            with self._cond:
                if self._committed() + plan.estimated_bytes > self.budget_bytes:
                    raise _NoFreeRoom(key.name)
                self._reserved[key] = plan.estimated_bytes
        loaded = self._loader(key, self.device, self.dtype, plan=plan, options=self.options)
        with self._cond:
            self.load_count += 1
            self._reserved.pop(key, None)
            if loaded.nbytes > self.budget_bytes:
                del loaded
                self._free_memory()
                raise ModelTooLargeError(self._too_large(key, plan.estimated_bytes))
            if not evict and self._committed() + loaded.nbytes > self.budget_bytes:
                del loaded  # the estimate was low; a prefetch still never evicts
                self._free_memory()
                raise _NoFreeRoom(key.name)
            self._evict_until(loaded.nbytes)  # the estimate may have been low; best effort
            self._slots[key] = _Slot(loaded, time.time(), pins=1, holders=Counter({threading.get_ident(): 1}))
            return loaded

    def _make_room(self, key: Path, plan: CheckpointPlan) -> None:
        need = plan.estimated_bytes
        if need > self.budget_bytes:
            raise ModelTooLargeError(self._too_large(key, need))
        deadline = time.monotonic() + self.busy_timeout_s
        with self._cond:
            while True:
                evicted = self._evict_until(need)
                if self._committed() + need <= self.budget_bytes:
                    self._reserved[key] = need
                    break
                remaining = deadline - time.monotonic()
                if self._only_own_pins():
                    raise PoolBusyError(
                        f"{key.name} needs {fmt_bytes(need)} but the budget "
                        f"({fmt_bytes(self.budget_bytes)}) is held by models this same request is using; "
                        "use fewer models at once or raise VLMLAB_MEMORY_BUDGET")
                if remaining <= 0:
                    raise PoolBusyError(
                        f"{key.name} needs {fmt_bytes(need)} but the pool budget "
                        f"({fmt_bytes(self.budget_bytes)}) is held by models in use by running generations; "
                        "try again when they finish")
                self._cond.wait(remaining)
        if evicted:
            self._free_memory()

    def _evict_until(self, need: int) -> int:
        """Evict LRU unpinned models until ``need`` more bytes fit; caller holds the lock."""
        evicted = 0
        for victim in [k for k, s in self._slots.items() if not s.pins]:
            if self._committed() + need <= self.budget_bytes:
                break
            del self._slots[victim]
            evicted += 1
        return evicted

    def _only_own_pins(self) -> bool:
        """True when every pinned model is pinned only by the calling thread (waiting cannot help)."""
        me = threading.get_ident()
        pinned = [s for s in self._slots.values() if s.pins]
        return bool(pinned) and not self._reserved and all(
            all(tid == me or count <= 0 for tid, count in s.holders.items()) for s in pinned)

    def _committed(self) -> int:
        return sum(s.loaded.nbytes for s in self._slots.values()) + sum(self._reserved.values())

    def _too_large(self, key: Path, need: int) -> str:
        return (f"{key.name} needs about {fmt_bytes(need)} but the whole model pool budget is "
                f"{fmt_bytes(self.budget_bytes)}; raise VLMLAB_MEMORY_BUDGET (e.g. 8GB or 0.8) to load it")

    @staticmethod
    def _key(checkpoint: str | Path) -> Path:
        return Path(checkpoint).expanduser().resolve()

    def _free_memory(self) -> None:
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
