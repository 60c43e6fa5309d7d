"""The load test without a browser: ``bench/protocol_client.py`` against a real server.

The protocol client is what makes the issue-20 latency figures the server's own (no Chromium on
the same cores), so these tests check that it really drives the app: the page list comes from the
server, a click on an example and on Generate produce the streamed answer and its stats, and the
short load form serves every session with no lost request.
"""

from __future__ import annotations

import pytest

from bench.load_test import (
    checkpoint_names,
    first_example_id,
    format_report,
    run_in_thread,
    run_load_test,
    verdict,
)
from bench.protocol_client import ProtocolSession, click, typed

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_protocol_session_opens_inference_and_generates(server, demo_runs_root) -> None:
    example_id = first_example_id(demo_runs_root)
    checkpoint = checkpoint_names(demo_runs_root)[-1]

    async def drive() -> tuple[dict[str, str], str, str]:
        async with ProtocolSession(server.url, f"run=demo&ckpt={checkpoint}") as session:
            home = await session.open()
            assert home.status == "FINISHED_SUCCESSFULLY" and not home.errors(), home.errors()
            run = await session.open("Inference")
            run = await session.rerun(click(run.widget("button", example_id)))
            shown = run.text()
            run = await session.rerun(typed(run.widget("text_area", "Prompt"), "what colour is the square ? p1"))
            run = await session.rerun(click(run.widget("button", "Generate")))
            assert not run.errors(), run.errors()
            return session.pages, shown, run.text()

    pages, shown, answered = run_in_thread(drive())  # Playwright's sync API may hold this thread's loop
    assert {"Inference", "Comparison", "Timeline", "Attention"} <= set(pages), pages
    assert f"Example **{example_id}**" in shown
    # the page's text is Markdown source: run-derived names are escaped (``checkpoint\\-600``)
    assert "Output tokens" in answered and "p1" in answered and checkpoint in answered.replace("\\", "")


def test_protocol_load_three_sessions_two_checkpoints(demo_runs_root, tmp_path, artifacts_dir) -> None:
    names = checkpoint_names(demo_runs_root)
    report = run_load_test(demo_runs_root, sessions=3, duration_s=10, checkpoints=[names[-1], names[0]],
                           budget="1GB", data_dir=tmp_path / "data", browsers="none",
                           log_path=artifacts_dir / "load-test-protocol-server.log")
    text = format_report(report)
    (artifacts_dir / "load-test-protocol.txt").write_text(text + "\n")
    print(text)
    assert report.errors == [] and verdict(report) == [], text
    assert len(report.warmup_s) == 3 and report.requests == len(report.latencies_s) >= 3, text
    assert report.model_loads == 2, text
