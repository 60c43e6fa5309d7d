"""Runner: checkpoints through a real pool with tiny LLaVA models; caching, saving, stopping."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from dashboard.compare.results import load_saved_scores, load_scores
from dashboard.compare.runner import compare_single, run_eval
from dashboard.evalset import load_eval_set
from dashboard.generation import GenerationSettings, generate
from dashboard.models.pool import ModelPool

SETTINGS = GenerationSettings(max_new_tokens=3)
COLOURS = ["red", "green", "blue", "yellow", "red"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with two differently-initialised checkpoints and a 5-row eval set."""
    from dashboard.demo.modeling import save_tiny_llava

    run = tmp_path_factory.mktemp("cmp") / "run"
    words = ["what", "colour", "?", *COLOURS]
    save_tiny_llava(run / "checkpoint-1", words=words, seed=0)
    save_tiny_llava(run / "checkpoint-2", words=words, seed=1)
    (run / "eval" / "images").mkdir(parents=True)
    lines = []
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (64, 64), colour).save(run / "eval" / "images" / f"{i}.png")
        lines.append(json.dumps({"id": str(i), "image": f"images/{i}.png", "prompt": "what colour ?",
                                 "answer": colour}))
    (run / "eval" / "demo.jsonl").write_text("\n".join(lines) + "\n")
    return run


def _pool() -> ModelPool:
    return ModelPool(budget_bytes=10**9, device="cpu")


def test_compare_single_caches_and_isolates_errors(tiny_run: Path, tmp_path: Path) -> None:
    pool, cache = _pool(), {}
    broken = tmp_path / "checkpoint-9"
    broken.mkdir()
    ckpts = [tiny_run / "checkpoint-1", broken, tiny_run / "checkpoint-2"]
    image = Image.new("RGB", (64, 64), "red")
    seen: list[tuple[int, int, str]] = []
    outs = compare_single(pool, ckpts, image, "what colour ?", SETTINGS, cache, image_digest="d1",
                          on_progress=lambda d, t, m: seen.append((d, t, m)))
    assert [o.name for o in outs] == ["checkpoint-1", "checkpoint-9", "checkpoint-2"]
    assert outs[0].ok and outs[2].ok and not outs[1].ok and outs[1].error
    assert outs[0].step == 1 and outs[0].output_tokens > 0 and outs[0].prompt_tokens > 64
    with pool.acquire(ckpts[0]) as loaded:
        assert outs[0].text == generate(loaded, image, "what colour ?", SETTINGS).text
    assert seen[-1][:2] == (3, 3)
    loads = pool.load_count
    again = compare_single(pool, ckpts, image, "what colour ?", SETTINGS, cache, image_digest="d1")
    assert pool.load_count == loads  # nothing re-run except the failing one (which fails before loading)
    assert again[0].cached and again[0].text == outs[0].text and again[1].error
    other = compare_single(pool, ckpts[:1], image, "what colour ?", GenerationSettings(max_new_tokens=2), cache,
                           image_digest="d1")
    assert not other[0].cached  # settings are part of the key


