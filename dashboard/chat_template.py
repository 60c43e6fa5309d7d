"""Render a checkpoint's chat template in a warm worker process that is killed at the deadline.

A chat template is code the run author wrote. The sandbox in :mod:`dashboard.template_sandbox`
refuses what it can recognise (huge strings, numbers, widths, loops) with a clear message, but
code running in C holds the GIL, so no in-process limit can stop it: ``(10 ** 64) ** 64 …``
froze the whole server (health endpoint included) for a minute while the page claimed the render
had been abandoned after 2 s. So every render runs in a :class:`~dashboard.template_worker.WorkerProcess`
(address-space and CPU-time limits), and the server waits for it with the GIL released and kills it
at ``timeout_s`` (+ :data:`KILL_GRACE_S`, so the child's own, clearer deadline message wins when it can).

:class:`TemplateWorkers` keeps :data:`WARM_WORKERS` processes started and reuses them, so a normal
render costs a pipe round trip (bench/bench_chat_template.py), and starts a fresh process for a
render that finds them all busy (up to :data:`MAX_WORKERS`): one session's hostile template delays
no other session's normal render. A killed worker is replaced at once. Every failure is a
:class:`ChatTemplateError` whose message is safe to show.
"""

from __future__ import annotations

import atexit
import ctypes
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from dashboard.template_sandbox import (
    MAX_OUTPUT_CHARS,
    MAX_SECONDS,
    ChatTemplateError,
    compile_template,
    render_compiled,
)
from dashboard.template_worker import MEMORY_HEADROOM_BYTES, WorkerGone, WorkerProcess, WorkerTimeout, encode_frame

WARM_WORKERS = 2
MAX_WORKERS = 4
KILL_GRACE_S = 0.25
STARTUP_TIMEOUT_S = 60.0
"""A fresh worker's imports, on a loaded machine; not part of the render's deadline."""

__all__ = ["MAX_OUTPUT_CHARS", "MAX_SECONDS", "MEMORY_HEADROOM_BYTES", "ChatTemplateError", "TemplateWorkers",
           "render_chat_template"]


