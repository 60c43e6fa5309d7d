"""Rerun latency in a real browser: interaction -> Streamlit idle, medians of N repetitions.

    .venv/bin/python bench/bench_reruns.py --runs-root runs --reps 10 [--baseline-checkout DIR] [--only pages]

Starts ``streamlit run Home.py`` on the runs root (the demo run), opens it in headless Chromium
and times, from the input event's own timestamp (pointerdown / keydown) to the moment the app's
script state last turns back to ``notRunning`` (recorded in the page by a MutationObserver, so
the timing is not quantised by polling): toggling the Timeline's log scale, moving its smoothing
slider by one step (back and forth, and always up: a value never drawn before, so no figure is
remembered), switching the x axis (step <-> epoch) and picking / dropping a metric (``grad_norm``)
— each of those two preceded by an untimed slider step up, so the view it asks for was never
drawn either — and switching pages (Home <-> Timeline).

``--baseline-checkout`` (e.g. a ``git worktree`` of an earlier commit) starts a second server
from that checkout on the same runs root; every repetition then runs on both, interleaved, so
the ratio is measured under the same load.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.browser.browser_kit import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, goto, open_page, settle

OBSERVE_JS = """() => {
    // The whole document, not one element: a page switch may replace the app's root element.
    // An element that *arrives* carrying the attribute (a page switch may mount a new one) is a childList
    // record, not an attribute one: without it some page switches were never seen to start.
    window.__states = [];
    const STATE = 'data-test-script-state';
    new MutationObserver(records => records.forEach(r => {
        const now = performance.now();
        if (r.type === 'attributes') { window.__states.push([now, r.target.getAttribute(STATE)]); return; }
        r.addedNodes.forEach(n => {
            if (n.nodeType !== 1) return;
            const carriers = n.hasAttribute(STATE) ? [n] : Array.from(n.querySelectorAll('[' + STATE + ']'));
            carriers.forEach(c => window.__states.push([now, c.getAttribute(STATE)]));
        });
    })).observe(document.body, {attributes: true, childList: true, subtree: true, attributeFilter: [STATE]});
    // When the person acted: the input event itself, not the moment the harness started its
    // actionability checks (Playwright's click waits for the element to be stable first).
    window.__acted = [];
    for (const type of ['pointerdown', 'keydown'])
        document.addEventListener(type, e => window.__acted.push(e.timeStamp), true);
}"""
DONE_JS = """(t0) => {
    const acted = (window.__acted || []).filter(t => t >= t0);
    if (!acted.length) return null;
    t0 = acted[0];
    const s = (window.__states || []).filter(e => e[0] >= t0);
    const ran = s.findIndex(e => e[1] === 'running');
    if (ran < 0) return null;
    const idle = s.slice(ran).filter(e => e[1] === 'notRunning');
    return idle.length ? idle[idle.length - 1][0] - t0 : null;
}"""


def timed(page, action) -> float:
    """Seconds from the interaction to the rerun it started being done (and the page settled)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    t0 = page.evaluate("performance.now()")
    action()
    try:
        page.wait_for_function(DONE_JS, arg=t0, timeout=30_000, polling="raf")
    except PlaywrightTimeout:  # the input started no rerun (e.g. a click lost on a busy machine)
        settle(page)
        return math.nan
    time.sleep(0.3)  # let late reruns (fragments, chart selection echoes) show up before reading
    return page.evaluate(DONE_JS, t0) / 1000


INTERACTIONS = ("Timeline: log-scale toggle", "Timeline: smoothing slider step",
                "Timeline: smoothing slider, a value not drawn before",
                "Timeline: x axis step <-> epoch, a view not drawn before",
                "Timeline: metric picked / dropped, a view not drawn before",
                "page switch Timeline -> Home", "page switch Home -> Timeline")
PAGE_SWITCHES = INTERACTIONS[5:]


