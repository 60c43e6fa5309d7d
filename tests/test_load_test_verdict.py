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


def _abuse_result(unloaded_served: list[int], loaded_served: list[int], generation_s: list[float],
                  peak_rss: int = 600 * 2**20, errors: list[str] | None = None) -> dict:
    from bench.abusive_load import Phase

    unloaded = Phase("unloaded", normal=2, abusive=0, served=unloaded_served)
    loaded = Phase("loaded", normal=2, abusive=1, served=loaded_served, errors=errors or [])
    for phase in (unloaded, loaded):
        phase.normal_latencies_s = {"generation": generation_s, "rerun": [0.1, 0.2], "page_load": [0.3, 0.4]}
    return {"_phases": [unloaded, loaded], "peak_rss_bytes": peak_rss, "budget_bytes": 10**9}


def test_the_abusive_verdict_passes_a_run_within_every_bound() -> None:
    from bench.abusive_load import verdict as abuse_verdict

    assert abuse_verdict(_abuse_result([10, 10], [5, 6, 40], [0.3] * 19 + [0.9]), p95_target_s=1.0) == []


def test_the_abusive_verdict_names_each_broken_bound() -> None:
    from bench.abusive_load import verdict as abuse_verdict

    problems = abuse_verdict(_abuse_result([10, 10], [4, 6, 40], [0.3] * 18 + [2.0, 2.5], peak_rss=2 * 10**9,
                                           errors=["session 3 request 2: TimeoutError"]), p95_target_s=1.0)
    assert problems[0] == "loaded: 1 lost request(s) or failed session(s)"
    assert any(p.startswith("loaded normal generation p95") for p in problems), problems
    assert not any("rerun" in p or "page_load" in p for p in problems), problems  # those were fast
    assert any("normal visitor 0: served 4 loaded vs 10 unloaded" in p for p in problems), problems
    assert not any("normal visitor 1" in p for p in problems), problems  # 6 of 10 is within 2×
    assert any("over the 954 MiB budget" in p for p in problems), problems  # RSS of the whole process tree
