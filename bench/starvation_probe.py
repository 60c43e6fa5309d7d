"""Separate the hypotheses behind session starvation, without a browser.

Threads stand in for Streamlit sessions and do exactly what the Inference page does per request
(``pool.acquire`` → ``stream`` → iterate → ``result``), with a configurable think time between
requests (a page rerun in the browser). Per-thread counts show whether the pool or the model
lock starves a session on a *shared* checkpoint compared with *distinct* ones, independent of
any browser.

    .venv/bin/python bench/starvation_probe.py --checkpoints runs/demo/checkpoint-600 runs/demo/checkpoint-450 \
        --sessions 6 --duration 20 --think 0.05
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from dashboard.generation import GenerationSettings, stream  # noqa: E402
from dashboard.models.pool import ModelPool  # noqa: E402


def probe(checkpoints: list[Path], sessions: int, duration_s: float, think_s: float,
          use_turns: bool, post_gc: bool = False, request_timeout_s: float = 30.0) -> dict:
    """Run ``sessions`` threads for ``duration_s``; session i uses ``checkpoints[i % len]``."""
    from PIL import Image

    pool = ModelPool(2**30, device="cpu")
    image = Image.new("RGB", (96, 96), "white")
    counts = [0] * sessions
    latencies: list[float] = []
    errors: list[str] = []
    start = threading.Barrier(sessions + 1)
    deadline = [0.0]

    def session(index: int) -> None:
        checkpoint = checkpoints[index % len(checkpoints)]
        start.wait()
        while time.monotonic() < deadline[0]:
            began = time.perf_counter()
            try:
                if use_turns:
                    with pool.turn(checkpoint, wait_limit_s=60.0) as loaded:
                        list(stream(loaded, image, f"what colour ? s{index}", GenerationSettings(max_new_tokens=8)))
                else:
                    with pool.acquire(checkpoint) as loaded:
                        list(stream(loaded, image, f"what colour ? s{index}", GenerationSettings(max_new_tokens=8)))
            except Exception as exc:  # recorded, the session carries on
                errors.append(f"session {index}: {type(exc).__name__}: {exc}")
                continue
            latencies.append(time.perf_counter() - began)
            counts[index] += 1
            if post_gc:  # what Streamlit does after every script run (runner.postScriptGC)
                gc.collect(2)
            time.sleep(think_s)

    threads = [threading.Thread(target=session, args=(i,), daemon=True) for i in range(sessions)]
    for thread in threads:
        thread.start()
    deadline[0] = time.monotonic() + duration_s
    start.wait()
    for thread in threads:
        thread.join(duration_s + 120)
    latencies.sort()
    return {"sessions": sessions, "checkpoints": [c.name for c in checkpoints], "think_s": think_s,
            "turns": use_turns, "per_session": counts, "requests": sum(counts), "errors": errors[:5],
            "min_over_mean": min(counts) / statistics.mean(counts) if sum(counts) else 0.0,
            "p50_s": latencies[len(latencies) // 2] if latencies else None,
            "p95_s": latencies[int(len(latencies) * 0.95)] if latencies else None,
            "max_s": latencies[-1] if latencies else None, "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--think", type=float, default=0.05, help="seconds between a session's requests")
    parser.add_argument("--turns", action="store_true", help="go through pool.turn (FIFO queue) instead of acquire")
    parser.add_argument("--post-gc", action="store_true", help="gc.collect(2) after each request, as Streamlit does")
    parser.add_argument("--convoy", type=int, metavar="N",
                        help="instead: one generating thread beside N busy 'rerun' threads (GIL convoy)")
    parser.add_argument("--switch-interval", type=float, default=0.005, help="sys.setswitchinterval for --convoy")
    args = parser.parse_args(argv)
    if args.convoy:
        print(json.dumps(convoy(args.checkpoints[0], args.convoy, args.duration, args.post_gc, args.switch_interval)))
        return 0
    print(json.dumps(probe(args.checkpoints, args.sessions, args.duration, args.think, args.turns, args.post_gc)))
    return 0



def make_heap(objects: int = 200_000) -> list[dict]:
    """Live objects for a full collection to walk: a heap the size of a torch + Streamlit process."""
    return [{"k": list(range(50))} for _ in range(objects)]


def convoy_window(loaded: Any, image: Any, busy_threads: int, duration_s: float, post_gc: bool,
                  switch_interval_s: float) -> dict:
    """For ``duration_s``: one loop generating on ``loaded`` (``stream``, as Inference does) next to
    ``busy_threads`` pure-Python threads standing in for Streamlit reruns, each "rerun" ending with
    ``gc.collect(2)`` when ``post_gc`` (``runner.postScriptGC``). Counts generations *finished
    inside the window*: at the deadline the busy threads stop, so a starved generation in flight
    then ends quickly but is not counted. ``streamed_pieces`` counts the text pieces the stream
    handed out inside the window, a finer measure of progress than whole generations (a loaded
    machine may finish only one or two). Restores the switch interval."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval_s)
    stop = threading.Event()
    reruns = [0] * busy_threads
    collections = [0] * busy_threads

    def rerun_loop(index: int) -> None:
        while not stop.is_set():
            _ = [str(i) * 3 for i in range(20_000)]  # a script run's pure-Python work (~ms)
            if post_gc:
                gc.collect(2)
                collections[index] += 1
            reruns[index] += 1

    busy = [threading.Thread(target=rerun_loop, args=(i,), daemon=True) for i in range(busy_threads)]
    timer = threading.Timer(duration_s, stop.set)
    latencies: list[float] = []
    tokens = 0
    pieces = 0
    try:
        for thread in busy:
            thread.start()
        deadline = time.monotonic() + duration_s
        timer.start()
        while time.monotonic() < deadline:
            began = time.perf_counter()
            generation = stream(loaded, image, "what colour ?", GenerationSettings(max_new_tokens=8))
            for _piece in generation:
                if time.monotonic() <= deadline:
                    pieces += 1
            if time.monotonic() <= deadline:
                latencies.append(time.perf_counter() - began)
                tokens += generation.result.output_tokens if generation.result is not None else 0
    finally:
        stop.set()
        timer.cancel()
        for thread in busy:
            thread.join(30)
        sys.setswitchinterval(previous)
    latencies.sort()
    return {"mode": "convoy", "busy_threads": busy_threads, "post_gc": post_gc, "switch_interval_s": switch_interval_s,
            "duration_s": duration_s, "generations": len(latencies), "output_tokens": tokens,
            "streamed_pieces": pieces,
            "reruns": sum(reruns), "collections": sum(collections),
            "p50_s": latencies[len(latencies) // 2] if latencies else None,
            "max_s": latencies[-1] if latencies else None, "load_average": os.getloadavg()}


def convoy(checkpoint: Path, busy_threads: int, duration_s: float, post_gc: bool, switch_interval_s: float) -> dict:
    """:func:`convoy_window` on ``checkpoint`` (loaded and warmed up outside the clock) with a big heap."""
    from PIL import Image

    pool = ModelPool(2**30, device="cpu")
    image = Image.new("RGB", (96, 96), "white")
    heap = make_heap()
    with pool.acquire(checkpoint) as loaded:
        list(stream(loaded, image, "warm up", GenerationSettings(max_new_tokens=8)))
        result = convoy_window(loaded, image, busy_threads, duration_s, post_gc, switch_interval_s)
    del heap
    return result


if __name__ == "__main__":
    raise SystemExit(main())
