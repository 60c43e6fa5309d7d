"""Attention bench: capture vs ``output_attentions=True`` vs plain ``generate``; pointing score per checkpoint.

    .venv/bin/python bench/bench_attention.py capture            # realistic shape, tiny width
    .venv/bin/python bench/bench_attention.py pointing --run runs/demo --examples 200

``capture`` runs each mode in a fresh subprocess (so peak-RSS numbers do not leak between modes,
with a fixed glibc mmap threshold, see ``_malloc_env``):
a LLaVA with 576 image tokens (336 px / 14 px patches), 24 language layers, 8 heads, hidden 64,
64 generated tokens (``min_new_tokens`` forces the length). It prints, per mode, the bytes of
attention data handed back, the peak-RSS increase during generation over a warm baseline, and
wall time; ratios are against numbers measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHAPE = {"image_size": 336, "patch_size": 14, "text_layers": 24, "text_heads": 8, "text_hidden": 64, "new_tokens": 64}


PROMPTS = {
    "short": "describe the image . where is the red circle ?",
    # LLaVA-1.5's system prompt + the question (out-of-vocabulary words become <unk>: same token count shape)
    "llava15": "A chat between a curious human and an artificial intelligence assistant . The assistant gives "
               "helpful , detailed , and polite answers to the human's questions . describe the image . where is "
               "the red circle ?",
}


def _model(prompt: str = "short"):
    import numpy as np
    import torch
    from PIL import Image

    from dashboard.demo.modeling import DEFAULT_TEST_WORDS, TinyLlavaSpec, build_model, build_processor

    spec = TinyLlavaSpec(image_size=SHAPE["image_size"], patch_size=SHAPE["patch_size"], vision_hidden=32,
                         vision_layers=1, vision_heads=2, text_hidden=SHAPE["text_hidden"],
                         text_layers=SHAPE["text_layers"], text_heads=SHAPE["text_heads"], text_intermediate=128,
                         max_positions=1024)
    processor = build_processor(DEFAULT_TEST_WORDS, spec)
    model = build_model(processor, spec, seed=0).eval()
    model.generation_config.eos_token_id = None  # always generate the full length
    image = Image.fromarray((np.random.default_rng(0).random((336, 336, 3)) * 255).astype("uint8"))
    text = processor.apply_chat_template([{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": PROMPTS[prompt]}]}],
        add_generation_prompt=True)
    inputs = dict(processor(images=image, text=text, return_tensors="pt"))
    torch.set_num_threads(1)
    return model, inputs


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def run_mode(mode: str, repeats: int, prompt: str) -> dict:
    """One mode in this process: warm up with plain generate, then measure."""
    import torch

    from dashboard.attention.capture import capture_generate

    model, inputs = _model(prompt)
    steps = SHAPE["new_tokens"]
    kwargs = {"max_new_tokens": steps, "min_new_tokens": steps, "do_sample": False}
    with torch.no_grad():
        model.generate(**inputs, max_new_tokens=2, do_sample=False)  # warm-up, same for every mode
    if mode == "output_attentions":
        model.set_attn_implementation("eager")
    base = _peak_kib()
    times, kept = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        if mode == "plain":
            with torch.no_grad():
                out = model.generate(**inputs, **kwargs)
            kept = 0
        elif mode == "output_attentions":
            with torch.no_grad():
                out = model.generate(**inputs, **kwargs, output_attentions=True, return_dict_in_generate=True)
            kept = sum(t.nbytes for step in out.attentions for t in step)
        else:
            out = capture_generate(model, inputs, **kwargs)
            kept = out.nbytes()
        times.append(time.perf_counter() - start)
        del out
    return {"mode": mode, "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "image_tokens": (SHAPE["image_size"] // SHAPE["patch_size"]) ** 2, "kept_bytes": kept,
            "peak_rss_increase_bytes": (_peak_kib() - base) * 1024, "seconds_min": min(times),
            "seconds_median": statistics.median(times)}


def _malloc_env() -> dict[str, str]:
    """Fixed glibc mmap threshold: freed multi-MB buffers go back to the OS at once.

    With glibc's default *dynamic* threshold, the per-layer transient attention buffers end up on
    the brk heap behind small long-lived allocations and are never returned, so peak RSS would
    count memory that is free (fragmentation), not memory that is held.
    """
    return {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}


def bench_capture(repeats: int, prompt: str) -> list[dict]:
    rows = []
    for mode in ("plain", "output_attentions", "capture"):
        proc = subprocess.run([sys.executable, __file__, "_mode", mode, "--repeats", str(repeats), "--prompt", prompt],
                              capture_output=True, text=True, check=True, cwd=REPO, env=_malloc_env())
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    by = {r["mode"]: r for r in rows}
    mib = 1024 * 1024
    print(f"shape: {SHAPE}, prompt {prompt!r}: {by['plain']['prompt_tokens']} tokens, repeats {repeats}")
    print(f"{'mode':<18} {'kept attention':>15} {'peak RSS +':>12} {'time min':>9} {'median':>8}")
    for r in rows:
        print(f"{r['mode']:<18} {r['kept_bytes'] / mib:>11.1f} MiB {r['peak_rss_increase_bytes'] / mib:>8.1f} MiB "
              f"{r['seconds_min']:>8.2f}s {r['seconds_median']:>7.2f}s")
    oa, cap, plain = by["output_attentions"], by["capture"], by["plain"]
    print(f"kept-attention ratio output_attentions / capture: {oa['kept_bytes'] / cap['kept_bytes']:.1f}x")
    print(f"peak-RSS-increase ratio output_attentions / capture: "
          f"{oa['peak_rss_increase_bytes'] / max(cap['peak_rss_increase_bytes'], 1):.1f}x; capture over plain: "
          f"+{(cap['peak_rss_increase_bytes'] - plain['peak_rss_increase_bytes']) / mib:.1f} MiB")
    print(f"time ratio capture / plain: {cap['seconds_min'] / plain['seconds_min']:.2f}x; "
          f"output_attentions / plain: {oa['seconds_min'] / plain['seconds_min']:.2f}x")
    return rows


def bench_pointing(run_dir: Path, examples: int) -> list[dict]:
    import torch

    from dashboard.attention.analysis import pointing_report
    from dashboard.evalset import find_eval_sets, load_eval_set
    from dashboard.models.pool import ModelPool
    from dashboard.runs.checkpoints import discover_checkpoints

    eval_path = find_eval_sets(run_dir)[0]
    eval_set = load_eval_set(eval_path, roots=[run_dir])
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32)
    rows = []
    print(f"run {run_dir}, eval set {eval_path.name}, first {examples} examples with a target box")
    print(f"{'checkpoint':<18} {'n':>4} {'pointing':>9} {'chance':>7} {'mass in box':>12} {'first-token acc':>16} "
          f"{'best layer (pointing)':>22} {'distinct peak cells':>20}")
    for info in discover_checkpoints(run_dir):
        if not info.loadable:
            continue
        with pool.acquire(info.path) as loaded:
            summary = pointing_report(loaded, eval_set.examples, max_examples=examples).summary()
        rows.append({**summary, "name": info.name, "step": info.step})
        print(f"{info.name:<18} {summary['n']:>4} {summary['pointing']:>9.3f} {summary['chance']:>7.3f} "
              f"{summary['mass_in_box']:>12.3f} {summary['accuracy']:>16.3f} "
              f"{summary['best_layer']:>14} ({summary['best_layer_pointing']:.3f}) {summary['distinct_peaks']:>20}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    cap = sub.add_parser("capture")
    cap.add_argument("--repeats", type=int, default=2)
    cap.add_argument("--prompt", choices=[*PROMPTS, "all"], default="all")
    mode = sub.add_parser("_mode")
    mode.add_argument("mode", choices=["plain", "output_attentions", "capture"])
    mode.add_argument("--repeats", type=int, default=2)
    mode.add_argument("--prompt", choices=list(PROMPTS), default="short")
    point = sub.add_parser("pointing")
    point.add_argument("--run", type=Path, required=True)
    point.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    if args.cmd == "_mode":
        print(json.dumps(run_mode(args.mode, args.repeats, args.prompt)))
    elif args.cmd == "capture":
        for prompt in PROMPTS if args.prompt == "all" else [args.prompt]:
            bench_capture(args.repeats, prompt)
    else:
        bench_pointing(args.run, args.examples)


if __name__ == "__main__":
    main()
