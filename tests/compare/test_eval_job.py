"""The Comparison page's Run/Stop machine, without Streamlit."""

from __future__ import annotations

from dashboard.compare.eval_job import EvalJobState, report_lines
from dashboard.compare.runner import EvalRun


def test_run_then_finish_reports_what_was_done() -> None:
    store: dict = {}
    job = EvalJobState(store)
    assert not job.is_running(("run", "set"))
    job.start(("run", "set"))
    assert job.is_running(("run", "set"))
    assert not job.is_running(("run", "other set"))  # any change in what defines the job: not this job
    assert job.report is None
    job.finish(EvalRun(scores={}, computed=3, reused=2, load_s=0.5, generation_s=1.25, errors={"ckpt-1": "boom"},
                       retries={"ckpt-1": 2, "ckpt-2": 1}))
    assert not job.is_running(("run", "set"))
    stopped, timing, errors = report_lines(job.report)
    assert stopped is None
    assert timing == "Generated 3 answers (reused 2 saved) · load 500 ms · generation 1.25 s"
    # a restarted worker that finished is a warning; a failed checkpoint says its rows are kept
    assert errors == ["ckpt-2: its worker died and was restarted 1 time(s); results are complete.",
                      "ckpt-1 failed: boom — its rows scored so far are kept; press Run to retry."]


def test_stop_leaves_a_stopped_note_and_a_new_start_clears_it() -> None:
    store: dict = {}
    job = EvalJobState(store)
    job.start("a")
    job.stop()
    assert not job.is_running("a")
    stopped, timing, errors = report_lines(job.report)
    assert stopped and "Stopped" in stopped and timing is None and errors == []
    job.start("a")
    assert job.report is None
    assert report_lines(None) == (None, None, [])


def test_a_stopped_note_belongs_to_its_job_and_a_refusal_leaves_none() -> None:
    """The stale 'Stopped. Scored examples were saved…' (issue 30): it showed for another set or settings,
    and after a public limit refused the job before anything ran."""
    store: dict = {}
    job = EvalJobState(store)
    job.stop()  # Stop with nothing running: nothing to report
    assert job.report is None
    job.start("a")
    job.stop()
    assert report_lines(job.report_for("a"))[0] is not None
    assert job.report_for("b") is None  # another job (set, checkpoints, settings): not its note
    job.start("b")
    job.abandon()  # refused by a limit: nothing ran, nothing was saved
    assert job.report is None and not job.is_running("b")
