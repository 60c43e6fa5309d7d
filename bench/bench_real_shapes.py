"""Real model shapes on CPU: the pool's cold load, streaming time-to-first-token and attention capture.

    .venv/bin/python bench/bench_real_shapes.py                                  # both families, fp32 + bf16
    .venv/bin/python bench/bench_real_shapes.py --families smolvlm_256m --dtypes float32 --parts load ttft

Checkpoints with the published shapes of SmolVLM-256M-Instruct (Idefics3, model_type ``idefics3``)
and Qwen2-VL-2B-Instruct (random weights, real image-processor classes and settings, synthetic
tokenizers with the real vocabulary size and special-token ids) are built by
:mod:`bench.real_shapes` (its docstring cites the config values) and saved with
``save_pretrained`` in the requested dtype. Every measurement runs in its own child process (one
configuration at a time: Qwen2-VL-2B is 4.4 GB in bf16, 8.8 GB in fp32), and the pool loads in the
checkpoint's own dtype (``ModelPool(dtype=...)``; the app's CPU default is fp32, which upcasts a
bf16 checkpoint — measured separately as ``cold (fp32 pool)`` where memory allows).

Ratios are against baselines measured in the same child, interleaved round by round (medians):

* **load**: ``ModelPool.acquire`` on a fresh pool (inspect + stage + processor + weights) vs a raw
  read of the weight files with the page cache warm (as ``bench/bench_pool.py`` measures it);
  goal ≤ 2×;
* **ttft**: time from the call to the first streamed text of the pool's ``stream()`` vs bare
  transformers (processor + ``model.generate`` in a thread with a ``TextIteratorStreamer``), on
  the same loaded model, image and prompt; both include preprocessing; goal ≤ 1.2×;
* **capture**: peak-RSS increase over the RSS at the start of the run, after a warm-up generation
  (a fresh child per mode, fixed glibc mmap threshold — ``bench/bench_attention.py``'s method; the
  kernel's high-water mark is reset after the warm-up, see ``_start_peak``) of the app's
  ``capture_generate`` vs ``generate(output_attentions=True)`` at ≥ 1,000 image tokens; goal
  ≤ 1/5, values equal within 1e-5. Two plain rows beside them: transformers' ``generate`` as it is
  (``plain``) and the same call inside the app's ``vision_in_chunks`` (``app_plain``, what
  ``dashboard.generation`` runs).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.bench_attention import _malloc_env, _peak_kib  # noqa: E402  (one RSS method for both benches)
from bench.bench_pool import interleaved, read_bytes  # noqa: E402  (one cold-vs-raw method)

PROMPT = "describe the image in one word ."
CAPTURE_IMAGE = {"smolvlm_256m": (1536, 1536), "qwen2_vl_2b": (896, 896)}
"""Image sizes of the capture run: SmolVLM splits every image into 4 × 4 tiles + a global one (17 × 64 =
1,088 image tokens); Qwen2-VL at 896 px has 64 × 64 patches merged 2 × 2 (1,024 image tokens)."""
TTFT_IMAGE = {"smolvlm_256m": (1536, 1536), "qwen2_vl_2b": (448, 448)}


def _quiet() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def _dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[name]


def _image(size: tuple[int, int]) -> Any:
    import numpy as np
    from PIL import Image

    return Image.fromarray((np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype("uint8"))


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _start_peak() -> int:
    """Reset the kernel's RSS high-water mark and return the RSS now (KiB), so the peak is this run's alone.

    ``ru_maxrss`` cannot be reset, so a warm-up whose peak came before all weights were paged in (the
    language model's weights are touched only after the vision encoder) hides part of the run's own
    transient. Linux's ``clear_refs`` ``5`` resets ``VmHWM``; elsewhere this falls back to ``ru_maxrss``.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        now = _rss_kib("VmRSS")
        if now is not None:
            return now
    except OSError:
        pass
    return _peak_kib()


def _end_peak() -> int:
    return _rss_kib("VmHWM") or _peak_kib()


def _pool(dtype: str) -> Any:
    from dashboard.models.pool import ModelPool

    return ModelPool(10**12, device="cpu", dtype=_dtype(dtype))


# ---------------------------------------------------------------------------- children
def child_build(folder: Path, family: str, dtype: str, tiny: bool) -> dict[str, Any]:
    from bench.real_shapes import build

    started = time.perf_counter()
    built = build(folder, family, _dtype(dtype), tiny=tiny)
    return {"params": built.params, "weight_bytes": built.weight_bytes, "files": len(built.weight_files),
            "build_s": time.perf_counter() - started}


def child_load(folder: Path, dtype: str, repeats: int, app_dtype: bool) -> dict[str, Any]:
    files = sorted(folder.glob("*.safetensors"))
    for f in files:
        read_bytes(f)  # page cache warm for every variant
    cold: dict[str, list[float]] = {"cold": [], "cold_fp32": []}

    def timed(name: str, pool_dtype: str) -> None:
        pool = _pool(pool_dtype)
        gc.collect()
        started = time.perf_counter()
        with pool.acquire(folder):
            pass
        cold[name].append(time.perf_counter() - started)
        pool.clear()
        del pool
        gc.collect()

    fns: dict[str, Any] = {"raw": lambda: [read_bytes(f) for f in files], "cold_round": lambda: timed("cold", dtype)}
    if app_dtype:
        fns["fp32_round"] = lambda: timed("cold_fp32", "float32")
    t = interleaved(fns, repeats)
    out = {"raw_s": t["raw"], "cold_s": statistics.median(cold["cold"])}
    if cold["cold_fp32"]:
        out["cold_fp32_s"] = statistics.median(cold["cold_fp32"])
    return out


def child_ttft(folder: Path, family: str, dtype: str, repeats: int) -> dict[str, Any]:
    import torch
    from transformers import TextIteratorStreamer

    from dashboard.generation import GenerationSettings, stream

    image = _image(TTFT_IMAGE[family])
    settings = GenerationSettings(max_new_tokens=4)
    pool = _pool(dtype)
    with pool.acquire(folder) as loaded:
        model, processor = loaded.model, loaded.processor
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
        first_texts: dict[str, list[str]] = {"bare": [], "stream": []}
        app_ttft: list[float] = []

        def bare() -> None:  # plain transformers: processor, then generate in a thread feeding a streamer
            text = processor.apply_chat_template(messages, add_generation_prompt=True)
            inputs = processor(images=[image], text=[text], return_tensors="pt").to(dtype=loaded.dtype)
            streamer = TextIteratorStreamer(processor.tokenizer, skip_prompt=True, skip_special_tokens=True)

            def work() -> None:
                with torch.inference_mode():
                    model.generate(**inputs, max_new_tokens=4, do_sample=False, streamer=streamer)

            worker = threading.Thread(target=work)
            worker.start()
            first_texts["bare"].append(next(iter(streamer)))
            marks["bare"].append(time.perf_counter() - starts["bare"])
            for _ in streamer:
                pass
            worker.join()

        def pooled() -> None:
            s = stream(loaded, image, PROMPT, settings)
            chunks = iter(s)
            first_texts["stream"].append(next(chunks))
            marks["stream"].append(time.perf_counter() - starts["stream"])
            for _ in chunks:
                pass
            assert s.result is not None and s.result.ttft_s is not None
            app_ttft.append(s.result.ttft_s)

        marks: dict[str, list[float]] = {"bare": [], "stream": []}
        starts: dict[str, float] = {}

        def start(name: str, fn: Any) -> Any:
            def run() -> None:
                starts[name] = time.perf_counter()
                fn()
            return run

        start("bare", bare)()  # warm-up (first-use kernels, allocator)
        start("stream", pooled)()
        for values in (*marks.values(), *first_texts.values(), app_ttft):
            values.clear()
        interleaved({"bare": start("bare", bare), "stream": start("stream", pooled)}, repeats)
        prompt_tokens = int(loaded.processor(images=[image], text=[processor.apply_chat_template(
            messages, add_generation_prompt=True)], return_tensors="pt")["input_ids"].shape[1])
    return {"bare_ttft_s": statistics.median(marks["bare"]), "stream_ttft_s": statistics.median(marks["stream"]),
            "app_ttft_s": statistics.median(app_ttft), "prompt_tokens": prompt_tokens,
            "same_first_text": first_texts["bare"] == first_texts["stream"], "image": TTFT_IMAGE[family]}


def child_capture(folder: Path, family: str, dtype: str, mode: str, out: Path, new_tokens: int) -> dict[str, Any]:
    import numpy as np
    import torch

    from dashboard.attention.capture import capture_generate, reference_from_output_attentions
    from dashboard.generation import build_inputs
    from dashboard.models.vision_chunks import vision_in_chunks

    pool = _pool(dtype)
    with pool.acquire(folder) as loaded:
        model = loaded.model
        model.generation_config.eos_token_id = None  # always the full length
        kwargs = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
        small = build_inputs(loaded, _image((224, 224)), PROMPT)
        with torch.no_grad():  # warm-up on a small image: kernels and allocator, not this run's peak
            model.generate(**small, max_new_tokens=2, do_sample=False)
        inputs = build_inputs(loaded, _image(CAPTURE_IMAGE[family]), PROMPT)
        image_id = int(model.config.image_token_id)
        positions = (inputs["input_ids"][0] == image_id).nonzero().flatten().numpy()
        prompt_len = int(inputs["input_ids"].shape[1])
        if mode == "output_attentions":
            model.set_attn_implementation("eager")
        gc.collect()
        base = _start_peak()
        started = time.perf_counter()
        if mode == "plain":  # transformers as it is: every tile through the vision encoder at once
            with torch.no_grad():
                model.generate(**inputs, **kwargs)
            kept = 0
        elif mode == "app_plain":  # what dashboard.generation runs: the same generate, encoder in chunks
            with torch.no_grad(), vision_in_chunks(model):
                model.generate(**inputs, **kwargs)
            kept = 0
        elif mode == "output_attentions":
            with torch.no_grad():
                result = model.generate(**inputs, **kwargs, output_attentions=True, return_dict_in_generate=True)
            kept = sum(t.nbytes for step in result.attentions for t in step)
            peak = _end_peak()
            image, text = reference_from_output_attentions(result.attentions, positions, prompt_len)
            np.savez(out, image=image, text=text, generated=result.sequences[0, prompt_len:].numpy())
        else:
            captured = capture_generate(model, dict(inputs), lock=loaded.lock, **kwargs)
            kept = captured.nbytes()
            np.savez(out, image=captured.image_attention, text=captured.text_attention,
                     generated=np.array(captured.generated_ids))
        seconds = time.perf_counter() - started
        if mode != "output_attentions":
            peak = _end_peak()
    return {"mode": mode, "prompt_tokens": prompt_len, "image_tokens": len(positions), "kept_bytes": kept,
            "peak_rss_increase_bytes": (peak - base) * 1024, "seconds": seconds}


# ---------------------------------------------------------------------------- parent
def _child(*args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[:2]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        return f"{fields.get('Model name', '?').strip()} (family {fields.get('CPU family', '?').strip()}), " \
               f"{fields.get('CPU(s)', '?').strip()} CPUs"
    except OSError:
        return platform.processor() or "unknown CPU"


def run_config(work: Path, family: str, dtype: str, parts: list[str], repeats: int, new_tokens: int,
               tiny: bool = False) -> None:
    folder = work / f"{family}-{dtype}" / "checkpoint-0"
    mib = 1024 * 1024
    print(f"\n## {family}, {dtype} (load average {os.getloadavg()[0]:.1f})", flush=True)
    if (folder / "config.json").exists():  # --keep: built by an earlier run
        built = {"params": 0, "weight_bytes": sum(f.stat().st_size for f in folder.glob("*.safetensors")),
                 "files": len(list(folder.glob("*.safetensors"))), "build_s": 0.0}
    else:
        built = _child("_build", str(folder), family, dtype, "1" if tiny else "0")
    print(f"built: {built['params'] / 1e6:.1f} M parameters, {built['weight_bytes'] / 1e6:.0f} MB in "
          f"{built['files']} safetensors file(s), {built['build_s']:.0f} s", flush=True)
    if "load" in parts:
        app = dtype != "float32" and built["weight_bytes"] * 2 < 3e9  # an fp32 upcast that fits comfortably
        r = _child("_load", str(folder), dtype, str(repeats), "1" if app else "0")
        print(f"raw read of the weights (page cache warm): {r['raw_s'] * 1000:8.0f} ms", flush=True)
        print(f"cold load via ModelPool.acquire ({dtype}):  {r['cold_s'] * 1000:8.0f} ms = "
              f"{r['cold_s'] / r['raw_s']:.2f}x raw read (goal ≤ 2x)", flush=True)
        if "cold_fp32_s" in r:
            print(f"cold load, app's CPU default (fp32 pool):  {r['cold_fp32_s'] * 1000:8.0f} ms = "
                  f"{r['cold_fp32_s'] / r['raw_s']:.2f}x raw read (upcasts bf16 → fp32)", flush=True)
    if "ttft" in parts:
        r = _child("_ttft", str(folder), family, dtype, str(repeats))
        print(f"TTFT, {r['prompt_tokens']} prompt tokens ({r['image'][0]} × {r['image'][1]} image), medians of "
              f"{repeats}; same first text: {r['same_first_text']}", flush=True)
        print(f"bare transformers (processor + generate + TextIteratorStreamer): {r['bare_ttft_s'] * 1000:8.0f} ms",
              flush=True)
        print(f"pool stream() first chunk:                                      {r['stream_ttft_s'] * 1000:8.0f} ms"
              f" = {r['stream_ttft_s'] / r['bare_ttft_s']:.2f}x bare (goal ≤ 1.2x); the app's own ttft_s "
              f"(generate start → first token) {r['app_ttft_s'] * 1000:.0f} ms", flush=True)
    if "capture" in parts:
        rows = {}
        from dashboard.models.vision_chunks import ENCODERS

        chunked = json.loads((folder / "config.json").read_text()).get("model_type") in ENCODERS
        for mode in ("plain", "app_plain", "output_attentions", "capture") if chunked else \
                ("plain", "output_attentions", "capture"):  # app_plain is plain where nothing is chunked
            rows[mode] = _child("_capture", str(folder), family, dtype, mode, str(folder.parent / f"{mode}.npz"),
                                str(new_tokens), env=_malloc_env())
        import numpy as np

        oa = np.load(folder.parent / "output_attentions.npz")
        cap = np.load(folder.parent / "capture.npz")
        same_tokens = bool(np.array_equal(oa["generated"], cap["generated"]))
        diff = max(float(np.abs(oa["image"] - cap["image"]).max()), float(np.abs(oa["text"] - cap["text"]).max()))
        r0 = rows["plain"]
        print(f"capture: {r0['prompt_tokens']} prompt tokens, {r0['image_tokens']} image tokens, {new_tokens} new "
              f"tokens", flush=True)
        for mode, r in rows.items():
            print(f"  {mode:<18} kept {r['kept_bytes'] / mib:9.1f} MiB   peak RSS + "
                  f"{r['peak_rss_increase_bytes'] / mib:8.1f} MiB   {r['seconds']:7.1f} s", flush=True)
        peaks = {mode: r["peak_rss_increase_bytes"] for mode, r in rows.items()}
        ratio = peaks["capture"] / max(peaks["output_attentions"], 1)
        print(f"  capture / output_attentions peak-RSS increase: {ratio:.3f} (goal ≤ 0.2); max |diff| {diff:.2e} "
              f"(goal ≤ 1e-5); same generated tokens: {same_tokens}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd")
    for name, extra in (("_build", ["folder", "family", "dtype", "tiny"]),
                        ("_load", ["folder", "dtype", "repeats", "app"]),
                        ("_ttft", ["folder", "family", "dtype", "repeats"]),
                        ("_capture", ["folder", "family", "dtype", "mode", "out", "new_tokens"])):
        child = sub.add_parser(name)
        for arg in extra:
            child.add_argument(arg)
    parser.add_argument("--families", nargs="+", default=["smolvlm_256m", "qwen2_vl_2b"])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    parser.add_argument("--parts", nargs="+", default=["load", "ttft", "capture"], choices=["load", "ttft", "capture"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=4, help="generated tokens in the capture runs")
    parser.add_argument("--tiny", action="store_true", help="scaled-down widths (a smoke run of this script)")
    parser.add_argument("--workdir", type=Path, help="where checkpoints are built (default: a temp dir, removed)")
    parser.add_argument("--keep", action="store_true",
                        help="build into --workdir itself, keep the checkpoints, and reuse ones built before")
    args = parser.parse_args()
    if args.cmd:
        _quiet()
        folder = Path(args.folder)
        if args.cmd == "_build":
            result = child_build(folder, args.family, args.dtype, args.tiny == "1")
        elif args.cmd == "_load":
            result = child_load(folder, args.dtype, int(args.repeats), args.app == "1")
        elif args.cmd == "_ttft":
            result = child_ttft(folder, args.family, args.dtype, int(args.repeats))
        else:
            result = child_capture(folder, args.family, args.dtype, args.mode, Path(args.out), int(args.new_tokens))
        print(json.dumps(result))
        return
    import torch

    print(f"CPU: {_cpu_name()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.keep:
        if args.workdir is None:
            parser.error("--keep needs --workdir")
        for family in args.families:
            for dtype in args.dtypes:
                run_config(args.workdir, family, dtype, args.parts, args.repeats, args.new_tokens, args.tiny)
        return
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for family in args.families:
            for dtype in args.dtypes:
                run_config(Path(tmp), family, dtype, args.parts, args.repeats, args.new_tokens, args.tiny)
                for f in (Path(tmp) / f"{family}-{dtype}").rglob("*"):  # one configuration on disk at a time
                    if f.is_file():
                        f.unlink()


if __name__ == "__main__":
    main()
