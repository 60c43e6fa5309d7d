"""Short form of ``bench/load_test.py`` for CI: 3 browser sessions × ~20 s on 2 checkpoints.

Fails on a lost request or a starved session (fewer than a third of the mean requests).

The long form (more sessions, longer) is run by hand; its figures are in ``bench/RESULTS.md``.
"""

from __future__ import annotations

import json

import pytest

from bench.load_test import checkpoint_names, format_report, run_load_test, verdict

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_load_three_sessions_two_checkpoints(demo_runs_root, tmp_path, artifacts_dir):
    names = checkpoint_names(demo_runs_root)
    assert len(names) >= 2
    chosen = [names[-1], names[0]]  # sessions 0 and 2 share a checkpoint, session 1 uses another
    report = run_load_test(demo_runs_root, sessions=3, duration_s=20, checkpoints=chosen, budget="1GB",
                           data_dir=tmp_path / "data", log_path=artifacts_dir / "load-test-server.log")
    text = format_report(report)
    (artifacts_dir / "load-test.txt").write_text(text + "\n")
    (artifacts_dir / "load-test.json").write_text(json.dumps(report.summary(), indent=1))
    print(text)
    assert report.errors == [], text
    # No session starved: each served at least a third of the mean (the load test's own verdict).
    assert verdict(report) == [], text
    assert report.requests == len(report.latencies_s) >= 3
    # Both checkpoints fit the 1 GB budget, so each is loaded exactly once however many sessions use it.
    assert report.model_loads == report.distinct_checkpoints == 2, text
    assert report.peak_rss_bytes > report.baseline_rss_bytes > 0
