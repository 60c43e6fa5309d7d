"""Is the attention map better than "delete whatever is drawn first"? A stronger baseline than random orders.

On the demo's pictures most patches are empty background, which the mean-colour fill barely changes, so a
random order mostly deletes nothing and a map that merely prefers drawn patches does well against it. This bench
scores, per example, the map's deletion and insertion curves (``dashboard.attention.faithfulness.patch_curves``,
the code the page and the CLI run) and the curves of a model-free *content* order — patches sorted by how far
their pixels are from the fill colour — and reports how often the attention map beats the content order.

    nice -n 10 .venv/bin/python bench/faithfulness_content_baseline.py --run runs/demo \\
        --checkpoints checkpoint-300,checkpoint-2700 --limit 20
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import torch

from dashboard.attention import faithfulness as fa
from dashboard.attention.analysis import analyse
from dashboard.config import load_settings
from dashboard.evalset import load_eval_set
from dashboard.images import load_image
from dashboard.models.pool import ModelPool


def content_grid(image, view) -> np.ndarray:
    """Per cell: mean absolute distance of its pixels from the fill colour (0 = nothing to delete)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    colour = np.asarray(fa.fill_colour(image), dtype=np.float64)
    rects = fa.cell_rectangles(view, image.size)
    values = [0.0 if r is None else float(np.abs(pixels[r[1]:r[3], r[0]:r[2]] - colour).mean()) for r in rects]
    return np.asarray(values).reshape(view.shape)


def _better(by_map: fa.PatchCurves, by_content: fa.PatchCurves) -> bool:
    """The map's order beats the content order on this curve (area, signed so that larger is better)."""
    return by_map.signed_area(by_map.by_map) > by_content.signed_area(by_content.by_map)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--checkpoints", required=True)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--points", type=int, default=11)
    args = parser.parse_args()
    run = args.run.resolve()
    examples = load_eval_set(run / "eval" / "demo.jsonl", roots=[run]).examples[:args.limit]
    options = dataclasses.replace(load_settings().load_options(), roots=(run,), device="cpu")
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32, options=options)
    out = {"load_before": os.getloadavg(), "checkpoints": {}}
    for name in args.checkpoints.split(","):
        rows = []
        with pool.acquire(run / name) as loaded:
            for example in examples:
                image = load_image(example.image_path)
                cap = analyse(loaded, image, example.prompt, max_new_tokens=1, lens_top_k=0, lens_image_tokens=False)
                view = cap.layout.primary
                target = cap.result.generated_ids[0]
                by_map = fa.patch_curves(loaded, image, example.prompt, cap.grid(0, None, "mean"), view, target,
                                         points=args.points)
                by_content = fa.patch_curves(loaded, image, example.prompt, content_grid(image, view), view,
                                             target, seeds=(0,), points=args.points)  # their random part unused
                rows.append({"id": example.id,
                             "beats_content": {c.kind: _better(c, d) for c, d in zip(by_map, by_content, strict=True)},
                             "p": {c.kind: c.p_value for c in by_map}})
        out["checkpoints"][name] = {
            "n": len(rows),
            "map_beats_content": {kind: float(np.mean([r["beats_content"][kind] for r in rows]))
                                  for kind in ("deletion", "insertion")},
            "rows": rows}
        print(json.dumps({name: {k: v for k, v in out["checkpoints"][name].items() if k != "rows"}}), flush=True)
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
