"""Trust in a map: the deletion and insertion curves separate a map that points at what the answer uses from one
that does not, the permutation p counts what it should, the sanity check never touches the pooled model, and the
page's button shows the result.

The planted case keeps the real processor and the adapter's geometry (what the check deletes is what the
processor feeds each vision patch) and replaces only the network by one whose answer reads a single patch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention import faithfulness as fa
from dashboard.attention.adapters import layout_for
from dashboard.attention.analysis import analyse
from dashboard.config import load_settings
from dashboard.evalset import load_eval_set
from dashboard.generation import build_inputs
from dashboard.images import load_image
from dashboard.models.pool import ModelPool
from tests.attention_kit import captured_first_example

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
    return fa.check_map(planted["loaded"], planted["run"], 0, grid=grid, plan=fa.CheckPlan(sanity=False))


def _target_index(planted: dict[str, Any]) -> int:
    return TARGET_CELL[0] * planted["view"].shape[1] + TARGET_CELL[1]


def test_a_map_on_the_region_the_answer_reads_beats_random(planted: dict[str, Any]) -> None:
    rows, cols = planted["view"].shape
    grid = np.zeros((rows, cols))
    grid[TARGET_CELL] = 1.0  # forced to point at the one patch the answer depends on
    result = _check(planted, grid)
    deleted, inserted = result.deletion.by_map, result.insertion.by_map
    assert deleted[1] < deleted[0]  # the first deletion already takes probability away
    assert all(abs(y - deleted[1]) < 1e-6 for y in deleted[1:])  # and nothing deleted later matters
    assert inserted[1] > inserted[0]  # inserting that one patch alone brings it back
    assert all(abs(y - inserted[-1]) < 1e-6 for y in inserted[1:])
    assert result.deletion.score > 0 and result.insertion.score > 0
    # The permutation p is exact here: only a random order that also starts with the target cell is as good.
    ties = sum(int(order[0]) == _target_index(planted) for order in fa.random_orders(rows * cols, fa.DEFAULT_SEEDS))
    expected = (1 + ties) / (1 + len(fa.DEFAULT_SEEDS))
    assert result.deletion.p_value == pytest.approx(expected) and result.insertion.p_value == pytest.approx(expected)
    # the random orders as good as the map are the same orders on both curves: testing two costs nothing here
    assert result.p_value == pytest.approx(expected)
    assert result.beats_random == (expected <= fa.ALPHA + 1e-12)
    assert ties <= 1 and result.beats_random
    assert len(result.deletion.by_random) == len(result.insertion.by_random) == len(fa.DEFAULT_SEEDS)


def test_a_map_pointing_elsewhere_does_not_beat_random(planted: dict[str, Any]) -> None:
    rows, cols = planted["view"].shape
    r, c = np.mgrid[0:rows, 0:cols]
    grid = np.hypot(r - TARGET_CELL[0], c - TARGET_CELL[1])  # most attention farthest from the patch that matters
    result = _check(planted, grid)
    assert not result.beats_random and result.deletion.score < 0 and result.insertion.score < 0
    assert result.deletion.p_value > 0.5 and result.insertion.p_value > 0.5
    pointed = np.zeros((rows, cols))
    pointed[TARGET_CELL] = 1.0
    better = _check(planted, pointed)
    assert better.deletion.score > result.deletion.score and better.insertion.score > result.insertion.score


def test_curves_end_where_the_whole_and_the_painted_picture_are(planted: dict[str, Any]) -> None:
    """Deletion runs whole → painted, insertion painted → whole; every order shares both ends."""
    rows, cols = planted["view"].shape
    result = fa.check_map(planted["loaded"], planted["run"], 0, grid=np.ones((rows, cols)),
                          plan=fa.CheckPlan((0, 1, 2), 8, sanity=False))
    deletion, insertion = result.curves
    assert deletion.fractions == insertion.fractions and deletion.fractions[0] == 0 and deletion.fractions[-1] == 1
    for curve in [deletion.by_map, *deletion.by_random]:
        assert curve[0] == deletion.by_map[0] and curve[-1] == deletion.by_map[-1]
    for curve in [insertion.by_map, *insertion.by_random]:
        assert curve[0] == deletion.by_map[-1] and curve[-1] == deletion.by_map[0]
    assert deletion.base == insertion.base == deletion.by_map[0]


def test_a_plan_declares_the_pictures_and_batches_the_check_runs(planted: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What a job declares to the admission gate is what the check runs: the local plan (~3,200 pictures in
    batches of 32) and a public plan that fits a budget, each batch inside its own turn."""
    rows, cols = planted["view"].shape
    batches: list[int] = []
    turns: list[int] = []
    real = fa._batched_inputs

    def counting(loaded: Any, images: Any, prompt: str, forced: Any) -> dict[str, Any]:
        batches.append(len(images))
        return real(loaded, images, prompt, forced)

    @contextlib.contextmanager
    def turn() -> Iterator[None]:
        turns.append(len(batches))  # entered after the batch's inputs are built, before its forward pass
        yield

    monkeypatch.setattr(fa, "_batched_inputs", counting)
    for plan in (fa.LOCAL_PLAN, fa.CheckPlan.within(rows * cols, 256, 4)):
        batches.clear()
        turns.clear()
        fa.check_map(planted["loaded"], planted["run"], 0, grid=np.ones((rows, cols)),
                     plan=dataclasses.replace(plan, sanity=False), batch_turn=turn)
        assert sum(batches) == plan.pictures(rows * cols)
        assert max(batches) == plan.batch_size and turns == list(range(1, len(batches) + 1))
    public = fa.CheckPlan.within(rows * cols, 256, 4)
    assert fa.LOCAL_PLAN.pictures(rows * cols) > 3_000 and public.pictures(rows * cols) <= 256
    assert len(public.seeds) == fa.FEWEST_ORDERS == 19 and not public.sanity  # 1 / (19 + 1) = ALPHA
    assert 1 / (fa.FEWEST_ORDERS + 1) <= fa.ALPHA < 1 / fa.FEWEST_ORDERS
    with pytest.raises(fa.FaithfulnessError):
        fa.CheckPlan.within(rows * cols, 41, 4)  # 19 orders with one inner point need 2 + 2 × 20 = 42


