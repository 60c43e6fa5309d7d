"""Where a rerun's time goes in the browser: the same interactions as ``bench_reruns.py``, split.

    .venv/bin/python bench/profile_reruns.py --runs-root runs --reps 6 [CHECKOUT ...]

For each checkout (default: this one), interleaved rep by rep: a smoothing value never drawn
before, Timeline -> Home and Home -> Timeline, each timed from the input event to the app's
script state last turning ``notRunning`` (as ``bench_reruns.py`` does), and split by
* the websocket messages the page received (hooked in the page): when the first and the last
  one before idle arrived, how many, how many bytes, the biggest (the figure);
* a Chrome DevTools CPU profile of the same window: milliseconds with Plotly.js on the stack
  (Streamlit's ``PlotlyChart`` chunk) and all non-idle JavaScript-thread time.
Medians per checkout and interaction are printed.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_reruns import OBSERVE_JS, timed
from tests.browser.browser_kit import CHROMIUM, CHROMIUM_ARGS, StreamlitServer, goto, open_page, settle

WS_HOOK_JS = """(() => {
    window.__msgs = [];
    const add = WebSocket.prototype.addEventListener, seen = new WeakSet();
    const hook = ws => { if (seen.has(ws)) return; seen.add(ws);
        add.call(ws, 'message', e => window.__msgs.push(
            [performance.now(), e.data.byteLength || e.data.size || e.data.length || 0])); };
    WebSocket.prototype.addEventListener = function (...a) { hook(this); return add.apply(this, a); };
    const d = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
    Object.defineProperty(WebSocket.prototype, 'onmessage', {configurable: true,
        set(f) { hook(this); d.set.call(this, f); }, get() { return d.get.call(this); }});
})()"""
SPLIT_JS = """(t0) => {
    const acted = window.__acted.filter(t => t >= t0)[0];
    const idle = window.__states.filter(e => e[0] >= acted && e[1] === 'notRunning');
    if (!idle.length) return null;
    const done = idle[idle.length - 1][0];
    const m = window.__msgs.filter(e => e[0] >= acted && e[0] <= done);
    if (!m.length) return null;
    return {total: done - acted, first_message: m[0][0] - acted, last_message: m[m.length - 1][0] - acted,
            messages: m.length, bytes: m.reduce((s, e) => s + e[1], 0), biggest: Math.max(...m.map(e => e[1]))};
}"""


def cpu_split(profile: dict) -> tuple[float, float]:
    """(ms with Plotly.js on the stack, ms of non-idle samples) of a DevTools CPU profile."""
    nodes = {n["id"]: n for n in profile["nodes"]}
    parent = {c: n["id"] for n in profile["nodes"] for c in n.get("children", [])}
    plotly = busy = 0.0
    for sample, delta in zip(profile["samples"], profile["timeDeltas"], strict=False):
        if nodes[sample]["callFrame"]["functionName"] == "(idle)":
            continue
        busy += delta
        node: int | None = sample
        while node is not None:
            if nodes[node]["callFrame"]["url"].rsplit("/", 1)[-1].startswith("PlotlyChart"):
                plotly += delta
                break
            node = parent.get(node)
    return plotly / 1000, busy / 1000


def _action(page, label: str):
    """The input of one interaction (the slider is focused first, untimed)."""
    nav = page.locator('[data-testid="stSidebarNav"] a')
    if label.startswith("smoothing"):
        page.get_by_role("slider").first.focus()
        return lambda: page.keyboard.press("ArrowRight")
    if label.endswith("Home"):
        return nav.filter(has_text="Home").first.click
    return lambda: (nav.filter(has_text="Timeline").first.click(), page.wait_for_selector(".js-plotly-plot"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("checkouts", type=Path, nargs="*", help="checkouts to compare (default: this one)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    checkouts = [c.resolve() for c in args.checkouts] or [Path(__file__).resolve().parents[1]]
    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")
    rows: dict[tuple[str, Path], list[dict]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as data, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        sessions = []
        try:
            for n, cwd in enumerate(checkouts):
                (Path(data) / str(n)).mkdir()
                server = StreamlitServer(args.runs_root, Path(data) / str(n), Path(data) / f"{n}.log", cwd=cwd)
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                context.add_init_script(WS_HOOK_JS)
                page = context.new_page()
                sessions.append((cwd, server, page))
                goto(page, server)
                settle(page)
                page.evaluate(OBSERVE_JS)
                open_page(page, "Timeline")
                page.wait_for_selector(".js-plotly-plot")
                settle(page)
            for _ in range(args.reps):
                for cwd, _server, page in sessions:
                    cdp = page.context.new_cdp_session(page)
                    cdp.send("Profiler.enable")
                    cdp.send("Profiler.setSamplingInterval", {"interval": 250})
                    for label in ("smoothing, a value not drawn before", "Timeline -> Home", "Home -> Timeline"):
                        action = _action(page, label)
                        t0 = page.evaluate("performance.now()")
                        cdp.send("Profiler.start")
                        seconds = timed(page, action)
                        plotly, busy = cpu_split(cdp.send("Profiler.stop")["profile"])
                        split = None if math.isnan(seconds) else page.evaluate(SPLIT_JS, t0)
                        settle(page)
                        if split:
                            rows[(label, cwd)].append({**split, "plotly_ms": plotly, "js_busy_ms": busy})
                    cdp.detach()
        finally:
            for _cwd, server, _page in sessions:
                server.stop()
            browser.close()
    print(f"load average {os.getloadavg()[0]:.1f} (1 min); medians in ms (bytes: whole messages)")
    keys = ("total", "first_message", "last_message", "plotly_ms", "js_busy_ms", "messages", "bytes", "biggest")
    print("| interaction | checkout | " + " | ".join(keys) + " | n |\n|---|---|" + "---:|" * (len(keys) + 1))
    for (label, cwd), measured in rows.items():
        medians = [statistics.median(m[k] for m in measured) for k in keys]
        print(f"| {label} | {cwd} | " + " | ".join(f"{v:.0f}" for v in medians) + f" | {len(measured)} |")


if __name__ == "__main__":
    main()
