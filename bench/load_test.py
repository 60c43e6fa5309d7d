"""Bounded load test: K concurrent browser sessions generating on the same and different checkpoints.

Starts ``streamlit run Home.py`` on a free loopback port (the same harness as the browser tests),
opens K headless-Chromium sessions (one browser, K isolated contexts = K Streamlit sessions) and,
for a fixed time, has each session pick its checkpoint in the sidebar and press Generate on the
Inference page over and over. Reports requests served, errors, p50/p95 latency (click → answer
fully rendered), the server's peak RSS (psutil sampling thread) next to the pool budget, and
the number of model loads the pool performed (read from the sidebar's "Model pool" panel).

``--mix inference,comparison,attention`` gives sessions different pages, round-robin: a
Comparison session runs its default checkpoint selection on a fresh prompt (waits for "All
outputs cached"), an Attention session presses "Generate and capture" on a fresh prompt (waits
for a new capture's token control). Latencies are also reported per page.

``--browsers none`` drops Chromium: each session speaks Streamlit's websocket protocol from
Python (``bench/protocol_client.py``), so the figures are the server's alone — on this 2-core
machine K Chromium pages otherwise take most of the CPU. ``--warmup N`` makes N requests per
session before the clock (a cold process's imports and first model loads, reported apart);
``--p95-target S`` also fails the run when the steady-state p95 is over S seconds.

    .venv/bin/python bench/load_test.py --runs-root /path/with/demo --sessions 4 --duration 60
    .venv/bin/python bench/load_test.py --runs-root /path/with/demo --sessions 6 --duration 60 \
        --distinct 3 --browsers none --p95-target 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.protocol_client import ProtocolSession, click, typed  # noqa: E402
from dashboard.config import parse_size  # noqa: E402
from tests.browser.browser_kit import _SETTLED_JS, CHROMIUM, CHROMIUM_ARGS, StreamlitServer  # noqa: E402

REQUEST_TIMEOUT_MS = int(os.environ.get("VLMLAB_LOAD_REQUEST_TIMEOUT_S", "180")) * 1000
"""A request not answered within this is lost (env override for quicker experiments)."""
_LOADS_RE = re.compile(r"Model loads since start: (\d+)")


@dataclass
class LoadReport:
    """What one load-test run measured (all times in seconds, memory in bytes)."""

    sessions: int
    duration_s: float
    checkpoints_per_session: list[str]
    distinct_checkpoints: int
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    """Click on Generate → answer fully rendered (the request as the server sees it)."""
    cycles_s: list[float] = field(default_factory=list)
    """Typing the prompt → answer rendered: includes the widget-commit rerun before the click."""
    per_session_requests: list[int] = field(default_factory=list)
    kinds_per_session: list[str] = field(default_factory=list)
    """Which page each session drives (``KINDS``)."""
    latencies_by_kind: dict[str, list[float]] = field(default_factory=dict)
    request_log: list[tuple[int, str, float, float]] = field(default_factory=list)
    """(session, kind, seconds since the clock started, latency) per served request: shows whether
    slow requests are the first ones (model loads) or spread over the run."""
    warmup_s: list[float] = field(default_factory=list)
    """Each session's warm-up requests, before the clock: the process's first model loads and
    imports land here (reported, not mixed into the steady-state percentiles)."""
    warmup_requests: int = 1
    model_loads: int | None = None
    browsers: str = "one"
    load_average: tuple[float, float, float] | None = None
    budget_bytes: int = 0
    baseline_rss_bytes: int = 0
    peak_rss_bytes: int = 0
    wall_s: float = 0.0

    def percentile(self, q: float) -> float | None:
        if not self.latencies_s:
            return None
        if len(self.latencies_s) == 1:
            return self.latencies_s[0]
        return statistics.quantiles(self.latencies_s, n=100, method="inclusive")[int(q) - 1]

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("latencies_s")
        data.pop("cycles_s")
        data["latency_by_kind"] = {kind: _quantiles(values) for kind, values in data.pop("latencies_by_kind").items()}
        cycles = sorted(self.cycles_s)
        data.update(p50_s=self.percentile(50), p95_s=self.percentile(95), max_s=max(self.latencies_s, default=None),
                    cycle_p50_s=cycles[len(cycles) // 2] if cycles else None,
                    cycle_max_s=cycles[-1] if cycles else None,
                    throughput_rps=self.requests / self.wall_s if self.wall_s else None)
        return data


def _quantiles(values: list[float]) -> dict:
    """n, p50, p95, max of one page's latencies (p95 by the same inclusive method as the totals)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    p95 = ordered[0] if len(ordered) == 1 else statistics.quantiles(ordered, n=100, method="inclusive")[94]
    return {"n": len(ordered), "p50_s": statistics.median(ordered), "p95_s": p95, "max_s": ordered[-1]}


