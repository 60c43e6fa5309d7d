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


def test_the_abusive_drive_uploads_through_the_file_uploader(demo_runs_root, tmp_path) -> None:
    """The upload half of ``bench/abusive_load.py`` with small files: images reach batch mode through
    ``/_stcore/upload_file`` and the uploader's widget state (over the public budget: skipped with the
    budget's message, the rest ready), and a generated eval set of the run's rows is usable as uploaded."""
    from bench.abusive_load import Phase, _prepare_evalset, _prepare_images, big_eval_set, big_png
    from tests.browser.browser_kit import StreamlitServer

    checkpoint = checkpoint_names(demo_runs_root)[-1]
    # 3 × 5000² = 75 MP: the third image takes the batch past the public 64 MP budget
    images = [(f"big{k}.png", big_png(5000, (k * 80, 20, 20))) for k in range(3)]
    assert sum(len(data) for _, data in images) < 300_000  # under 100 KB each: many pixels from few bytes
    eval_set = big_eval_set(demo_runs_root / "demo" / "eval" / "demo.jsonl", "t", size=20_000)
    assert 19_000 < len(eval_set) <= 20_000
    server = StreamlitServer(demo_runs_root, tmp_path / "data", tmp_path / "server.log",
                             extra_env={"VLMLAB_PUBLIC": "1", "VLMLAB_PROXY_HOPS": "1"})
    phase = Phase("t", normal=0, abusive=2)

    async def drive() -> tuple[str, str]:
        async with ProtocolSession(server.url, headers={"X-Forwarded-For": "10.9.9.9"}) as session:
            shown = (await _prepare_images(session, checkpoint, images, phase)).text()
        async with ProtocolSession(server.url, headers={"X-Forwarded-For": "10.9.9.9"}) as session:
            listed = (await _prepare_evalset(session, checkpoint, eval_set, "t", phase)).text()
        return shown, listed

    try:
        shown, listed = run_in_thread(drive())
    finally:
        server.stop()
    assert "2 image(s) ready" in shown and "big2" in shown and "budget" in shown, shown
    rows = eval_set.count(b"\n")
    assert f"**{rows}** usable examples" in listed, listed
    assert len(phase.abusive_latencies_s["upload"]) == 2 and phase.errors == []
