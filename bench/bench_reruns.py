"""Rerun latency in a real browser: interaction -> Streamlit idle, medians of N repetitions.

    .venv/bin/python bench/bench_reruns.py --runs-root runs --reps 10

Starts ``streamlit run Home.py`` on the runs root (the demo run), opens it in headless Chromium
and times, from just before the click to the moment the app's script state last turns back to
``notRunning`` (recorded in the page by a MutationObserver, so the timing is not quantised by
polling): toggling the Timeline's log scale, moving its smoothing slider by one step, and
switching pages (Home <-> Timeline).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.browser_kit import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, goto, open_page, settle

OBSERVE_JS = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__states = [];
    new MutationObserver(() => window.__states.push([performance.now(), app.getAttribute('data-test-script-state')]))
        .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
DONE_JS = """(t0) => {
    const s = (window.__states || []).filter(e => e[0] >= t0);
    const ran = s.findIndex(e => e[1] === 'running');
    if (ran < 0) return null;
    const idle = s.slice(ran).filter(e => e[1] === 'notRunning');
    return idle.length ? idle[idle.length - 1][0] - t0 : null;
}"""


def timed(page, action) -> float:
    """Seconds from the interaction to the rerun it started being done (and the page settled)."""
    t0 = page.evaluate("performance.now()")
    action()
    page.wait_for_function(DONE_JS, arg=t0, timeout=60_000, polling="raf")
    settle(page)
    time.sleep(0.3)  # let late reruns (fragments, chart selection echoes) show up before reading
    return page.evaluate(DONE_JS, t0) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=10)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")
    with tempfile.TemporaryDirectory() as data, sync_playwright() as p:
        server = StreamlitServer(args.runs_root, Path(data), Path(data) / "server.log")
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            goto(page, server)
            settle(page)
            page.evaluate(OBSERVE_JS)
            open_page(page, "Timeline")
            page.wait_for_selector(".js-plotly-plot")
            toggle = page.locator('[data-testid="stCheckbox"]').filter(has_text="Log scale (y)").first
            results: dict[str, list[float]] = {"Timeline: log-scale toggle": [], "Timeline: smoothing slider step": [],
                                               "page switch Timeline -> Home": [], "page switch Home -> Timeline": []}
            timed(page, toggle.click)  # warm-up
            for _ in range(args.reps):
                results["Timeline: log-scale toggle"].append(timed(page, toggle.click))
            slider = page.get_by_role("slider").first
            for k in range(args.reps):
                slider.focus()
                results["Timeline: smoothing slider step"].append(
                    timed(page, lambda k=k: page.keyboard.press("ArrowRight" if k % 2 == 0 else "ArrowLeft")))
            nav = page.locator('[data-testid="stSidebarNav"] a')
            for _ in range(args.reps):
                results["page switch Timeline -> Home"].append(timed(page, nav.filter(has_text="Home").first.click))
                results["page switch Home -> Timeline"].append(
                    timed(page, nav.filter(has_text="Timeline").first.click))
        finally:
            browser.close()
            server.stop()
    print("| interaction | median ms | min ms | max ms | reps |\n|---|---:|---:|---:|---:|")
    for name, values in results.items():
        print(f"| {name} | {statistics.median(values) * 1000:.0f} | {min(values) * 1000:.0f} | "
              f"{max(values) * 1000:.0f} | {len(values)} |")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min); goal: median ≤ 150 ms")


if __name__ == "__main__":
    main()
