"""The chat-template worker: a separate process the server can kill, and the pipe protocol to it.

Huge-integer arithmetic or ``'%0999999999d' % 1`` runs in C holding the GIL: no thread, timer or
signal handler in the server runs until it returns, so a template rendered in-process can freeze
every session (and the health endpoint). Templates are therefore rendered in a child process:

* started with ``subprocess`` (fork + exec: never a fork of a server that holds torch threads),
  isolated (``python -I``), with an empty environment (no server secrets to leak) and stdin,
  stdout and stderr pointed at ``/dev/null`` after it took private copies of its pipe ends;
* limited with ``RLIMIT_AS`` (:data:`MEMORY_HEADROOM_BYTES` over its size at start),
  ``RLIMIT_CPU`` (re-armed to the render's deadline + 1 s before each render) and no core files;
* rendering with :mod:`dashboard.template_sandbox`'s checks (clear messages for the known cases);
* speaking length-prefixed JSON frames: a ``ready`` frame once started, then one reply per request.

:class:`WorkerProcess` is the parent's handle: every read and write waits with ``select`` on a
deadline (the GIL is free while it waits), and :meth:`WorkerProcess.stop` kills the child.
"""

from __future__ import annotations

import json
import math
import os
import resource
import select
import signal
import struct
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

MEMORY_HEADROOM_BYTES = 512 * 2**20
MAX_FRAME_BYTES = 64 * 2**20
"""Far above a reply's worst case (1 M characters, JSON-escaped); a longer frame is a broken worker."""
_HEADER = struct.Struct(">I")
_REPO_ROOT = Path(__file__).resolve().parents[1]
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from dashboard.template_worker import serve; serve()"
_PASSED_ENV = ("TZ",)
"""The only variables the child sees: ``strftime_now`` must give the server's local time."""

Render = Callable[[str, Mapping[str, Any], float], str]


class WorkerTimeout(Exception):
    """The worker did not answer by the deadline (it has been killed)."""


class WorkerGone(Exception):
    """The worker ended or broke the protocol (it has been killed); ``str()`` says how, safe to show."""


def encode_frame(message: Mapping[str, Any]) -> bytes:
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    return _HEADER.pack(len(body)) + body


def worker_command() -> list[str]:
    """``python -I -c <boot> <repo root>``: this interpreter, this checkout's ``dashboard`` package."""
    return [sys.executable, "-I", "-c", _BOOT, str(_REPO_ROOT)]


