"""The load test's pass/fail rule: lost requests fail it; a session is starved relative to its own page."""

from __future__ import annotations

from bench.load_test import LoadReport, verdict


def _report(counts: list[int], kinds: list[str], errors: list[str] | None = None) -> LoadReport:
    return LoadReport(sessions=len(counts), duration_s=60, checkpoints_per_session=["c"] * len(counts),
                      distinct_checkpoints=1, per_session_requests=counts, kinds_per_session=kinds,
                      errors=errors or [])


def test_a_comparison_session_is_measured_against_comparison_sessions() -> None:
    # One Comparison request is several generations: 2 beside Inference's 12 is not starvation.
    assert verdict(_report([12, 12, 12, 2], ["inference"] * 3 + ["comparison"])) == []


def test_starved_and_lost_are_reported() -> None:
    problems = verdict(_report([12, 12, 0, 2], ["inference"] * 3 + ["comparison"], errors=["session 2 request 1"]))
    assert problems[0] == "1 lost request(s) or failed session(s)"
    assert any("starved inference session(s) [2]" in p for p in problems), problems
    assert not any("comparison" in p for p in problems), problems
    assert verdict(_report([9, 10, 2], ["inference"] * 3)) == [
        "starved inference session(s) [2]: served [2] < a third of the mean 7.0"]
