"""Trust in a map: the deletion curve separates a map that points at what the answer uses from one that does not,
the sanity check never touches the pooled model, and the page's button shows the result.

The planted case keeps the real processor and the adapter's geometry (what the check deletes is what the
processor feeds each vision patch) and replaces only the network by one whose answer reads a single patch.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest

from dashboard.attention import faithfulness as fa
from dashboard.attention.adapters import layout_for
from dashboard.attention.analysis import analyse
from dashboard.config import load_settings
from dashboard.evalset import load_eval_set
from dashboard.generation import build_inputs
from dashboard.images import load_image
from dashboard.models.pool import ModelPool

HOME = Path(__file__).resolve().parents[2] / "Home.py"
TARGET_CELL = (3, 6)


@pytest.fixture(scope="module")
def pool(demo_run_dir: Path) -> ModelPool:
    options = dataclasses.replace(load_settings().load_options(), roots=(demo_run_dir.resolve(),), device="cpu")
    return ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32, options=options)


@pytest.fixture(scope="module")
def last_checkpoint(demo_run_dir: Path) -> Path:
    return max(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))


class OnePatchModel(torch.nn.Module):
    """The answer token's logit is the brightness of one vision patch of ``pixel_values``; nothing else counts."""

    def __init__(self, config: Any, cell: tuple[int, int], target: int):
        super().__init__()
        self.config = config
        self.cell, self.target = cell, target
        self.patch = int(config.vision_config.patch_size)

    def forward(self, pixel_values: torch.Tensor, logits_to_keep: int = 0, **_: Any) -> SimpleNamespace:
        r, c, p = self.cell[0], self.cell[1], self.patch
        brightness = pixel_values[:, :, r * p:(r + 1) * p, c * p:(c + 1) * p].float().mean((1, 2, 3))
        logits = torch.zeros(pixel_values.shape[0], 1, int(self.config.text_config.vocab_size))
        logits[:, 0, self.target] = 4.0 * brightness
        return SimpleNamespace(logits=logits)


@pytest.fixture(scope="module")
def planted(pool: ModelPool, last_checkpoint: Path) -> dict[str, Any]:
    """A grey picture with one white square exactly at the target cell's box, and a model that reads that patch."""
    with pool.acquire(last_checkpoint) as real:
        side = int(real.model.config.vision_config.image_size)
        image = Image.new("RGB", (side, side), (90, 90, 90))
        prompt = "what is here ?"
        inputs = build_inputs(real, image, prompt)
        layout = layout_for(real.model.config, real.processor, inputs["input_ids"], image, inputs)
        view = layout.primary
        x0, y0, x1, y1 = (int(v) for v in view.boxes[TARGET_CELL])
        image.paste((255, 255, 255), (x0, y0, x1, y1))
        target = 5
        loaded = SimpleNamespace(model=OnePatchModel(real.model.config, TARGET_CELL, target),
                                 processor=real.processor, lock=threading.RLock(), device=torch.device("cpu"),
                                 dtype=torch.float32, path=last_checkpoint, model_type="llava")
    result = SimpleNamespace(generated_ids=[target], n_layers=1)
    run = SimpleNamespace(image=image, prompt=prompt, layout=layout, result=result, tokens=["x"], inputs=None)
    return {"loaded": loaded, "run": run, "view": view}


def _check(planted: dict[str, Any], grid: np.ndarray) -> fa.Faithfulness:
    return fa.check_map(planted["loaded"], planted["run"], 0, grid=grid, sanity=False)


def test_a_map_on_the_region_the_answer_reads_beats_random(planted: dict[str, Any]) -> None:
    rows, cols = planted["view"].shape
    grid = np.zeros((rows, cols))
    grid[TARGET_CELL] = 1.0  # forced to point at the one patch the answer depends on
    result = _check(planted, grid)
    curve = result.deletion.by_map
    assert curve[1] < curve[0]  # the first deletion already takes probability away
    assert all(abs(y - curve[1]) < 1e-6 for y in curve[1:])  # and nothing deleted later matters
    assert result.beats_random and result.score > 0
    assert len(result.deletion.by_random) == len(fa.DEFAULT_SEEDS)


def test_a_map_pointing_elsewhere_does_not_beat_random(planted: dict[str, Any]) -> None:
    rows, cols = planted["view"].shape
    r, c = np.mgrid[0:rows, 0:cols]
    grid = np.hypot(r - TARGET_CELL[0], c - TARGET_CELL[1])  # most attention farthest from the patch that matters
    result = _check(planted, grid)
    assert not result.beats_random and result.score < 0
    pointed = np.zeros((rows, cols))
    pointed[TARGET_CELL] = 1.0
    assert _check(planted, pointed).score > result.score