class TemplateWorkers:
    """A small pool of worker processes shared by every session of this server (thread-safe)."""

    def __init__(self, warm: int = WARM_WORKERS, most: int = MAX_WORKERS, command: list[str] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``command`` replaces the worker's command line (tests run a stand-in worker with it)."""
        self.warm, self.most, self.command, self.clock = warm, max(most, 1), command, clock
        self._idle: list[WorkerProcess] = []
        self._busy = 0
        self._closed = False
        self._changed = threading.Condition()
        self.started = 0
        """Worker processes started so far (a kill shows as one more)."""

    def render(self, template: str, context: Mapping[str, Any], timeout_s: float = MAX_SECONDS) -> str:
        """Render in a worker; at ``timeout_s`` (+ grace) the worker is killed and ChatTemplateError raised."""
        request = _encode_request(template, context, timeout_s)
        worker = self._acquire(timeout_s)
        reusable = False
        try:
            try:
                worker.wait_ready(self.clock() + STARTUP_TIMEOUT_S, self.clock)
            except WorkerTimeout:
                raise ChatTemplateError(f"the chat template worker did not start within {STARTUP_TIMEOUT_S:g} s; "
                                        f"try again") from None
            reply = worker.call(request, self.clock() + timeout_s + KILL_GRACE_S, self.clock)
            reusable = not reply.get("exit")
        except WorkerTimeout:
            raise ChatTemplateError(f"the chat template ran longer than {timeout_s:g} s; "
                                    f"its worker process was stopped") from None
        except WorkerGone as exc:
            raise ChatTemplateError(str(exc)) from None
        finally:
            self._release(worker, reusable)
        if "error" in reply:
            raise ChatTemplateError(str(reply["error"]))
        return str(reply.get("text", ""))

    def pids(self) -> list[int]:
        """Process ids of the idle (warm) workers."""
        with self._changed:
            return [w.pid for w in self._idle]

    def close(self) -> None:
        """Stop the idle workers; busy ones are stopped when their render returns."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for worker in idle:
            worker.stop()

    def _start(self) -> WorkerProcess:
        self.started += 1
        return WorkerProcess(self.command)

    def _acquire(self, timeout_s: float) -> WorkerProcess:
        """An idle worker, else a fresh one while under ``most``, else wait for one to be released."""
        give_up = self.clock() + STARTUP_TIMEOUT_S + timeout_s + KILL_GRACE_S
        dead: list[WorkerProcess] = []
        try:
            with self._changed:
                while True:
                    if self._closed:
                        raise ChatTemplateError("the chat template workers are shut down")
                    while self._idle and not self._idle[-1].alive():
                        dead.append(self._idle.pop())
                    if self._idle or self._busy < self.most:
                        worker = self._idle.pop() if self._idle else self._start()
                        self._busy += 1
                        self._top_up()
                        return worker
                    remaining = give_up - self.clock()
                    if remaining <= 0:
                        raise ChatTemplateError(f"all {self.most} chat template workers are busy; try again")
                    self._changed.wait(remaining)
        finally:
            for worker in dead:
                worker.stop()

    def _top_up(self) -> None:
        """Keep ``warm`` processes started (caller holds the lock); Popen returns before the child's imports."""
        while not self._closed and len(self._idle) + self._busy < min(self.warm, self.most):
            self._idle.insert(0, self._start())

    def _release(self, worker: WorkerProcess, reusable: bool) -> None:
        with self._changed:
            self._busy -= 1
            keep = reusable and not self._closed and worker.alive() and len(self._idle) < self.warm
            if keep:
                self._idle.append(worker)
            self._top_up()
            self._changed.notify()
        if not keep:
            worker.stop()


def _encode_request(template: str, context: Mapping[str, Any], timeout_s: float) -> bytes:
    """The request frame; the context must be plain data (it crosses a pipe as JSON)."""
    if not isinstance(template, str):
        raise ChatTemplateError("the chat template is not text")
    try:
        return encode_frame({"template": template, "context": dict(context), "timeout_s": float(timeout_s)})
    except (TypeError, ValueError) as exc:
        raise ChatTemplateError(f"the chat template's inputs are not plain data: {str(exc)[:200]}") from None


_workers: TemplateWorkers | None = None
_workers_lock = threading.Lock()


def default_workers() -> TemplateWorkers:
    """The process-wide pool (started on first use, stopped at exit)."""
    global _workers
    with _workers_lock:
        if _workers is None:
            _workers = TemplateWorkers()
            atexit.register(_workers.close)
        return _workers


def render_chat_template(template: str, context: Mapping[str, Any], timeout_s: float = MAX_SECONDS) -> str:
    """Render ``template`` with ``context`` (plain data) in a worker process; errors become ChatTemplateError."""
    return default_workers().render(template, context, timeout_s)


# ---------------------------------------------------------------------------- the previous way (bench baseline)
class _Abandoned(BaseException):
    """Raised asynchronously inside an in-thread render that ran past its deadline."""


def _render_in_thread(template: str, context: Mapping[str, Any], timeout_s: float = MAX_SECONDS) -> str:
    """The render as it was before the worker process: same sandbox, in a thread of this process.

    Kept only as ``bench/bench_chat_template.py``'s baseline. It cannot stop code running in C
    (the thread holds the GIL, the asynchronous exception waits for the next bytecode).
    """
    compiled = compile_template(template)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["text"] = render_compiled(compiled, context, timeout_s)
        except _Abandoned:
            outcome["error"] = ChatTemplateError(f"the chat template ran longer than {timeout_s:g} s")
        except ChatTemplateError as exc:
            outcome["error"] = exc
        except Exception as exc:
            outcome["error"] = ChatTemplateError(f"the chat template failed: {type(exc).__name__}: {str(exc)[:200]}")

    worker = threading.Thread(target=work, name="vlmlab-chat-template", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    if worker.is_alive() and worker.ident is not None:
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_Abandoned))
        raise ChatTemplateError(f"the chat template ran longer than {timeout_s:g} s; abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome.get("text", ""))

