"""What holds plain generation's peak RSS on a tiled prompt: the vision encoder at once vs in chunks, the text prefill.

    .venv/bin/python bench/bench_real_shapes.py _build /tmp/keep/smolvlm_256m-float32/checkpoint-0 \\
        smolvlm_256m float32 0
    MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 \\
        .venv/bin/python bench/probe_vision_peak.py /tmp/keep/smolvlm_256m-float32/checkpoint-0 [float32|bfloat16]

Loads an Idefics3/SmolVLM checkpoint through the pool, warms up with one generation, then measures
phase by phase in this one process: each phase's peak RSS over the RSS at its start (the kernel's
high-water mark is reset before every phase: ``/proc/self/clear_refs`` ``5``, Linux only). Phases:
``get_image_features`` on all tiles at once, 4 and 1 tile(s) at a time (with max |diff| to the at-once
features), a plain ``generate`` of 4 tokens (the LM head's output shapes are printed: whether
``generate`` asks for the last position's logits only), and the text prefill alone with the image
features given.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.bench_real_shapes import PROMPT, _image, _pool, _quiet  # noqa: E402
from dashboard.generation import build_inputs  # noqa: E402


def _rss_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def phase(name: str, fn: Any) -> Any:
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")
    base, started = _rss_mib(), time.perf_counter()
    with torch.no_grad():
        out = fn()
    print(f"{name:<40} peak +{_hwm_mib() - base:7.1f} MiB  (after +{_rss_mib() - base:6.1f})  "
          f"{time.perf_counter() - started:6.1f} s", flush=True)
    return out


def main(folder: str, dtype: str) -> None:
    _quiet()
    with _pool(dtype).acquire(folder) as loaded:
        model = loaded.model
        model.generation_config.eos_token_id = None
        small = build_inputs(loaded, _image((224, 224)), PROMPT)
        print("warm-up pixel_values", tuple(small["pixel_values"].shape), "prompt", small["input_ids"].shape[1])
        with torch.no_grad():
            model.generate(**small, max_new_tokens=2, do_sample=False)
        inputs = build_inputs(loaded, _image((1536, 1536)), PROMPT)
        pv, pam = inputs["pixel_values"], inputs["pixel_attention_mask"]
        print("pixel_values", tuple(pv.shape), pv.dtype, "prompt", inputs["input_ids"].shape[1])
        shapes: list[tuple[int, ...]] = []
        hook = model.lm_head.register_forward_hook(lambda _m, _a, o: shapes.append(tuple(o.shape)))
        at_once = torch.cat(phase("get_image_features (all tiles at once)",
                                  lambda: model.model.get_image_features(pv, pam).pooler_output))

        def chunked(n: int) -> torch.Tensor:
            return torch.cat([torch.cat(model.model.get_image_features(pv[:, i:i + n], pam[:, i:i + n]).pooler_output)
                              for i in range(0, pv.shape[1], n)])

        for n in (4, 1):
            part = phase(f"get_image_features ({n} tile(s) at a time)", lambda n=n: chunked(n))
            print(f"   max |diff| vs at once: {float((part - at_once).abs().max()):.3g}; "
                  f"bitwise equal: {torch.equal(part, at_once)}")
        del part, at_once
        shapes.clear()
        phase("plain generate (4 new tokens)",
              lambda: model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False))
        print("lm_head output shapes:", shapes)
        features = model.model.get_image_features(pv, pam)
        phase("text prefill only (features given)",
              lambda: model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                            mm_encoder_outputs={"image": features}, logits_to_keep=1))
        hook.remove()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "float32")