class MemorySampler(threading.Thread):
    """Samples the RSS of a process (and its children) until stopped; keeps the peak."""

    def __init__(self, pid: int, interval_s: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.peak = 0
        self._stop_event = threading.Event()

    def rss(self) -> int:
        try:
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
            return total
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self.rss())
            self._stop_event.wait(self.interval_s)

    def stop(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        return self.peak


# ----------------------------------------------------------------------------- async browser steps
async def settle(page, timeout: float = REQUEST_TIMEOUT_MS) -> None:
    await page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    await page.wait_for_function(_SETTLED_JS, timeout=timeout, polling=100)


KINDS = {"inference": "Inference", "comparison": "Comparison", "attention": "Attention"}
"""Session kind → the page it drives."""


async def prepare_session(page, url: str, checkpoint: str, example_id: str, kind: str = "inference") -> None:
    """Open ``kind``'s page, choose ``checkpoint`` in the sidebar, click eval example ``example_id``."""
    await page.goto(url)
    await settle(page)
    title = KINDS[kind]
    await page.locator('[data-testid="stSidebarNav"] a', has_text=title).first.click()
    await page.wait_for_selector(f'h1:has-text("{title}")')
    await settle(page)
    sidebar = page.locator('[data-testid="stSidebar"]')
    await sidebar.get_by_role("combobox", name="Checkpoint", exact=True).first.click()
    await page.locator('[role="option"]').filter(has_text=f"{checkpoint} ").first.click()
    await settle(page)
    await page.locator('[data-testid="stButton"] button').filter(has_text=example_id).first.click()
    await page.get_by_text(f"Example {example_id}").first.wait_for()
    await settle(page)


async def one_request(page, marker: str) -> float:
    """Type a prompt carrying ``marker``, press Generate, wait for the rendered answer; seconds."""
    box = page.get_by_label("Prompt", exact=True)
    await box.fill(f"what colour is the square ? {marker}")
    await box.press("Control+Enter")
    await settle(page)
    start = time.perf_counter()
    await page.locator('[data-testid="stButton"] button').filter(has_text="Generate").first.click()
    await page.wait_for_function(
        """([marker, settled]) => {
            const main = document.querySelector('[data-testid="stMain"]');
            if (!main) return false;
            const text = main.textContent;
            const failed = main.querySelector('[data-testid="stException"], [data-testid="stAlertContentError"]');
            return (failed !== null || (text.includes(marker) && text.includes('Output tokens')))
                && eval(settled)();
        }""", arg=[marker, _SETTLED_JS], timeout=REQUEST_TIMEOUT_MS, polling=50)
    elapsed = time.perf_counter() - start
    failed = page.locator('[data-testid="stMain"]').locator(
        '[data-testid="stException"], [data-testid="stAlertContentError"]')
    if await failed.count():
        raise RuntimeError((await failed.first.inner_text())[:300])
    return elapsed


_FAILED_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    return main && main.querySelector('[data-testid="stException"], [data-testid="stAlertContentError"]');
}"""


async def _raise_if_failed(page) -> None:
    failed = page.locator('[data-testid="stMain"]').locator(
        '[data-testid="stException"], [data-testid="stAlertContentError"]')
    if await failed.count():
        raise RuntimeError((await failed.first.inner_text())[:300])


async def comparison_request(page, marker: str) -> float:
    """Fresh prompt (nothing cached), press "Run N checkpoint(s)", wait for "All outputs cached"; seconds."""
    box = page.get_by_label("Prompt", exact=True)
    await box.fill(f"what colour is the square ? {marker}")
    await box.press("Control+Enter")
    await settle(page)
    start = time.perf_counter()
    await page.locator('[data-testid="stButton"] button').filter(has_text="checkpoint(s)").first.click()
    await page.wait_for_function(
        """([failed, settled]) => {
            const done = [...document.querySelectorAll('[data-testid="stButton"] button')]
                .some(b => b.textContent.includes('All outputs cached'));
            return (done || eval(failed)()) && eval(settled)();
        }""", arg=[_FAILED_JS, _SETTLED_JS], timeout=REQUEST_TIMEOUT_MS, polling=50)
    elapsed = time.perf_counter() - start
    await _raise_if_failed(page)
    return elapsed


_CAPTURE_ID_JS = r"""() => {
    // The token control's key carries id(captured run): a new capture draws a new key.
    for (const el of document.querySelectorAll('[class*="st-key-attn"]')) {
        const m = el.className.match(/st-key-attn\W?token\W?(\d+)/);
        if (m) return m[1];
    }
    return null;
}"""


async def attention_request(page, marker: str) -> float:
    """Fresh prompt, press "Generate and capture", wait for a new capture's token control; seconds."""
    box = page.get_by_label("Prompt", exact=True)
    await box.fill(f"what colour is the square ? {marker}")
    await box.press("Enter")
    await settle(page)
    before = await page.evaluate(_CAPTURE_ID_JS)
    start = time.perf_counter()
    await page.locator('[data-testid="stButton"] button').filter(has_text="Generate and capture").first.click()
    await page.wait_for_function(
        """([before, captureId, failed, settled]) => {
            const now = eval(captureId)();
            return ((now !== null && now !== before) || eval(failed)()) && eval(settled)();
        }""", arg=[before, _CAPTURE_ID_JS, _FAILED_JS, _SETTLED_JS], timeout=REQUEST_TIMEOUT_MS, polling=50)
    elapsed = time.perf_counter() - start
    await _raise_if_failed(page)
    return elapsed


