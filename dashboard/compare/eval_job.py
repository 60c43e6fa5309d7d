"""Comparison's Run/Stop machine for an eval-set job, kept in a plain mapping (``session_state``).

States: idle → running (Run pressed for a job) → idle with a report (finished, or Stop
pressed). Run and Stop are button callbacks, so the state changes before the script reruns;
a job is identified by everything that defines its results (run, set, checkpoints, settings,
batch size), so changing any of them means "not running this job".
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from typing import Any

from dashboard.compare.runner import EvalRun
from dashboard.formatting import fmt_seconds

JOB_KEY = "cmp.eval.job"
REPORT_KEY = "cmp.eval.report"


class EvalJobState:
    """Start/stop/finish an eval job; the report says what happened to the last one."""

    def __init__(self, store: MutableMapping[str, Any], job_key: str = JOB_KEY, report_key: str = REPORT_KEY):
        self._store = store
        self._job_key = job_key
        self._report_key = report_key

    def start(self, job: Hashable) -> None:
        self._store[self._job_key] = job
        self._store.pop(self._report_key, None)

    def stop(self) -> None:
        """Stop pressed: the report says so, for the job that was running (none: nothing to report)."""
        job = self._store.get(self._job_key)
        self._store[self._job_key] = None
        if job is not None:
            self._store[self._report_key] = {"stopped": True, "job": job}

    def abandon(self) -> None:
        """The job was refused before it ran (a public limit): no report, nothing was saved."""
        self._store[self._job_key] = None
        self._store.pop(self._report_key, None)

    def is_running(self, job: Hashable) -> bool:
        return self._store.get(self._job_key) == job

    def finish(self, run: EvalRun) -> None:
        job = self._store.get(self._job_key)
        self._store[self._job_key] = None
        self._store[self._report_key] = {"job": job, "stopped": run.stopped, "computed": run.computed,
                                         "reused": run.reused,
                                         "load_s": run.load_s, "generation_s": run.generation_s,
                                         "errors": dict(run.errors), "retries": dict(run.retries),
                                         "backend": run.backend}

    @property
    def report(self) -> dict[str, Any] | None:
        return self._store.get(self._report_key)

    def report_for(self, job: Hashable) -> dict[str, Any] | None:
        """The last report if it is about ``job`` (another set or settings: its report is stale)."""
        report = self.report
        return report if report is not None and report.get("job") == job else None


def report_lines(report: dict[str, Any] | None) -> tuple[str | None, str | None, list[str]]:
    """(stopped note, timing line, problems: restarted workers, then failed checkpoints) for the last report."""
    if not report:
        return None, None, []
    stopped = ("Stopped. Scored examples were saved; press Run to continue with the rest."
               if report.get("stopped") else None)
    timing = (f"Generated {report['computed']} answers (reused {report['reused']} saved) · "
              f"load {fmt_seconds(report['load_s'])} · generation {fmt_seconds(report['generation_s'])}"
              if "computed" in report else None)
    errors = report.get("errors", {})
    lines = [f"{name}: its worker died and was restarted {count} time(s); results are complete."
             for name, count in report.get("retries", {}).items() if name not in errors]
    lines += [f"{name} failed: {error} — its rows scored so far are kept; press Run to retry."
              for name, error in errors.items()]
    return stopped, timing, lines
