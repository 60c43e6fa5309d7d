"""One live watcher per run per process, however many sessions switch it on.

Streamlit serves every visitor from one process: the app keeps one :class:`LiveRegistry`
(behind ``st.cache_resource``) and every session's *Live scoring* switch starts, stops and reads
the same :class:`~dashboard.live.watcher.Watcher` thread of a run. No Streamlit here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dashboard.live.watcher import Watcher, WatchStatus

logger = logging.getLogger(__name__)

STOP_WAIT_S = 60.0
"""How long a restart waits for the previous watcher of the run to finish its batch."""


@dataclass
class LiveJob:
    """A run's watcher and the thread running it."""

    watcher: Watcher
    thread: threading.Thread

    @property
    def on(self) -> bool:
        """Running and not asked to stop."""
        return self.thread.is_alive() and not self.watcher.stop_event.is_set()

    @property
    def status(self) -> WatchStatus:
        return self.watcher.status


class LiveRegistry:
    """Process-wide map run folder → live job."""

    def __init__(self) -> None:
        self._jobs: dict[Path, LiveJob] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(run_dir: Path) -> Path:
        return Path(run_dir).expanduser().resolve()

    def job(self, run_dir: Path) -> LiveJob | None:
        with self._lock:
            return self._jobs.get(self._key(run_dir))

    def is_on(self, run_dir: Path) -> bool:
        job = self.job(run_dir)
        return job is not None and job.on

    def start(self, run_dir: Path, make_watcher: Callable[[], Watcher]) -> bool:
        """Start the run's watcher unless it is on; True if this call started it.

        ``make_watcher`` may raise (e.g. :class:`~dashboard.compare.headless.BadInput`: no eval set);
        nothing is registered then.
        """
        key = self._key(run_dir)
        with self._lock:
            old = self._jobs.get(key)
            if old is not None and old.on:
                return False
            if old is not None:
                old.thread.join(STOP_WAIT_S)  # a stopping watcher finishes its batch first: never two at once
            watcher = make_watcher()
            thread = threading.Thread(target=self._run, args=(watcher,), name=f"vlmlab-live-{key.name}", daemon=True)
            self._jobs[key] = LiveJob(watcher, thread)
            thread.start()
        logger.info("live scoring of %s started", key)
        return True

    def stop(self, run_dir: Path) -> None:
        job = self.job(run_dir)
        if job is not None:
            job.watcher.stop_event.set()

    def stop_all(self) -> None:
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.watcher.stop_event.set()

    @staticmethod
    def _run(watcher: Watcher) -> None:
        try:
            watcher.run()
        except Exception:  # already in the watcher's status (state "failed") and logged there
            logger.debug("live watcher ended with an error", exc_info=True)
