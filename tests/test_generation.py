"""Generation on a pooled tiny LLaVA: single, streamed, batched, timings, errors, locking."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from PIL import Image

from dashboard.generation import (
    GenerationInputError,
    GenerationOOMError,
    GenerationSettings,
    build_inputs,
    format_prompt,
    generate,
    generate_batch,
    result_stats,
    stream,
)
from dashboard.models.pool import ModelPool

PROMPT = "what colour is the circle ?"


@pytest.fixture(scope="module")
def pool() -> ModelPool:
    return ModelPool(10**9, device="cpu")


@pytest.fixture()
def loaded(pool, tiny_llava_dir):
    with pool.acquire(tiny_llava_dir) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def red() -> Image.Image:
    return Image.new("RGB", (64, 64), (220, 20, 20))


def test_chat_template_and_prefill(loaded):
    assert format_prompt(loaded, PROMPT) == f"USER: <image>\n{PROMPT} ASSISTANT:"
    assert format_prompt(loaded, PROMPT, "red").endswith("ASSISTANT: red")


def test_build_inputs_expands_image_tokens(loaded, red):
    inputs = build_inputs(loaded, red, PROMPT)
    image_id = loaded.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == 64  # 8×8 patches
    assert inputs["pixel_values"].dtype == loaded.dtype
    longer = build_inputs(loaded, red, PROMPT, prefill="red circle")
    assert longer["input_ids"].shape[1] == inputs["input_ids"].shape[1] + 2


def test_generate_matches_plain_model_generate(loaded, red):
    settings = GenerationSettings(max_new_tokens=6)
    result = generate(loaded, red, PROMPT, settings)
    inputs = build_inputs(loaded, red, PROMPT)
    with torch.inference_mode():
        ids = loaded.model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = ids[0, inputs["input_ids"].shape[1]:]
    assert result.text == loaded.processor.decode(new, skip_special_tokens=True).strip()
    assert result.output_tokens == len(new) == 6
    assert result.prompt_tokens == inputs["input_ids"].shape[1]
    assert 0 < result.ttft_s <= result.latency_s
    assert result.preprocess_s > 0
    assert result.latency_s == pytest.approx(result.preprocess_s + result.ttft_s + result.decode_s)
    # the decode rate: the 5 tokens after the first, over the time after the first token
    assert result.tokens_per_s == pytest.approx(5 / result.decode_s)
    assert result.batch_size == 1 and result.per_example_s == result.latency_s


def test_phase_timings_exclude_prefill_from_the_rate():
    from dashboard.generation import _phase_timings

    # 0.5 s preprocessing, generate starts at t=10, first token at t=13 (3 s prefill), ends at t=14
    t = _phase_timings(0.5, 10.0, 13.0, 14.0, output_tokens=3)
    assert t == {"latency_s": 4.5, "ttft_s": 3.0, "decode_s": 1.0, "tokens_per_s": 2.0, "preprocess_s": 0.5}
    # a one-token answer has no decode phase to measure a rate over
    assert _phase_timings(0.0, 0.0, 1.0, 1.0, output_tokens=1)["tokens_per_s"] is None
    # no first-token time (beam search): no rate, latency still end to end
    no_clock = _phase_timings(0.2, 0.0, None, 2.0, output_tokens=4)
    assert no_clock["tokens_per_s"] is None and no_clock["latency_s"] == pytest.approx(2.2)


def test_batch_rows_say_how_many_shared_the_time(loaded, red):
    results = generate_batch(loaded, [red, red, red], PROMPT, GenerationSettings(max_new_tokens=3), batch_size=2)
    assert [r.batch_size for r in results] == [2, 2, 1]
    assert results[0].per_example_s == pytest.approx(results[0].latency_s / 2)
    stats = result_stats(results[0])
    assert stats["batch_size"] == 2 and stats["per_example_s"] == pytest.approx(stats["latency_s"] / 2, abs=1e-4)


def test_stream_yields_the_same_text(loaded, red):
    settings = GenerationSettings(max_new_tokens=8)
    expected = generate(loaded, red, PROMPT, settings)
    generation = stream(loaded, red, PROMPT, settings)
    chunks = list(generation)
    assert len([c for c in chunks if c]) > 1  # really streamed, not one blob
    assert "".join(chunks).strip() == expected.text
    assert generation.result.text == expected.text
    assert generation.result.output_tokens == expected.output_tokens
    assert generation.result.ttft_s is not None and generation.result.ttft_s <= generation.result.latency_s


def test_beam_search_returns_one_chunk(loaded, red):
    generation = stream(loaded, red, PROMPT, GenerationSettings(max_new_tokens=4, num_beams=2))
    chunks = list(generation)
    assert len(chunks) == 1 and chunks[0] == generation.result.text
    assert generation.result.ttft_s is None


def test_sampling_is_reproducible_with_seed(loaded, red):
    settings = GenerationSettings(max_new_tokens=8, do_sample=True, temperature=1.5, top_p=0.95, seed=7)
    first = generate(loaded, red, PROMPT, settings).text
    assert generate(loaded, red, PROMPT, settings).text == first
    others = {generate(loaded, red, PROMPT, GenerationSettings(**{**settings.__dict__, "seed": s})).text
              for s in range(1, 6)}
    assert others != {first}  # the seed actually matters


def test_batch_matches_single_runs(loaded, red):
    blue = Image.new("RGB", (64, 64), (20, 20, 220))
    prompts = [PROMPT, "where is the blue square in the image ?"]
    settings = GenerationSettings(max_new_tokens=5)
    progress = []
    batch = generate_batch(loaded, [red, blue], prompts, settings, batch_size=2,
                           on_progress=lambda done, total: progress.append((done, total)))
    singles = [generate(loaded, im, p, settings) for im, p in zip([red, blue], prompts, strict=True)]
    assert [b.text for b in batch] == [s.text for s in singles]
    assert [b.prompt_tokens for b in batch] == [s.prompt_tokens for s in singles]
    assert progress == [(2, 2)]


def test_bad_inputs_raise_clear_errors(loaded, red):
    with pytest.raises(GenerationInputError, match="prompt is empty"):
        generate(loaded, red, "   ")
    with pytest.raises(GenerationInputError, match="no image"):
        build_inputs(loaded, [], PROMPT)
    with pytest.raises(GenerationInputError, match="temperature"):
        generate(loaded, red, PROMPT, GenerationSettings(do_sample=True, temperature=0))
    with pytest.raises(GenerationInputError, match="max new tokens"):
        stream(loaded, red, PROMPT, GenerationSettings(max_new_tokens=0))


def test_out_of_memory_is_reported_and_pool_recovers(pool, tiny_llava_dir, red, monkeypatch):
    with pool.acquire(tiny_llava_dir) as loaded:
        def oom(*args, **kwargs):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

        monkeypatch.setattr(loaded.model, "generate", oom)
        with pytest.raises(GenerationOOMError, match="out of memory while generating"):
            generate(loaded, red, PROMPT)
        with pytest.raises(GenerationOOMError):
            list(stream(loaded, red, PROMPT))
        monkeypatch.undo()
    pool.recover_after_oom()
    assert pool.entries() == []
    with pool.acquire(tiny_llava_dir) as loaded:
        assert generate(loaded, red, PROMPT, GenerationSettings(max_new_tokens=2)).output_tokens == 2


def test_generations_on_one_model_are_serialised(loaded, red, monkeypatch):
    active = 0
    peak = 0
    guard = threading.Lock()
    real = loaded.model.generate

    def tracked(*args, **kwargs):
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                active -= 1

    monkeypatch.setattr(loaded.model, "generate", tracked)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        generate(loaded, red, PROMPT, GenerationSettings(max_new_tokens=3)).text)) for _ in range(4)]
    threads.append(threading.Thread(target=lambda: results.append(
        "".join(stream(loaded, red, PROMPT, GenerationSettings(max_new_tokens=3))).strip())))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert peak == 1
    assert len(results) == 5 and len(set(results)) == 1


def test_abandoned_stream_stops_and_releases_the_model(loaded, red):
    generation = stream(loaded, red, PROMPT, GenerationSettings(max_new_tokens=150))
    iterator = iter(generation)
    next(iterator)
    iterator.close()  # what happens when Streamlit stops a script mid-stream
    assert loaded.lock.acquire(timeout=10)
    loaded.lock.release()
    generation._thread.join(10)
    produced = generation._sequences.shape[1] - generation.inputs["input_ids"].shape[1]
    assert produced < 150  # stopped early by the stop flag, not run to max_new_tokens
    assert generation.result is None