REQUESTS = {"inference": one_request, "comparison": comparison_request, "attention": attention_request}


async def read_model_loads(browser, url: str) -> int | None:
    """Open a fresh session, expand the sidebar's "Model pool" panel, read the load counter."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(REQUEST_TIMEOUT_MS)
    try:
        await page.goto(url, timeout=REQUEST_TIMEOUT_MS)
        await settle(page)
        await page.locator('[data-testid="stSidebar"] [data-testid="stExpander"]').filter(
            has_text="Model pool").locator("summary").first.click()
        caption = page.get_by_text("Model loads since start:")
        await caption.first.wait_for()
        match = _LOADS_RE.search(await caption.first.inner_text())
        return int(match.group(1)) if match else None
    finally:
        await context.close()


async def _setup_failed(report: LoadReport, barrier: asyncio.Barrier, index: int, stage: str,
                        exc: Exception) -> None:
    """A session that never got ready: count it as failed and release the others from the barrier."""
    report.errors.append(f"session {index} {stage}: {type(exc).__name__}: {str(exc)[:200]}")
    await barrier.abort()


async def _start_clock(barrier: asyncio.Barrier, shared: dict, report: LoadReport) -> None:
    """Wait until every session is ready; the last one to arrive starts the clock for all."""
    try:
        if await barrier.wait() == 0:
            shared["deadline"] = time.monotonic() + report.duration_s
            shared["started"] = time.perf_counter()
    except asyncio.BrokenBarrierError:
        pass
    await asyncio.sleep(0)  # let the barrier's winner set the deadline


def _record(report: LoadReport, index: int, kind: str, shared: dict, cycle_start: float, latency: float) -> None:
    """One served request: its latency, its place in the request log and the full cycle's length."""
    report.latencies_s.append(latency)
    report.latencies_by_kind.setdefault(kind, []).append(latency)
    report.request_log.append((index, kind, round(cycle_start - shared["started"], 2), round(latency, 3)))
    report.cycles_s.append(time.perf_counter() - cycle_start)
    report.requests += 1


