"""Comparison overhead: N checkpoints × M examples through the page's code path vs plain generate.

The page path is ``dashboard.compare.runner.run_eval`` (pool acquire, image decode, scoring,
an atomic results file per chunk) and ``compare_single`` (in-process cache lookup); the
baseline is the sum of plain ``generate`` calls on the same decoded inputs with the same,
already-loaded models. Both run in this process, interleaved, so the ratio is comparable.

    .venv/bin/python bench/bench_compare.py --checkpoints 3 --examples 8 --repeats 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image

from dashboard.compare.runner import compare_single, run_eval
from dashboard.demo.modeling import save_tiny_llava
from dashboard.evalset import load_eval_set
from dashboard.generation import GenerationSettings, generate
from dashboard.images import image_digest, load_image
from dashboard.models.pool import ModelPool

COLOURS = ["red", "green", "blue", "yellow"]


def build_run(root: Path, n_ckpts: int, n_examples: int) -> Path:
    run = root / "run"
    words = ["what", "colour", "?", *COLOURS]
    for i in range(n_ckpts):
        save_tiny_llava(run / f"checkpoint-{(i + 1) * 10}", words=words, seed=i)
    (run / "eval" / "images").mkdir(parents=True)
    lines = []
    for i in range(n_examples):
        colour = COLOURS[i % len(COLOURS)]
        Image.new("RGB", (64, 64), colour).save(run / "eval" / "images" / f"{i}.png")
        lines.append(json.dumps({"id": str(i), "image": f"images/{i}.png", "prompt": "what colour ?",
                                 "answer": colour}))
    (run / "eval" / "bench.jsonl").write_text("\n".join(lines) + "\n")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", type=int, default=4)
    parser.add_argument("--examples", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--run", type=Path, default=None,
                        help="use this run's checkpoint-* folders and eval/*.jsonl instead of tiny random models")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    print(f"load average {os.getloadavg()[0]:.1f} (1 min)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        if args.run is None:
            run = build_run(tmp, args.checkpoints, args.examples)
            eval_path = run / "eval" / "bench.jsonl"
        else:
            run = tmp / "run"
            shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("eval_results"))
            eval_path = sorted((run / "eval").glob("*.jsonl"))[0]
        ckpts = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[:args.checkpoints]
        evalset = load_eval_set(eval_path)
        evalset.examples = evalset.examples[:args.examples]
        settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
        pool = ModelPool(budget_bytes=4 * 10**9, device="cpu")
        t0 = time.perf_counter()
        for c in ckpts:
            with pool.acquire(c):
                pass
        load_s = time.perf_counter() - t0
        images = [load_image(ex.image_path) for ex in evalset.examples]
        n, m = len(ckpts), len(evalset.examples)
        print(f"{n} checkpoints × {m} examples, max_new_tokens={args.max_new_tokens}, "
              f"{'tiny random models' if args.run is None else args.run}; models loaded once in {load_s:.2f} s")

        def baseline() -> float:
            began = time.perf_counter()
            for c in ckpts:
                with pool.acquire(c) as loaded:
                    for ex, img in zip(evalset.examples, images, strict=True):
                        generate(loaded, img, ex.prompt, settings)
            return time.perf_counter() - began

        def baseline_example_major() -> float:  # the one-example path's order: every checkpoint per example
            began = time.perf_counter()
            for ex, img in zip(evalset.examples, images, strict=True):
                for c in ckpts:
                    with pool.acquire(c) as loaded:
                        generate(loaded, img, ex.prompt, settings)
            return time.perf_counter() - began

        def page_eval(batch: int) -> float:
            shutil.rmtree(run / "eval_results", ignore_errors=True)
            began = time.perf_counter()
            report = run_eval(pool, run, ckpts, evalset, settings, batch_size=batch)
            elapsed = time.perf_counter() - began
            assert report.computed == n * m and not report.errors, report.errors
            return elapsed

        def page_single() -> float:
            began = time.perf_counter()
            for ex, img in zip(evalset.examples, images, strict=True):
                compare_single(pool, ckpts, img, ex.prompt, settings, {}, image_digest=image_digest(img))
            return time.perf_counter() - began

        def cached_single(cache: dict) -> float:
            began = time.perf_counter()
            for ex, img in zip(evalset.examples, images, strict=True):
                compare_single(pool, ckpts, img, ex.prompt, settings, cache, image_digest=image_digest(img))
            return time.perf_counter() - began

        baseline()  # warm-up (first generate of each model pays one-off costs)
        rows: dict[str, list[float]] = {"baseline": [], "baseline_xm": [], "eval_b1": [], "eval_b8": [], "single": []}
        runners = {"baseline": baseline, "baseline_xm": baseline_example_major, "eval_b1": lambda: page_eval(1),
                   "eval_b8": lambda: page_eval(8), "single": page_single}
        order = list(runners)
        for r in range(args.repeats):  # rotate the order so load drift on a shared machine hits all paths
            for key in order[r % len(order):] + order[:r % len(order)]:
                rows[key].append(runners[key]())
        cache: dict = {}
        cached_single(cache)
        cached = cached_single(cache)
        base, base_min = statistics.median(rows["baseline"]), min(rows["baseline"])
        labels = {"baseline": "sum of plain generate() calls (baseline)",
                  "baseline_xm": "same calls, example-major (one-example order)",
                  "eval_b1": "page eval-set path, batch 1 (run_eval)",
                  "eval_b8": "page eval-set path, batch 8 (run_eval)",
                  "single": "page one-example path (compare_single, cold cache)"}
        print(f"{'path':<52} {'median s':>9} {'ratio':>7} {'min s':>8} {'ratio':>7}")
        for key, label in labels.items():
            med, low = statistics.median(rows[key]), min(rows[key])
            print(f"{label:<52} {med:9.3f} {med / base:7.3f} {low:8.3f} {low / base_min:7.3f}")
        print(f"{'page one-example path, all cached (no model runs)':<52} {cached:9.3f} {cached / base:7.3f}")
        print(f"per generate: {base / (n * m) * 1000:.1f} ms (median); repeats={args.repeats}, order rotated")
        xm = statistics.median(rows["baseline_xm"])
        print(f"one-example path vs the same calls in its own (example-major) order: "
              f"{statistics.median(rows['single']) / xm:.3f}x; example-major vs checkpoint-major: {xm / base:.3f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
