"""Is this process still running while something else happens? A heartbeat thread and, optionally,
a thread rendering a normal chat template over and over (another session's work).

A render that holds the GIL in C stops both: the heartbeat's longest gap and the slowest normal
render then span the freeze. :meth:`Liveness.finish` waits, with a deadline, until each thread has
shown progress after the watched call ended, so the measured window always covers the whole call.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from types import TracebackType

NORMAL_TEMPLATE = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}"
NORMAL_CONTEXT = {"messages": [{"role": "user", "content": "hello"}]}
NORMAL_OUTPUT = "user: hello\n"


class Liveness:
    """``with Liveness(render) as live: <watched call>``; then ``live.max_gap_s`` / ``live.slowest_render_s``."""

    def __init__(self, render: Callable[[str, dict, float], str] | None = None, tick_s: float = 0.01) -> None:
        self.render, self.tick_s = render, tick_s
        self.beats: list[float] = []
        self.renders: list[tuple[float, float, str]] = []  # (began, ended, output)
        self.began = self.ended = 0.0
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._beat, daemon=True)]
        if render is not None:
            self._threads.append(threading.Thread(target=self._render_normal, daemon=True))

    def _beat(self) -> None:
        while not self._stop.is_set():
            self.beats.append(time.monotonic())
            time.sleep(self.tick_s)

    def _render_normal(self) -> None:
        assert self.render is not None
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                output = self.render(NORMAL_TEMPLATE, NORMAL_CONTEXT, 2.0)
            except Exception as exc:  # recorded, asserted by the test
                output = f"{type(exc).__name__}: {exc}"
            self.renders.append((began, time.monotonic(), output))
            time.sleep(self.tick_s)

    def __enter__(self) -> Liveness:
        for thread in self._threads:
            thread.start()
        deadline = time.monotonic() + 60
        while not self.beats or (self.render is not None and not self.renders):  # both threads running
            assert time.monotonic() < deadline, "liveness threads did not start"
            time.sleep(self.tick_s)
        self.began = time.monotonic()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.ended = time.monotonic()
        deadline = self.ended + 120
        while not (self.beats[-1] > self.ended and (self.render is None or self.renders[-1][0] > self.ended)):
            if time.monotonic() > deadline:
                break
            time.sleep(self.tick_s)
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    @property
    def max_gap_s(self) -> float:
        """Longest time between heartbeats across the watched call (its start and end included)."""
        first = max((i for i, b in enumerate(self.beats) if b <= self.began), default=0)
        last = next((i for i, b in enumerate(self.beats) if b > self.ended), len(self.beats) - 1)
        return max((b - a for a, b in itertools.pairwise(self.beats[first:last + 1])), default=float("inf"))

    @property
    def slowest_render_s(self) -> float:
        """The slowest normal render that ended after the watched call began (at least one began after it ended)."""
        overlapping = [end - start for start, end, _ in self.renders if end >= self.began]
        return max(overlapping, default=float("inf"))

    @property
    def outputs(self) -> set[str]:
        return {output for _, _, output in self.renders}