async def session_loop(browser, url: str, index: int, checkpoint: str, example_id: str, shared: dict,
                       report: LoadReport, barrier: asyncio.Barrier, kind: str = "inference") -> None:
    """Prepare, wait until every session is ready (the clock starts then), request until the deadline.

    ``browser`` is the shared Chromium, or a callable returning a fresh one (one browser per session).
    """
    own_browser = None
    if callable(browser):
        own_browser = browser = await browser()
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    page.set_default_timeout(REQUEST_TIMEOUT_MS)
    served = 0
    try:
        try:
            await prepare_session(page, url, checkpoint, example_id, kind)
        except Exception as exc:
            await _setup_failed(report, barrier, index, "setup", exc)
            return
        try:
            for w in range(report.warmup_requests):
                report.warmup_s.append(await REQUESTS[kind](page, f"s{index}w{w}"))
        except Exception as exc:
            await _setup_failed(report, barrier, index, "warm-up", exc)
            return
        await _start_clock(barrier, shared, report)
        n = 0
        while time.monotonic() < shared["deadline"]:
            n += 1
            try:
                cycle_start = time.perf_counter()
                latency = await REQUESTS[kind](page, f"s{index}r{n}")
                _record(report, index, kind, shared, cycle_start, latency)
                served += 1
            except Exception as exc:
                report.errors.append(f"session {index} request {n}: {type(exc).__name__}: {str(exc)[:200]}")
                if shared.get("shots"):
                    with contextlib.suppress(Exception):
                        dump_server_stacks(shared["server_pid"], Path(shared["shots"]) / f"stall-s{index}-r{n}.txt")
                        await page.screenshot(path=str(Path(shared["shots"]) / f"stall-s{index}-r{n}.png"),
                                              full_page=True)
                try:
                    await prepare_session(page, url, checkpoint, example_id, kind)  # recover like a user: reload
                except Exception as again:
                    report.errors.append(f"session {index} recovery: {type(again).__name__}")
                    return
        shared["ended"] = max(shared.get("ended", 0.0), time.perf_counter())
    finally:
        report.per_session_requests[index] = served
        await context.close()
        if own_browser is not None:
            await own_browser.close()


PROTOCOL_BUTTONS = {"inference": "Generate", "comparison": "checkpoint(s)", "attention": "Generate and capture"}
"""Session kind → the label of the button a request presses (protocol client)."""


async def protocol_prepare(session, checkpoint: str, example_id: str, kind: str):
    """Open ``kind``'s page with ``checkpoint`` in the URL (as a shared link would), click the example."""
    session.query_string = f"run=demo&ckpt={checkpoint}"
    run = await session.open(KINDS[kind])
    run = await session.rerun(click(run.widget("button", example_id)))
    if f"Example **{example_id}**" not in run.text() and kind != "comparison":
        raise RuntimeError(f"example {example_id} not shown after its click")
    return run


async def protocol_request(session, run, kind: str, marker: str,
                           timings: dict[str, float] | None = None) -> tuple[float, object]:
    """Commit a prompt carrying ``marker`` (its own rerun), press the kind's button; seconds of the click's run.

    ``timings["commit_s"]`` receives the commit rerun's seconds (a rerun without generation).
    """
    run = await session.rerun(typed(run.widget("text_area" if kind != "attention" else "text_input", "Prompt"),
                                    f"what colour is the square ? {marker}"))
    if timings is not None:
        timings["commit_s"] = run.seconds
    run = await session.rerun(click(run.widget("button", PROTOCOL_BUTTONS[kind])))
    if run.errors():
        raise RuntimeError(run.errors()[0][:300])
    text = run.text()
    if kind == "inference" and not (marker in text and "Output tokens" in text):
        raise RuntimeError("the answer and its stats were not sent")
    return run.seconds, run


