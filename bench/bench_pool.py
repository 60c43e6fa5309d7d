"""Benchmark the model pool and generation; prints measured numbers next to same-run baselines.

    .venv/bin/python bench/bench_pool.py                 # builds its own checkpoints in a temp dir
    .venv/bin/python bench/bench_pool.py --demo-checkpoint runs/demo/checkpoint-600

Measured (timed variants run interleaved, round after round, so load from other processes on a
shared machine hits all of them alike; medians reported):
* memory held: pool accounting (parameter + buffer bytes) vs budget, and vs process RSS growth;
* cold load (pool miss: inspect + from_pretrained + processor) vs the raw time to read the same
  safetensors bytes (page cache warm) and vs ``safetensors.torch.load_file``; only the acquire
  is timed (the fresh pool is made, and garbage collected, outside the timed call);
* switch-to-first-token: a checkpoint not in the pool is picked, until its first streamed token,
  vs (raw read of its weights + warm time-to-first-token) measured in the same rounds;
* staging alone (issue 29: small files copied through the opener, weights linked to a checked open
  descriptor) vs the raw read: the load reads the weights zero-copy, so staging costs a few small files;
* warm switch (pool hit: acquire of a model already held) vs cold load;
* switching under a one-model budget (every switch evicts and reloads);
* generation tokens/s of the demo-sized model: pool ``generate``/``stream`` vs bare ``model.generate``.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import psutil
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from dashboard.demo.modeling import TinyLlavaSpec, save_tiny_llava
from dashboard.generation import GenerationResult, GenerationSettings, build_inputs, generate, stream
from dashboard.models.loading import inspect_checkpoint
from dashboard.models.pool import ModelPool
from dashboard.models.staging import staged
from dashboard.runs.load_plan import plan_checkpoint

# A "medium" tiny LLaVA (~73 MB fp32) so that load and read times are measurable.
MEDIUM = TinyLlavaSpec(vision_hidden=256, vision_layers=4, vision_heads=4, text_hidden=512, text_layers=6,
                       text_heads=8, text_intermediate=1024)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each function, timed one call per round over ``repeats`` rounds."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def read_bytes(path: Path) -> int:
    with path.open("rb") as handle:
        return len(handle.read())


def fmt_mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


def switch(pool: ModelPool, checkpoints: list[Path]) -> None:
    for ckpt in checkpoints[:2]:
        with pool.acquire(ckpt):
            pass


def bench_memory(checkpoints: list[Path]) -> None:
    """Run first, before this process has loaded any model, so RSS growth is attributable."""
    process = psutil.Process()
    per_model = inspect_checkpoint(checkpoints[0]).estimated_bytes
    budget = int(per_model * 2.5)
    gc.collect()
    before = process.memory_info().rss
    pool = ModelPool(budget, device="cpu")
    for ckpt in checkpoints:
        with pool.acquire(ckpt):
            pass
    gc.collect()
    grown = process.memory_info().rss - before
    print(f"budget {fmt_mb(budget)} (2.5 models); loaded {len(checkpoints)} checkpoints of ~{fmt_mb(per_model)} each"
          f" → pool holds {len(pool.entries())} = {fmt_mb(pool.used_bytes)} ({pool.used_bytes / budget:.0%} of "
          f"budget, {pool.load_count} loads)")
    print(f"process RSS growth with those models held: {fmt_mb(grown)} "
          f"(= {grown / max(pool.used_bytes, 1):.2f}x the accounted parameter+buffer bytes; includes processors "
          "and first-use imports)")
    pool.clear()
    gc.collect()
    after = process.memory_info().rss - before
    print(f"after clear(): pool holds {fmt_mb(pool.used_bytes)}; RSS growth now {fmt_mb(after)} "
          f"(released {fmt_mb(grown - after)}; the allocator may keep some freed pages)")


def timed_cold(checkpoint: Path, repeats: int) -> list[float]:
    """Seconds of ``acquire`` on a fresh pool, one per round; pool creation and GC are untimed."""
    times = []
    for _ in range(repeats):
        pool = ModelPool(10**10, device="cpu")
        gc.collect()
        started = time.perf_counter()
        switch(pool, [checkpoint])
        times.append(time.perf_counter() - started)
        del pool
    return times


def bench_loading(checkpoints: list[Path], repeats: int) -> None:
    weights = checkpoints[0] / "model.safetensors"
    read_bytes(weights)  # warm the page cache so every variant reads from memory
    cold_times: list[float] = []

    def cold() -> None:  # the interleaved round's own time includes setup; the median below does not
        cold_times.extend(timed_cold(checkpoints[0], 1))

    def stage() -> None:
        with staged(plan_checkpoint(checkpoints[0]), [checkpoints[0].parent]):
            pass

    t = interleaved({"raw": lambda: read_bytes(weights), "load_file": lambda: load_file(weights), "cold": cold,
                     "stage": stage}, repeats)
    t["cold"] = statistics.median(cold_times)
    held = ModelPool(10**10, device="cpu")
    switch(held, checkpoints)
    warm = interleaved({"warm": lambda: switch(held, checkpoints)}, repeats * 20)["warm"] / 2
    assert held.load_count == 2, "warm switches must not reload"
    one_model = ModelPool(int(held.entries()[0].nbytes * 1.5), device="cpu")
    evicting = interleaved({"evict": lambda: switch(one_model, checkpoints)}, repeats)["evict"] / 2
    print(f"weights file: {fmt_mb(weights.stat().st_size)}; medians of {repeats} interleaved rounds")
    print(f"raw read of the safetensors bytes (page cache warm): {t['raw'] * 1000:8.1f} ms")
    print(f"safetensors.torch.load_file:                         {t['load_file'] * 1000:8.1f} ms")
    print(f"cold load via pool (inspect + model + processor):    {t['cold'] * 1000:8.1f} ms"
          f"   = {t['cold'] / t['raw']:.1f}x raw read, {t['cold'] / t['load_file']:.1f}x load_file")
    print(f"staging alone (small files copied, weights linked):  {t['stage'] * 1000:8.1f} ms"
          f"   = {t['stage'] / t['raw']:.2f}x raw read")
    print(f"warm switch (pool hit):                              {warm * 1e6:8.1f} µs"
          f"   = {t['cold'] / warm:,.0f}x faster than a cold load")
    print(f"switch under a one-model budget (evict + reload):    {evicting * 1000:8.1f} ms per switch"
          f"   (loads: {one_model.load_count})")


def bench_generation(checkpoint: Path, repeats: int, max_new_tokens: int) -> None:
    pool = ModelPool(10**10, device="cpu")
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    prompt = "what colour is the circle ?"
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    generated: list[GenerationResult] = []
    streamed: list[GenerationResult] = []
    with pool.acquire(checkpoint) as loaded:
        generate(loaded, image, prompt, settings)  # warm-up
        inputs = build_inputs(loaded, image, prompt)
        prompt_len = inputs["input_ids"].shape[1]
        image_tokens = int((inputs["input_ids"] == loaded.model.config.image_token_id).sum())
        bare_tokens: list[int] = []

        def bare() -> None:
            with torch.inference_mode():
                out = loaded.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
            bare_tokens.append(out.shape[1] - prompt_len)

        def run_stream() -> None:
            s = stream(loaded, image, prompt, settings)
            "".join(s)
            streamed.append(s.result)

        def bare_in_thread() -> None:  # what stream() adds besides the streamer: a fresh thread per answer
            worker = threading.Thread(target=bare)
            worker.start()
            worker.join()

        t = interleaved({"bare": bare, "generate": lambda: generated.append(generate(loaded, image, prompt, settings)),
                         "stream": run_stream, "bare_thread": bare_in_thread}, repeats)
        nbytes = loaded.nbytes
    n = generated[0].output_tokens
    ttft = statistics.median(r.ttft_s for r in streamed)
    print(f"model: {checkpoint.name} ({fmt_mb(nbytes)}), prompt {prompt_len} tokens ({image_tokens} image), "
          f"{n} new tokens (bare generate: {bare_tokens[0]}); medians of {repeats} interleaved rounds")
    print(f"bare model.generate:  {t['bare'] * 1000:7.1f} ms = {bare_tokens[0] / t['bare']:7.1f} tokens/s")
    print(f"pool generate():      {t['generate'] * 1000:7.1f} ms = {n / t['generate']:7.1f} tokens/s"
          f"   ({t['generate'] / t['bare']:.2f}x bare time)")
    print(f"pool stream():        {t['stream'] * 1000:7.1f} ms = {n / t['stream']:7.1f} tokens/s"
          f"   ({t['stream'] / t['bare']:.2f}x bare time), time to first token {ttft * 1000:.1f} ms")
    print(f"bare, in a new thread:{t['bare_thread'] * 1000:7.1f} ms"
          f"   ({t['bare_thread'] / t['bare']:.2f}x bare time; stream() is {t['stream'] / t['bare_thread']:.2f}x this)")


def bench_switch_to_first_token(checkpoints: list[Path], repeats: int) -> None:
    """Pick a checkpoint the pool does not hold; time until its first streamed token arrives."""
    image = Image.new("RGB", (64, 64), (200, 30, 30))
    prompt = "what colour is the circle ?"
    settings = GenerationSettings(max_new_tokens=8)
    weights = checkpoints[0] / "model.safetensors"
    held = ModelPool(10**10, device="cpu")
    with held.acquire(checkpoints[0]) as loaded:
        "".join(stream(loaded, image, prompt, settings))  # warm-up (first-use imports, kernels)
    raw, warm_ttft, switch_ttft = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        read_bytes(weights)
        raw.append(time.perf_counter() - started)
        with held.acquire(checkpoints[0]) as loaded:
            s = stream(loaded, image, prompt, settings)
            "".join(s)
            warm_ttft.append(s.result.ttft_s)
        pool = ModelPool(10**10, device="cpu")
        gc.collect()
        started = time.perf_counter()
        with pool.acquire(checkpoints[0]) as loaded:
            chunks = iter(stream(loaded, image, prompt, settings))
            next(chunks, None)  # the first text the user sees
            switch_ttft.append(time.perf_counter() - started)
            "".join(chunks)
        del pool
    r, w, sw = (statistics.median(x) for x in (raw, warm_ttft, switch_ttft))
    print(f"raw read {r * 1000:.1f} ms + warm time-to-first-token {w * 1000:.1f} ms = {(r + w) * 1000:.1f} ms; "
          f"switch-to-first-token {sw * 1000:.1f} ms = {sw / (r + w):.2f}x (goal ≤ 2x); medians of {repeats}")


def run_all(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if args.only == "loading":
            medium = [save_tiny_llava(Path(tmp) / f"checkpoint-{i}", spec=MEDIUM, seed=i) for i in range(2)]
            print("\n## Loading (medium tiny LLaVA)")
            bench_loading(medium, args.repeats)
            print("\n## Switch to a checkpoint not in the pool, until the first answer token (medium)")
            bench_switch_to_first_token(medium, args.repeats)
            return
        if args.only == "generation":
            untrained = save_tiny_llava(Path(tmp) / "demo-sized-untrained")
            print("\n## Generation: demo-sized model, untrained (always runs to max_new_tokens)")
            bench_generation(untrained, args.repeats, args.max_new_tokens)
            return
        medium = [save_tiny_llava(Path(tmp) / f"checkpoint-{i}", spec=MEDIUM, seed=i) for i in range(4)]
        print("\n## Memory held vs budget")
        bench_memory(medium)
        print("\n## Loading (medium tiny LLaVA)")
        bench_loading(medium, args.repeats)
        print("\n## Switch to a checkpoint not in the pool, until the first answer token (medium)")
        bench_switch_to_first_token(medium, args.repeats)
        untrained = save_tiny_llava(Path(tmp) / "demo-sized-untrained")
        print("\n## Generation: demo-sized model, untrained (always runs to max_new_tokens)")
        bench_generation(untrained, args.repeats, args.max_new_tokens)
        if args.demo_checkpoint:
            print("\n## Generation: demo checkpoint (stops at EOS after its short answer)")
            bench_generation(args.demo_checkpoint, args.repeats, args.max_new_tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo-checkpoint", type=Path, help="a demo-run checkpoint for the generation numbers")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--main-thread", action="store_true",
                        help="run in the main thread (default: a worker thread, as Streamlit runs page scripts)")
    parser.add_argument("--only", choices=["generation", "loading"],
                        help="run only the generation comparison, or only the loading numbers")
    parser.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu count {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"running in {'the main thread' if args.main_thread else 'a worker thread'}")
    if args.main_thread:
        run_all(args)
    else:
        worker = threading.Thread(target=run_all, args=(args,), name="bench")
        worker.start()
        worker.join()


if __name__ == "__main__":
    main()