def test_deletion_paints_exactly_the_cells_boxes(planted: dict[str, Any]) -> None:
    image, view = planted["run"].image, planted["view"]
    rects = fa.cell_rectangles(view, image.size)
    colour = fa.fill_colour(image)
    cell = TARGET_CELL[0] * view.shape[1] + TARGET_CELL[1]
    masked = np.asarray(fa.masked_image(image, rects, [cell], colour))
    changed = np.any(masked != np.asarray(image), axis=-1)
    x0, y0, x1, y1 = rects[cell]  # type: ignore[misc]
    assert changed[y0:y1, x0:x1].all() and changed.sum() == (x1 - x0) * (y1 - y0)
    assert (masked[y0:y1, x0:x1] == colour).all()


def test_spearman_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=50), rng.normal(size=50)
    a[:5] = a[5]  # ties: average ranks
    assert fa.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert fa.spearman(a, a) == pytest.approx(1.0)
    assert np.isnan(fa.spearman(np.ones(4), b[:4]))


def test_sanity_check_randomises_a_copy_never_the_pooled_model(pool: ModelPool, last_checkpoint: Path,
                                                               demo_run_dir: Path) -> None:
    example = load_eval_set(demo_run_dir / "eval" / "demo.jsonl").examples[0]
    with pool.acquire(last_checkpoint) as loaded:
        before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
        run = analyse(loaded, load_image(example.image_path), example.prompt, max_new_tokens=2, lens_top_k=0,
                      lens_image_tokens=False)
        result = fa.check_map(loaded, run, 0, seeds=(0, 1), points=6)
        after = loaded.model.state_dict()
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
        again = analyse(loaded, load_image(example.image_path), example.prompt, max_new_tokens=2, lens_top_k=0,
                        lens_image_tokens=False)
    assert again.result.generated_ids == run.result.generated_ids
    np.testing.assert_array_equal(again.grid(0, None, "mean"), run.grid(0, None, "mean"))
    sanity = result.sanity
    assert sanity is not None
    assert sanity.randomised_layers == list(range(1, run.result.n_layers + 1))
    assert all(-1.0 <= r <= 1.0 for r in sanity.spearman)
    assert sanity.full < 0.999  # random weights give another map
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["sanity_spearman"] == sanity.full and payload["fill"] == fa.FILL


def test_the_check_this_map_button_shows_the_curves_and_numbers(app_env: Path, demo_run_dir: Path) -> None:
    at = AppTest.from_file(str(HOME), default_timeout=240)
    at.run()
    at.switch_page("pages/4_Attention.py").run()
    first = load_eval_set(demo_run_dir / "eval" / "demo.jsonl").examples[0]
    at.button(key=f"attn.pick.{first.id}").click().run()
    at.number_input(key="attn.max_new").set_value(1).run()
    at.button(key="attn.go").click().run()
    assert not at.exception, at.exception
    charts = len(at.get("plotly_chart"))
    at.button(key="attn.faith_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == charts + 1
    labels = [m.label for m in at.metric]
    assert "Faithfulness (area between curves)" in labels
    assert "Same map after randomising the weights (Spearman)" in labels
    stored = next(iter(at.session_state["attn.faith"].values()))
    shown = next(m.value for m in at.metric if m.label.startswith("Faithfulness"))
    assert shown == f"{stored.score:+.2f}"  # the number on the page is the check's number
    assert any(fa.FILL in c.value for c in at.caption)


def test_cli_prints_what_the_page_computes(pool: ModelPool, last_checkpoint: Path, demo_run_dir: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One number, one truth: the CLI's per-example score is ``check_map`` on that example (the page's call)."""
    from dashboard.cli import main

    eval_file = demo_run_dir / "eval" / "demo.jsonl"
    assert main(["faithfulness", "--checkpoint", str(last_checkpoint), "--eval", str(eval_file), "--limit", "1",
                 "--seeds", "2", "--points", "6", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (row,) = report["examples"]
    example = load_eval_set(eval_file).examples[0]
    with pool.acquire(last_checkpoint) as loaded:
        run = analyse(loaded, load_image(example.image_path), example.prompt, max_new_tokens=1, lens_top_k=0,
                      lens_image_tokens=False)
        direct = fa.check_map(loaded, run, 0, seeds=(0, 1), points=6)
    assert row["id"] == example.id and row["token_id"] == direct.token_id
    assert row["score"] == pytest.approx(direct.score, abs=1e-6)
    assert row["sanity_spearman"] == pytest.approx(direct.sanity.full, abs=1e-6)  # type: ignore[union-attr]
    assert report["summary"]["beats_random"] == float(direct.beats_random)
    assert main(["faithfulness", "--checkpoint", str(demo_run_dir / "no-such-checkpoint"), "--json"]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
