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


def test_a_p95_target_fails_a_slow_run_and_only_when_given() -> None:
    report = _report([10, 10], ["inference"] * 2)
    report.latencies_s = [0.5] * 18 + [1.4, 1.6]
    assert verdict(report) == []
    assert verdict(report, p95_target_s=2.0) == []
    problems = verdict(report, p95_target_s=1.0)
    assert len(problems) == 1 and "over the target 1.0 s" in problems[0], problems
    assert verdict(_report([10, 10], ["inference"] * 2), p95_target_s=1.0) == [
        "p95 latency None s is over the target 1.0 s"]  # nothing served is never a pass