async def protocol_session_loop(url: str, index: int, checkpoint: str, example_id: str, shared: dict,
                                report: LoadReport, barrier: asyncio.Barrier, kind: str = "inference") -> None:
    """:func:`session_loop` without a browser: the same requests over Streamlit's websocket protocol."""
    served = 0
    try:
        async with ProtocolSession(url) as session:
            try:
                run = await protocol_prepare(session, checkpoint, example_id, kind)
                for w in range(report.warmup_requests):
                    seconds, run = await protocol_request(session, run, kind, f"s{index}w{w}")
                    report.warmup_s.append(seconds)
            except Exception as exc:
                await _setup_failed(report, barrier, index, "setup", exc)
                return
            await _start_clock(barrier, shared, report)
            n = 0
            while time.monotonic() < shared["deadline"]:
                n += 1
                cycle_start = time.perf_counter()
                try:
                    latency, run = await protocol_request(session, run, kind, f"s{index}r{n}")
                except Exception as exc:
                    report.errors.append(f"session {index} request {n}: {type(exc).__name__}: {str(exc)[:200]}")
                    run = await protocol_prepare(session, checkpoint, example_id, kind)  # like a reload
                    continue
                _record(report, index, kind, shared, cycle_start, latency)
                served += 1
            shared["ended"] = max(shared.get("ended", 0.0), time.perf_counter())
    except Exception as exc:
        report.errors.append(f"session {index}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        report.per_session_requests[index] = served


async def protocol_model_loads(url: str) -> int | None:
    """A fresh protocol session's Home page: the sidebar pool panel's load counter."""
    async with ProtocolSession(url) as session:
        match = _LOADS_RE.search((await session.open()).text())
        return int(match.group(1)) if match else None


async def _run_sessions(report: LoadReport, shared: dict, loop_for, read_loads) -> None:
    """Every session's loop at once — ``loop_for(index, checkpoint, barrier)``; the barrier starts the
    clock when all are ready — then the pool's load counter from ``read_loads()``."""
    barrier = asyncio.Barrier(report.sessions)
    shared["deadline"] = float("inf")
    await asyncio.gather(*(loop_for(i, checkpoint, barrier)
                           for i, checkpoint in enumerate(report.checkpoints_per_session)))
    try:
        report.model_loads = await read_loads()
    except Exception as exc:  # the report still prints; the failure is counted
        report.errors.append(f"reading model loads: {type(exc).__name__}: {str(exc)[:200]}")


async def _drive_protocol(url: str, report: LoadReport, example_id: str, shared: dict) -> None:
    def loop_for(i: int, checkpoint: str, barrier: asyncio.Barrier):
        return protocol_session_loop(url, i, checkpoint, example_id, shared, report, barrier,
                                     report.kinds_per_session[i])

    await _run_sessions(report, shared, loop_for, lambda: protocol_model_loads(url))


def dump_server_stacks(pid: int, out: Path) -> None:
    """Every thread's Python stack of the server, taken while a request is stalled (needs py-spy)."""
    import shutil
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if Path(spy).exists():
        result = subprocess.run([spy, "dump", "--native", "--pid", str(pid)], capture_output=True, text=True,
                                timeout=60)
        out.write_text(result.stdout + result.stderr)


def first_example_id(runs_root: Path, run: str = "demo") -> str:
    jsonl = runs_root / run / "eval" / "demo.jsonl"
    return str(json.loads(jsonl.read_text().splitlines()[0])["id"])


def checkpoint_names(runs_root: Path, run: str = "demo") -> list[str]:
    names = [p.name for p in (runs_root / run).glob("checkpoint-*") if p.is_dir()]
    return sorted(names, key=lambda n: int(n.rsplit("-", 1)[1]))


def run_in_thread(coroutine):
    """``asyncio.run`` in a worker thread, returning its result: the caller may already run an event
    loop (pytest with Playwright's sync API active), where ``asyncio.run`` is refused."""
    errors: list[BaseException] = []
    results: list = []

    def target() -> None:
        try:
            results.append(asyncio.run(coroutine))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=target, name="load-test")
    worker.start()
    worker.join()
    if errors:
        raise errors[0]
    return results[0]