def test_deletion_steps_are_dense_where_a_map_makes_its_claim() -> None:
    steps = fa.deletion_steps(100, 21)
    assert steps[0] == 0 and steps[-1] == 100 and len(steps) <= 21
    assert np.all(np.diff(steps) > 0)
    assert list(steps[:6]) == [0, 1, 2, 3, 4, 5]  # one patch at a time first
    assert list(fa.deletion_steps(4, 21)) == [0, 1, 2, 3, 4]
    with pytest.raises(fa.FaithfulnessError):
        fa.deletion_steps(0)


def test_p_value_ranks_the_map_among_the_random_orders() -> None:
    fractions = [0.0, 0.5, 1.0]

    def curves(kind: fa.Kind, by_map: list[float]) -> fa.PatchCurves:
        randoms = [[1.0, 0.9, 0.0], [1.0, 0.5, 0.0], [1.0, 0.7, 0.0]] if kind == "deletion" else \
                  [[0.0, 0.1, 1.0], [0.0, 0.5, 1.0], [0.0, 0.3, 1.0]]
        return fa.PatchCurves(kind, fractions, by_map, randoms, [0, 1, 2])

    assert curves("deletion", [1.0, 0.1, 0.0]).p_value == pytest.approx(1 / 4)  # better than all three
    assert curves("deletion", [1.0, 0.5, 0.0]).p_value == pytest.approx(2 / 4)  # a tie counts against the map
    assert curves("deletion", [1.0, 1.0, 0.0]).p_value == pytest.approx(1.0)
    assert curves("insertion", [0.0, 0.9, 1.0]).p_value == pytest.approx(1 / 4)
    assert curves("insertion", [0.0, 0.0, 1.0]).p_value == pytest.approx(1.0)
    assert curves("deletion", [1.0, 0.1, 0.0]).score > 0 > curves("deletion", [1.0, 1.0, 0.0]).score


def _pair(deletion_middle: list[float], insertion_middle: list[float]) -> tuple[fa.PatchCurves, fa.PatchCurves]:
    """Two 3-point curves; the map's middle value first, then each random order's."""
    seeds = list(range(len(deletion_middle) - 1))
    deletion = [[1.0, m, 0.0] for m in deletion_middle]
    insertion = [[0.0, m, 1.0] for m in insertion_middle]
    return (fa.PatchCurves("deletion", [0.0, 0.5, 1.0], deletion[0], deletion[1:], seeds),
            fa.PatchCurves("insertion", [0.0, 0.5, 1.0], insertion[0], insertion[1:], seeds))