def test_run_eval_saves_reuses_and_stops(tiny_run: Path) -> None:
    evalset = load_eval_set(tiny_run / "eval" / "demo.jsonl")
    ckpts = [tiny_run / "checkpoint-1", tiny_run / "checkpoint-2"]
    shutil.rmtree(tiny_run / "eval_results", ignore_errors=True)
    pool = _pool()

    # Stop after the first chunk of the first checkpoint: the partial rows are saved.
    done = {"n": 0}

    def note(d: int, total: int, message: str) -> None:
        done["n"] = d  # called once a chunk's rows are saved

    first = run_eval(pool, tiny_run, ckpts, evalset, SETTINGS, batch_size=2, on_progress=note,
                     should_stop=lambda: done["n"] >= 2)
    assert first.stopped and first.computed == 2
    partial = load_scores(tiny_run, "demo", "checkpoint-1")
    assert partial is not None and partial.n == 2 and not partial.complete
    assert load_saved_scores(tiny_run).empty  # partial results are not plotted

    second = run_eval(pool, tiny_run, ckpts, evalset, SETTINGS, batch_size=2)
    assert not second.stopped and second.reused == 2 and second.computed == 8 and not second.errors
    assert all(s.complete for s in second.scores.values())
    table = load_saved_scores(tiny_run)
    assert sorted(set(table.step)) == [1, 2] and len(table) == 6

    # Batched rows equal one-at-a-time generation on the same inputs (greedy).
    with pool.acquire(ckpts[1]) as loaded:
        from dashboard.images import load_image
        singles = [generate(loaded, load_image(ex.image_path), ex.prompt, SETTINGS).text for ex in evalset.examples]
    assert [r["output"] for r in second.scores["checkpoint-2"].rows] == singles

    loads = pool.load_count
    third = run_eval(pool, tiny_run, ckpts, evalset, SETTINGS)
    assert third.computed == 0 and third.reused == 10 and pool.load_count == loads

    changed = run_eval(pool, tiny_run, ckpts[:1], evalset, GenerationSettings(max_new_tokens=2))
    assert changed.computed == 5  # other settings: recomputed (and the file now holds those)


def test_batching_fallback_is_logged_not_silent(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """A model that cannot batch falls back to one example at a time — and says so in the log."""
    import dashboard.generation as generation

    batch = generation.generate_batch

    def no_batching(loaded, images, *args, **kwargs):
        if len(images) > 1:
            raise ValueError("no pad token")
        return batch(loaded, images, *args, **kwargs)

    monkeypatch.setattr(generation, "generate_batch", no_batching)
    shutil.rmtree(tiny_run / "eval_results", ignore_errors=True)
    evalset = load_eval_set(tiny_run / "eval" / "demo.jsonl")
    with caplog.at_level("WARNING", logger="dashboard"):
        report = run_eval(_pool(), tiny_run, [tiny_run / "checkpoint-1"], evalset, SETTINGS, batch_size=5,
                          data_dir=tmp_path / "data")
    assert not report.errors and report.computed == 5
    fallback = [r for r in caplog.records if "one example at a time" in r.getMessage()]
    assert fallback and fallback[0].name == "dashboard.compare.sweep" and fallback[0].exc_info


def test_compare_single_stops_mid_generation_when_cancelled(tiny_run: Path) -> None:
    from tests.cancel_kit import MidGenerationCancel

    pool, cache = _pool(), {}
    ckpts = [tiny_run / "checkpoint-1", tiny_run / "checkpoint-2"]
    with pool.acquire(ckpts[0]) as loaded:
        cancel = MidGenerationCancel(loaded, after=3)
    outs = compare_single(pool, ckpts, Image.new("RGB", (64, 64), "red"), "what colour ?",
                          GenerationSettings(max_new_tokens=40), cache, image_digest="c1",
                          should_stop=cancel.should_stop)
    assert cancel.calls <= 4, cancel.calls  # 40 forward passes if the flag only counted between checkpoints
    assert outs == [] and cache == {}  # the cut-short answer is neither shown nor cached
    assert pool.load_count == 1  # the next checkpoint is not even loaded


def test_run_eval_stops_mid_chunk_and_saves_nothing_cut_short(tiny_run: Path) -> None:
    from tests.cancel_kit import MidGenerationCancel

    evalset = load_eval_set(tiny_run / "eval" / "demo.jsonl")
    ckpts = [tiny_run / "checkpoint-1", tiny_run / "checkpoint-2"]
    shutil.rmtree(tiny_run / "eval_results", ignore_errors=True)
    pool = _pool()
    with pool.acquire(ckpts[0]) as loaded:
        cancel = MidGenerationCancel(loaded, after=3)
    report = run_eval(pool, tiny_run, ckpts, evalset, GenerationSettings(max_new_tokens=40), batch_size=2,
                      should_stop=cancel.should_stop)
    assert cancel.calls <= 4, cancel.calls
    assert report.stopped and report.computed == 0 and not report.errors  # a cancel is not a failure
    assert load_scores(tiny_run, "demo", "checkpoint-1") is None  # no cut-short row was saved as a score
    assert pool.load_count == 1