def run_load_test(runs_root: Path, sessions: int, duration_s: float, checkpoints: list[str], budget: str = "1GB",
                  data_dir: Path | None = None, log_path: Path | None = None,
                  browsers: str = "one", shots_dir: Path | None = None,
                  mix: tuple[str, ...] = ("inference",), warmup: int = 1) -> LoadReport:
    """Start a server, run the load for ``duration_s`` and return the measurements.

    Session ``i`` uses ``checkpoints[i % len(checkpoints)]``, so with fewer checkpoints than
    sessions some sessions share a checkpoint and others do not. ``browsers="one"`` opens every
    session as a context of one Chromium; ``"per-session"`` launches one Chromium per session.
    Session ``i`` drives page ``mix[i % len(mix)]`` (see ``KINDS``). Each session makes ``warmup``
    requests before the clock starts (a cold process imports the model code and loads the models
    then); their latencies are reported apart.
    """
    if browsers not in ("one", "per-session", "none"):
        raise ValueError(f"browsers must be 'one', 'per-session' or 'none', got {browsers!r}")
    unknown = [kind for kind in mix if kind not in KINDS]
    if unknown or not mix:
        raise ValueError(f"mix must name pages among {sorted(KINDS)}, got {list(mix)!r}")
    per_session = [checkpoints[i % len(checkpoints)] for i in range(sessions)]
    report = LoadReport(sessions=sessions, duration_s=duration_s, checkpoints_per_session=per_session,
                        distinct_checkpoints=len(set(per_session)), budget_bytes=parse_size(budget),
                        per_session_requests=[0] * sessions, browsers=browsers,
                        kinds_per_session=[mix[i % len(mix)] for i in range(sessions)], warmup_requests=warmup)
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="vlmlab-load-"))
    log_path = log_path or data_dir / "streamlit.log"
    server = StreamlitServer(runs_root, data_dir, log_path, extra_env={"VLMLAB_MEMORY_BUDGET": budget})
    sampler = MemorySampler(server.process.pid)
    report.baseline_rss_bytes = sampler.rss()
    sampler.start()
    try:
        shared: dict = {"shots": shots_dir, "server_pid": server.process.pid}
        start = time.perf_counter()
        drive = _drive_protocol if browsers == "none" else _drive
        run_in_thread(drive(server.url, report, first_example_id(runs_root), shared))
        report.wall_s = shared.get("ended", time.perf_counter()) - shared.get("started", start)
        report.load_average = os.getloadavg()
    finally:
        report.peak_rss_bytes = sampler.stop()
        server.stop()
    return report


async def _drive(url: str, report: LoadReport, example_id: str, shared: dict) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        async def launch():
            return await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)

        browser = await launch()
        target = browser if report.browsers == "one" else launch

        def loop_for(i: int, checkpoint: str, barrier: asyncio.Barrier):
            return session_loop(target, url, i, checkpoint, example_id, shared, report, barrier,
                                report.kinds_per_session[i])

        try:
            await _run_sessions(report, shared, loop_for, lambda: read_model_loads(browser, url))
        finally:
            await browser.close()


def format_report(report: LoadReport) -> str:
    s = report.summary()
    mb = 2**20

    def sec(v: float | None) -> str:
        return "—" if v is None else f"{v:.2f} s"

    return "\n".join([
        f"sessions: {report.sessions} · checkpoints per session: {', '.join(report.checkpoints_per_session)} "
        f"({report.distinct_checkpoints} distinct) · duration {report.duration_s:.0f} s "
        f"(measured {report.wall_s:.1f} s)",
        f"requests served: {report.requests} (per session {report.per_session_requests}) · "
        f"errors: {len(report.errors)} · throughput {s['throughput_rps'] or 0:.2f} req/s",
        f"latency p50 {sec(s['p50_s'])} · p95 {sec(s['p95_s'])} · "
        f"min {sec(min(report.latencies_s, default=None))} · max {sec(max(report.latencies_s, default=None))}",
        f"full cycle (type prompt → answer) p50 {sec(s['cycle_p50_s'])} · max {sec(s['cycle_max_s'])}",
        f"warm-up before the clock: {report.warmup_requests} request(s) per session · "
        f"max {sec(max(report.warmup_s, default=None))} (cold imports and model loads)",
        *(f"  {kind}: sessions {[i for i, k in enumerate(report.kinds_per_session) if k == kind]} · "
          f"{q['n']} requests · p50 {sec(q.get('p50_s'))} · p95 {sec(q.get('p95_s'))} · max {sec(q.get('max_s'))}"
          for kind, q in s["latency_by_kind"].items() if len(set(report.kinds_per_session)) > 1),
        f"server RSS: at start {report.baseline_rss_bytes / mb:.0f} MiB · peak {report.peak_rss_bytes / mb:.0f} MiB "
        f"· pool budget {report.budget_bytes / mb:.0f} MiB",
        f"model loads: {report.model_loads} (distinct checkpoints: {report.distinct_checkpoints})",
        f"browsers: {report.browsers} · load average at end: "
        f"{' '.join(f'{x:.2f}' for x in report.load_average) if report.load_average else '—'}",
        *(f"error: {e}" for e in report.errors[:20]),
        *(f"FAIL: {problem}" for problem in verdict(report)),
    ])