def test_two_curves_are_tested_together_by_westfall_young_min_p() -> None:
    # the same orders are good on both curves (one order, two views of it): no price for testing two
    deletion, insertion = _pair([0.1, 0.2, 0.6, 0.9], [0.9, 0.8, 0.4, 0.1])
    assert deletion.p_value == insertion.p_value == pytest.approx(1 / 4)
    assert fa.min_p_adjusted([deletion, insertion]) == pytest.approx(1 / 4)
    # a different random order is best on each curve: the map is best on one only, like two orders are
    deletion, insertion = _pair([0.1, 0.2, 0.6, 0.05], [0.9, 0.95, 0.4, 0.1])
    assert min(deletion.p_value, insertion.p_value) == pytest.approx(2 / 4)
    assert fa.min_p_adjusted([deletion, insertion]) == pytest.approx(3 / 4)  # map, and one order per curve
    # one curve alone is that curve's permutation p
    assert fa.min_p_adjusted([insertion]) == insertion.p_value


def test_min_p_never_exceeds_bonferroni_and_never_undercuts_either_curve() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n = int(rng.integers(2, 40))
        middles = rng.choice([0.1, 0.3, 0.5, 0.7, 0.9], size=(2, n))  # ties on purpose
        deletion, insertion = _pair(list(middles[0]), list(middles[1]))
        smallest = min(deletion.p_value, insertion.p_value)
        adjusted = fa.min_p_adjusted([deletion, insertion])
        assert smallest - 1e-12 <= adjusted <= min(1.0, 2 * smallest) + 1e-12


def test_deletion_paints_exactly_the_cells_boxes(planted: dict[str, Any]) -> None:
    """On the pictures the curves are measured on: an order starting with one cell, one cell deleted or inserted."""
    image, view = planted["run"].image, planted["view"]
    rects = fa.cell_rectangles(view, image.size)
    colour = fa.fill_colour(image)
    cell = TARGET_CELL[0] * view.shape[1] + TARGET_CELL[1]
    whole, painted, deleted, inserted = (np.asarray(p) for p in
                                         fa.curve_pictures(image, rects, np.array([[cell]]), [1]))
    assert (whole == np.asarray(image)).all() and (painted == colour).all()
    masked = deleted
    changed = np.any(masked != np.asarray(image), axis=-1)
    x0, y0, x1, y1 = rects[cell]  # type: ignore[misc]
    assert changed[y0:y1, x0:x1].all() and changed.sum() == (x1 - x0) * (y1 - y0)
    assert (masked[y0:y1, x0:x1] == colour).all()
    revealed = inserted
    kept = np.all(revealed == np.asarray(image), axis=-1)
    assert kept[y0:y1, x0:x1].all()
    outside = np.ones(kept.shape, dtype=bool)
    outside[y0:y1, x0:x1] = False
    assert (revealed[outside] == colour).all()


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
        result = fa.check_map(loaded, run, 0, plan=fa.CheckPlan((0, 1), 6))
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
    at = captured_first_example(demo_run_dir)
    charts = len(at.get("plotly_chart"))
    at.button(key="attn.faith_go").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("plotly_chart")) == charts + 2  # deletion and insertion
    labels = {m.label for m in at.metric}
    assert {"Beats random orders", "p (both curves)", "Map with random weights (ρ)"} <= labels
    stored = next(iter(at.session_state["attn.faith"].values()))
    shown = {m.label: m.value for m in at.metric}
    assert shown["p (both curves)"] == f"{stored.p_value:.3f}"  # the numbers on the page are the check's numbers
    assert shown["Beats random orders"] == ("yes" if stored.beats_random else "no")
    captions = [c.value for c in at.caption]
    for curves in stored.curves:
        assert any(f"**{curves.score:+.2f}**" in c and f"**{curves.p_value:.3f}**" in c for c in captions)
    assert any(fa.FILL in c for c in captions)


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
        direct = fa.check_map(loaded, run, 0, plan=fa.CheckPlan((0, 1), 6))
    assert row["id"] == example.id and row["token_id"] == direct.token_id
    for name in ("deletion_score", "insertion_score", "deletion_p", "insertion_p", "p_value"):
        assert row[name] == pytest.approx(direct.to_dict()[name], abs=1e-6), name
    assert row["beats_random"] == direct.beats_random
    assert row["sanity_spearman"] == pytest.approx(direct.sanity.full, abs=1e-6)  # type: ignore[union-attr]
    assert report["summary"]["beats_random"] == float(direct.beats_random)
    assert main(["faithfulness", "--checkpoint", str(demo_run_dir / "no-such-checkpoint"), "--json"]) == 2
    assert "checkpoint directory not found" in capsys.readouterr().err
