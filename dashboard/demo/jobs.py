"""One demo build per process, watched by every session: the Home page's *Build the demo run*.

Streamlit serves all visitors from one process, so two visitors clicking *Build* at once must
not start two trainings into the same folder (the second used to fail on the first's
half-renamed files). A :class:`DemoBuildJob` per output folder, created once per process
(:func:`demo_build_job`), runs the build in a background thread under a lock and keeps its
progress in a shared :class:`BuildStatus` every session can poll.

The build writes into the run folder itself, so its checkpoints show up (and are scored live) as
they are saved: the demo is the first live run. Until the last checkpoint is written the folder's
``demo_run.json`` says ``"complete": false`` and Home shows it as being built (or, after a crash,
as interrupted, with a button to resume), never as the finished demo. A build started on an
interrupted one resumes from its last checkpoint (:func:`dashboard.demo.build.build_demo_run`).
With ``VLMLAB_DEMO_AUTOBUILD=1`` (``scripts/launch.sh`` sets it), or on a Hugging Face Space unless
that variable says otherwise (:func:`autobuild_enabled`), the first page view starts the
build when the demo is missing or unfinished (:func:`ensure_demo_build`), so the server never
waits for training.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # build.py imports transformers' Trainer: only a build needs it
    from dashboard.demo.build import DemoReport

log = logging.getLogger(__name__)

BuildState = Literal["idle", "running", "done", "failed"]
Builder = Callable[..., "DemoReport"]


@dataclass(frozen=True)
class BuildStatus:
    """A snapshot of one build job (safe to read from any session)."""

    state: BuildState = "idle"
    fraction: float = 0.0
    message: str = ""
    report: DemoReport | None = None
    error: str | None = None
    builds_started: int = 0
    """Builds this process started into this folder (the browser test checks it stays 1)."""
    started_at: float | None = None


class DemoBuildJob:
    """Builds the demo run into ``out_dir`` at most once at a time, in a background thread."""

    def __init__(self, out_dir: Path, builder: Builder | None = None, preset: str = "full", seed: int = 0) -> None:
        self.out_dir = Path(out_dir)
        self.preset = preset
        self.seed = seed
        self._builder = builder
        self._lock = threading.Lock()
        self._status = BuildStatus()
        self._thread: threading.Thread | None = None

    @property
    def status(self) -> BuildStatus:
        with self._lock:
            return self._status

    def start(self) -> bool:
        """Start a build unless one is running; True if this call started it."""
        with self._lock:
            if self._status.state == "running":
                return False
            self._status = BuildStatus(state="running", message="starting the demo build",
                                       builds_started=self._status.builds_started + 1, started_at=time.time())
            self._thread = threading.Thread(target=self._run, name="vlmlab-demo-build", daemon=True)
            self._thread.start()
        # On stderr, i.e. the server log whatever logging is configured: one line per build started.
        print(f"vlmlab: demo build started into {self.out_dir} (build #{self._status.builds_started} of this "
              "process)", file=sys.stderr, flush=True)
        return True

    def wait(self, timeout: float | None = None) -> BuildStatus:
        """Block until the running build ends (tests, CLI); returns the final status."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status

    def _progress(self, fraction: float, message: str) -> None:
        with self._lock:
            self._status = dataclasses.replace(self._status, fraction=min(max(fraction, 0.0), 1.0), message=message)

    def _run(self) -> None:
        try:
            report = self._build_in_place()
        except Exception as exc:  # shown to every watching session; the process keeps serving
            log.exception("demo build into %s failed", self.out_dir)
            with self._lock:
                self._status = dataclasses.replace(self._status, state="failed", error=f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            resumed = f" (resumed from {report.resumed_from})" if report.resumed_from else ""
            self._status = dataclasses.replace(self._status, state="done", fraction=1.0, report=report,
                                               message=f"built {report.n_checkpoints} checkpoints{resumed}")
        log.info("demo build into %s finished in %.0f s", self.out_dir, report.seconds)

    def _build_in_place(self) -> DemoReport:
        from dashboard.demo.build import DemoDirError
        from dashboard.demo.marker import is_demo_run

        target = self.out_dir
        if target.exists() and not (target.is_dir() and (is_demo_run(target) or not any(target.iterdir()))):
            raise DemoDirError(f"{target} exists and is not a previous demo run; refusing to replace it")
        target.parent.mkdir(parents=True, exist_ok=True)
        builder = self._builder or _default_builder()
        return builder(target, preset=self.preset, seed=self.seed, progress=self._progress)


def _default_builder() -> Builder:
    from dashboard.demo.build import build_demo_run

    return build_demo_run


_JOBS: dict[Path, DemoBuildJob] = {}
_JOBS_LOCK = threading.Lock()


PRESET_ENV = "VLMLAB_DEMO_PRESET"
"""Which preset Home's button builds (``full`` unless set; the browser tests use ``test``)."""


def finished_build(out_dir: Path) -> BuildStatus | None:
    """The status of this process's completed build into ``out_dir``, if one completed."""
    with _JOBS_LOCK:
        job = _JOBS.get(Path(out_dir).expanduser().resolve())
    status = job.status if job is not None else None
    return status if status is not None and status.state == "done" else None


def build_running(out_dir: Path) -> bool:
    """True while this process is building the demo run into ``out_dir``."""
    with _JOBS_LOCK:
        job = _JOBS.get(Path(out_dir).expanduser().resolve())
    return job is not None and job.status.state == "running"


def running_build() -> BuildStatus | None:
    """The status of a demo build this process is running now (into any folder), if there is one:
    pages that need a run say it is being built instead of asking the visitor to pick one."""
    with _JOBS_LOCK:
        jobs = list(_JOBS.values())
    return next((job.status for job in jobs if job.status.state == "running"), None)


def demo_build_job(out_dir: Path, builder: Builder | None = None) -> DemoBuildJob:
    """The one build job of this process for ``out_dir`` (every session gets the same object)."""
    key = Path(out_dir).expanduser().resolve()
    with _JOBS_LOCK:
        job = _JOBS.get(key)
        if job is None:
            job = _JOBS[key] = DemoBuildJob(key, builder=builder, preset=os.environ.get(PRESET_ENV, "full"))
        return job


AUTOBUILD_ENV = "VLMLAB_DEMO_AUTOBUILD"
"""``1``: the first page view builds the demo run when it is missing or unfinished (``scripts/launch.sh``)."""


def autobuild_enabled(env: Mapping[str, str] | None = None) -> bool:
    """``VLMLAB_DEMO_AUTOBUILD`` if set (``1`` on, anything else off), else whether this runs on a Space.

    A Space visitor is a stranger who opened a link: the demo builds on the first visit, with its
    progress on Home, rather than waiting behind a button (``VLMLAB_DEMO_AUTOBUILD=0`` restores the
    button). The one rule for both launch routes; README "Hugging Face Space" states it.
    """
    from dashboard.public import on_space

    env = os.environ if env is None else env
    value = env.get(AUTOBUILD_ENV, "").strip()
    return value == "1" if value else on_space(env)


def ensure_demo_build(out_dir: Path) -> DemoBuildJob | None:
    """With autobuild on, start the build of ``out_dir`` if the demo is missing or unfinished.

    Once per process: a build that failed is not restarted on every page view (Home offers a
    button). Returns the job when one is (or was) started here, else None.
    """
    from dashboard.demo.marker import is_incomplete_demo

    if not autobuild_enabled():
        return None
    out = Path(out_dir)
    missing = not out.exists() or (out.is_dir() and not any(out.iterdir()))
    if not (missing or is_incomplete_demo(out)):
        return None
    job = demo_build_job(out)
    if job.status.state == "idle":
        job.start()
    return job
