"""Chat-template render latency: in a thread of this process (before) vs a warm worker process (after).

    .venv/bin/python bench/bench_chat_template.py [--reps 300]

Renders real templates (the demo's and LLaVA-1.5's, from ``dashboard/demo/modeling.py``) with the
context ``dashboard/generation.py`` passes (special tokens, messages, ``add_generation_prompt``):

* before: ``chat_template._render_in_thread`` -- the same sandbox in a worker thread, as main did;
* after: ``render_chat_template`` -- a request to a warm worker process over pipes.

The two are interleaved rep by rep, so both see the same machine load; medians and the ratio are
printed. Also timed once: a fresh pool's first render (process start + imports + render), what a
render would cost if no warm worker were kept (a killed worker's replacement is started at the kill).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dashboard.chat_template import TemplateWorkers, _render_in_thread
from dashboard.demo.modeling import CHAT_TEMPLATE, QUESTION_FIRST_TEMPLATE

SPECIAL = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
ONE_TURN = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "where is the red object ?"}]}]
TEN_TURNS = [m for i in range(5) for m in (
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"question {i} about the picture"}]},
    {"role": "assistant", "content": [{"type": "text", "text": f"answer {i}, " * 20}]})]
CASES = {
    "demo template, 1 turn": (QUESTION_FIRST_TEMPLATE, ONE_TURN),
    "LLaVA-1.5 template, 10 turns": (CHAT_TEMPLATE, TEN_TURNS),
}


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=300)
    args = parser.parse_args()
    print(f"load: {os.popen('uptime').read().strip()}")

    started = time.perf_counter()
    pool = TemplateWorkers()
    pool.render("{{ 1 }}", {})
    cold_s = time.perf_counter() - started

    print(f"\n{'case':32} {'thread ms':>10} {'process ms':>11} {'ratio':>7}   (medians of {args.reps})")
    for name, (template, messages) in CASES.items():
        context = {**SPECIAL, "messages": messages, "add_generation_prompt": True}
        assert _render_in_thread(template, context) == pool.render(template, context)
        before: list[float] = []
        after: list[float] = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            _render_in_thread(template, context)
            t1 = time.perf_counter()
            pool.render(template, context)
            t2 = time.perf_counter()
            before.append(t1 - t0)
            after.append(t2 - t1)
        b, a = statistics.median(before), statistics.median(after)
        print(f"{name:32} {_ms(b):>10} {_ms(a):>11} {a / b:>6.2f}x   "
              f"(p90 {_ms(statistics.quantiles(before, n=10)[-1])} / {_ms(statistics.quantiles(after, n=10)[-1])})")

    print(f"\nfresh pool, first render (start + imports + render): {_ms(cold_s)} ms")
    print(f"worker processes started: {pool.started}")
    pool.close()
    print(f"load: {os.popen('uptime').read().strip()}")


if __name__ == "__main__":
    main()