class Session:
    """One server and one browser page on it, parked on the Timeline."""

    def __init__(self, browser, runs_root: Path, data: Path, cwd: Path) -> None:
        self.server = StreamlitServer(runs_root, data, data / "server.log", cwd=cwd)
        self.page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        goto(self.page, self.server)
        settle(self.page)
        self.page.evaluate(OBSERVE_JS)
        open_page(self.page, "Timeline")
        self.page.wait_for_selector(".js-plotly-plot")
        self.toggle().click()  # warm-up
        settle(self.page)

    def toggle(self):
        return self.page.locator('[data-testid="stCheckbox"]').filter(has_text="Log scale (y)").first

    def measure(self, interaction: str, k: int) -> float:
        page = self.page
        nav = page.locator('[data-testid="stSidebarNav"] a')
        if interaction == INTERACTIONS[0]:
            return timed(page, self.toggle().click)
        if interaction == INTERACTIONS[1]:
            page.get_by_role("slider").first.focus()
            return timed(page, lambda: page.keyboard.press("ArrowRight" if k % 2 == 0 else "ArrowLeft"))
        if interaction == INTERACTIONS[2]:  # always up: every figure is new (no remembered figure)
            page.get_by_role("slider").first.focus()
            return timed(page, lambda: page.keyboard.press("ArrowRight"))
        if interaction in INTERACTIONS[3:5]:
            page.get_by_role("slider").first.focus()  # untimed: a smoothing never drawn with the next view
            timed(page, lambda: page.keyboard.press("ArrowRight"))
            if interaction == INTERACTIONS[3]:
                radio = page.locator('[data-testid="stRadio"]').filter(has_text="X axis").first
                target = "Epoch" if radio.get_by_role("radio", name="Step").is_checked() else "Step"
                return timed(page, radio.get_by_text(target, exact=True).click)
            box = page.locator('[data-testid="stMultiSelect"]').filter(has_text="Metrics").first.locator("input")
            box.focus()
            if k % 2 == 0:
                box.fill("grad_norm")  # typing reruns nothing; Enter picks the first match
                seconds = timed(page, lambda: page.keyboard.press("Enter"))
            else:
                seconds = timed(page, lambda: page.keyboard.press("Backspace"))  # drops the last pick (grad_norm)
            page.keyboard.press("Escape")  # close the open list: it hides the rest of the page from get_by_role
            box.blur()
            return seconds
        if interaction == INTERACTIONS[5]:
            return timed(page, nav.filter(has_text="Home").first.click)
        return timed(page, lambda: (nav.filter(has_text="Timeline").first.click(),
                                    page.wait_for_selector(".js-plotly-plot")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--baseline-checkout", type=Path, help="an earlier checkout to time interleaved")
    parser.add_argument("--only", choices=("controls", "pages"), help="time only the chart controls or only "
                        "the page switches (default: both)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    here = Path(__file__).resolve().parents[1]
    variants = {"this checkout": here}
    if args.baseline_checkout:
        variants["baseline"] = args.baseline_checkout.resolve()
    print(f"load average {os.getloadavg()[0]:.1f} (1 min); variants: "
          + ", ".join(f"{k} = {v}" for k, v in variants.items()))
    results: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as data, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        sessions: dict[str, Session] = {}
        try:
            for name, cwd in variants.items():
                (Path(data) / name).mkdir()
                sessions[name] = Session(browser, args.runs_root, Path(data) / name, cwd)
            # Page switches go in pairs (to Home, back to the Timeline), so each one is a real switch.
            groups = [*((i,) for i in INTERACTIONS[:5] if args.only != "pages"),
                      *([PAGE_SWITCHES] if args.only != "controls" else [])]
            for group in groups:
                for k in range(args.reps):
                    for name, session in sessions.items():  # interleaved: same load for both
                        for interaction in group:
                            results.setdefault((interaction, name), []).append(session.measure(interaction, k))
        finally:
            for session in sessions.values():
                session.server.stop()
            browser.close()
    print("| interaction | variant | median ms | min ms | max ms | reps |\n|---|---|---:|---:|---:|---:|")
    for key, measured in results.items():
        values = results[key] = [v for v in measured if not math.isnan(v)]
        lost = len(measured) - len(values)
        if not values:
            print(f"| {key[0]} | {key[1]} | – | – | – | 0 ({lost} started no rerun) |")
            continue
        print(f"| {key[0]} | {key[1]} | {statistics.median(values) * 1000:.0f} | {min(values) * 1000:.0f} | "
              f"{max(values) * 1000:.0f} | {len(values)}{f' ({lost} started no rerun)' if lost else ''} |")
    if "baseline" in variants:
        for interaction in INTERACTIONS:
            if not (results.get((interaction, "this checkout")) and results.get((interaction, "baseline"))):
                continue
            ratio = statistics.median(results[(interaction, "this checkout")]) / statistics.median(
                results[(interaction, "baseline")])
            print(f"{interaction}: {ratio:.2f}× the baseline's median")
    print(f"load average {os.getloadavg()[0]:.1f} (1 min); goal: median ≤ 150 ms")


if __name__ == "__main__":
    main()