STARVED_FRACTION = 1 / 3
"""A session served fewer than this share of the mean per-session count is starved."""


def verdict(report: LoadReport, p95_target_s: float | None = None) -> list[str]:
    """What makes the run a failure: any lost request, any starved session, and — when a target
    is given — a steady-state p95 latency over it (empty when it passed).

    Sessions are compared with the mean of sessions driving the same page: one Comparison
    request is several generations, so it is not starved for serving fewer than Inference.
    """
    problems = [f"{len(report.errors)} lost request(s) or failed session(s)"] if report.errors else []
    counts = report.per_session_requests
    kinds = report.kinds_per_session or ["inference"] * len(counts)
    for kind in dict.fromkeys(kinds):
        mine = [i for i, k in enumerate(kinds) if k == kind]
        mean = statistics.mean(counts[i] for i in mine)
        starved = [i for i in mine if counts[i] == 0 or counts[i] < mean * STARVED_FRACTION]
        if starved:
            problems.append(f"starved {kind} session(s) {starved}: served {[counts[i] for i in starved]} "
                            f"< a third of the mean {mean:.1f}")
    p95 = report.percentile(95)
    if p95_target_s is not None and (p95 is None or p95 > p95_target_s):
        problems.append(f"p95 latency {p95} s is over the target {p95_target_s} s")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True, help="folder holding the demo run ('demo/')")
    parser.add_argument("--sessions", type=int, default=4, help="concurrent browser sessions (K)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load after all sessions are ready")
    parser.add_argument("--distinct", type=int, default=2, help="distinct checkpoints, shared round-robin")
    parser.add_argument("--budget", default="1GB", help="VLMLAB_MEMORY_BUDGET for the server")
    parser.add_argument("--browsers", choices=("one", "per-session", "none"), default="one",
                        help="one Chromium with a context per session, one Chromium per session, or none: "
                             "sessions speak Streamlit's websocket protocol from Python (server cost alone)")
    parser.add_argument("--mix", default="inference",
                        help=f"comma-separated pages the sessions drive, round-robin ({', '.join(KINDS)})")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    parser.add_argument("--shots", type=Path, help="screenshot a session's page here when a request fails")
    parser.add_argument("--warmup", type=int, default=1,
                        help="requests per session before the clock starts (0: the cold start is measured)")
    parser.add_argument("--p95-target", type=float,
                        help="also fail when the steady-state p95 latency exceeds this many seconds")
    args = parser.parse_args(argv)
    names = checkpoint_names(args.runs_root)
    if not names:
        parser.error(f"no checkpoint-* folders under {args.runs_root / 'demo'}")
    chosen = names[::-1][:max(1, args.distinct)]
    report = run_load_test(args.runs_root, args.sessions, args.duration, chosen, budget=args.budget,
                           browsers=args.browsers, shots_dir=args.shots, warmup=args.warmup,
                           mix=tuple(kind.strip() for kind in args.mix.split(",") if kind.strip()))
    problems = verdict(report, p95_target_s=args.p95_target)
    print(format_report(report))
    for problem in problems:
        print(f"FAIL: {problem}")
    if args.json:
        args.json.write_text(json.dumps({**report.summary(), "verdict": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