# ---------------------------------------------------------------------------- parent side
class WorkerProcess:
    """One running worker; used by one render at a time (the pool in ``chat_template`` sees to that)."""

    def __init__(self, command: list[str] | None = None) -> None:
        self.process = subprocess.Popen(
            command or worker_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={k: os.environ[k] for k in _PASSED_ENV if k in os.environ}, cwd="/", close_fds=True)
        assert self.process.stdin is not None and self.process.stdout is not None
        self._to_child = self.process.stdin.fileno()
        self._from_child = self.process.stdout.fileno()
        os.set_blocking(self._to_child, False)
        self._received = bytearray()
        self.ready = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self, deadline: float, clock: Callable[[], float]) -> None:
        """Wait for the child's ``ready`` frame (its imports and limits are done)."""
        if not self.ready:
            if not self._read_frame(deadline, clock).get("ready"):
                self._broken("sent no ready message")
            self.ready = True

    def call(self, request: bytes, deadline: float, clock: Callable[[], float]) -> dict[str, Any]:
        """Send one encoded request and return the reply; kill the child and raise at the deadline.

        The time the reply may take (``deadline`` − now) counts from the moment the child has the whole request:
        a parent starved of the GIL or the CPU before or while writing (a busy server) must not spend the child's
        time, or a template that renders in milliseconds is killed for the server's own delay.
        """
        budget = max(0.0, deadline - clock())
        view = memoryview(request)
        while view:
            self._wait(self._to_child, "w", deadline, clock)
            try:
                written = os.write(self._to_child, view)
            except (BrokenPipeError, ConnectionResetError):
                self._broken("closed its input")
            view = view[written:]
        return self._read_frame(max(deadline, clock() + budget), clock)

    def stop(self) -> None:
        """Kill the child (SIGKILL: it may be deep in C) and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()

    def _wait(self, fd: int, mode: str, deadline: float, clock: Callable[[], float]) -> None:
        # Past the deadline the pipe is still polled once: a parent that woke late (its process starved of
        # the GIL or the CPU) must not kill a child whose answer is already waiting.
        remaining = max(0.0, deadline - clock())
        readable, writable, _ = select.select([fd] if mode == "r" else [], [fd] if mode == "w" else [], [],
                                              remaining)
        if readable or writable:
            return
        self.stop()
        raise WorkerTimeout

    def _read_frame(self, deadline: float, clock: Callable[[], float]) -> dict[str, Any]:
        while True:
            if len(self._received) >= _HEADER.size:
                (length,) = _HEADER.unpack_from(self._received)
                if length > MAX_FRAME_BYTES:
                    self._broken("sent an oversized reply")
                if len(self._received) >= _HEADER.size + length:
                    body = bytes(self._received[_HEADER.size:_HEADER.size + length])
                    del self._received[:_HEADER.size + length]
                    try:
                        message = json.loads(body.decode("utf-8"))
                    except ValueError:
                        self._broken("sent a malformed reply")
                    if not isinstance(message, dict):
                        self._broken("sent a malformed reply")
                    return message
            self._wait(self._from_child, "r", deadline, clock)
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                self._broken("ended")
            self._received += chunk

    def _broken(self, what: str) -> Any:
        self.stop()
        code = self.process.returncode
        how = ""
        if code is not None and code < 0:
            how = " (it used up its CPU-time limit)" if -code == signal.SIGXCPU else f" (signal {-code})"
        elif code:
            how = f" (exit code {code})"
        raise WorkerGone(f"the chat template's worker process {what}{how}")



# ---------------------------------------------------------------------------- child side
def _limit_memory() -> None:
    """Address space capped at :data:`MEMORY_HEADROOM_BYTES` over what the started worker maps now."""
    try:
        with open("/proc/self/statm") as statm:
            mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: the parent's wall-clock kill still applies
        return
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = mapped + MEMORY_HEADROOM_BYTES
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _limit_cpu(timeout_s: float) -> None:
    """CPU time allowed from now: the render's deadline + 1 s (SIGXCPU ends the worker after that)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + timeout_s) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _read_exact(fd: int, count: int) -> bytes | None:
    data = bytearray()
    while len(data) < count:
        chunk = os.read(fd, count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _answer(render: Render, request: Mapping[str, Any]) -> dict[str, Any]:
    from dashboard.template_sandbox import ChatTemplateError

    timeout_s = float(request["timeout_s"])
    _limit_cpu(timeout_s)
    try:
        return {"text": render(request["template"], request["context"], timeout_s)}
    except ChatTemplateError as exc:
        return {"error": str(exc)}
    except MemoryError:  # the allocation that failed never existed; what is left is small
        return {"error": f"the chat template needed more than {MEMORY_HEADROOM_BYTES // 2**20} MB of memory; "
                         f"its worker process was stopped", "exit": True}


def serve(render: Render | None = None) -> None:
    """The worker's main loop: limits, ``ready``, then one reply per request until stdin closes."""
    if render is None:
        from dashboard.template_sandbox import render_checked

        render = render_checked
    requests, replies = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):  # nothing the interpreter prints can corrupt the protocol
        os.dup2(devnull, fd)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _limit_memory()
    _write_all(replies, encode_frame({"ready": True}))
    while True:
        header = _read_exact(requests, _HEADER.size)
        if header is None:
            return  # the server closed the pipe (or exited): nothing left to do
        body = _read_exact(requests, _HEADER.unpack(header)[0])
        if body is None:
            return
        reply = _answer(render, json.loads(body.decode("utf-8")))
        _write_all(replies, encode_frame(reply))
        if reply.get("exit"):
            return
