"""The vision encoder in chunks: equal outputs, identical tokens, on every family it covers (real classes, tiny sizes).

The checkpoints are :mod:`tests.attention.family_checkpoints`' (``save_pretrained`` of the real model and
processor classes), loaded through the app's loader. ``TOKEN_BUDGET = 1`` forces one image (tile) per
chunk, so every multi-row batch really is split; a spy on the join says how many pieces there were.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from transformers.utils import ModelOutput

from dashboard import generation
from dashboard.attention.capture import capture_generate
from dashboard.attention.faithfulness import token_probabilities
from dashboard.attention.rollout import full_attentions
from dashboard.generation import GenerationSettings, build_inputs, generate, stream
from dashboard.models import vision_chunks
from dashboard.models.loading import LoadedModel, load_checkpoint
from dashboard.models.vision_chunks import ENCODERS, vision_encoder, vision_in_chunks
from tests.attention import family_checkpoints as fc

CHUNKED = sorted(ENCODERS)
STEPS = 3
PROMPT = "what is it ?"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LoadedModel]:
    root = tmp_path_factory.mktemp("vision_chunks")
    names = [*CHUNKED, "qwen2_vl"]
    return {name: load_checkpoint(fc.BUILDERS[name](root / name), torch.device("cpu")) for name in names}


@pytest.fixture
def joins(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One chunk per image (tile), and the number of pieces of every top-level join."""
    monkeypatch.setattr(vision_chunks, "TOKEN_BUDGET", 1)
    seen: list[int] = []
    real = vision_chunks._Chunked.__call__

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        pixel_values = kwargs.get("pixel_values", args[0] if args else None)
        seen.append(int(pixel_values.shape[0]) if isinstance(pixel_values, torch.Tensor) else 0)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(vision_chunks._Chunked, "__call__", spy)
    return seen


def _image(seed: int = 0) -> Image.Image:
    return Image.fromarray((np.random.default_rng(seed).random((56, 80, 3)) * 255).astype("uint8"))


def _encoder_call(model: Any, inputs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The arguments the family itself passes to its vision encoder, recorded during one generate."""
    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    encoder = vision_encoder(model)
    assert encoder is not None
    handle = encoder.register_forward_pre_hook(lambda _m, a, k: calls.append((a, k)), with_kwargs=True)
    try:
        with torch.no_grad():
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
    finally:
        handle.remove()
    assert calls, "the family never called the module vision_chunks wraps"
    return calls[0]


def _doubled(value: Any, rows: int, pixel: bool) -> Any:
    """Twice the batch: the real rows, then mirrored pixels (the same per-row masks), so rows differ."""
    if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == rows:
        return torch.cat([value, value.flip(-1) if pixel else value])
    return value


def _assert_same(a: Any, b: Any) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    elif isinstance(a, ModelOutput):
        assert type(a) is type(b) and list(a.keys()) == list(b.keys())
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", CHUNKED)
def test_encoder_outputs_equal_whole_batch(name: str, loaded: dict[str, LoadedModel], joins: list[int]) -> None:
    model = loaded[name].model
    args, kwargs = _encoder_call(model, dict(build_inputs(loaded[name], _image(), PROMPT)))
    pixel_values = kwargs.get("pixel_values", args[0] if args else None)
    assert isinstance(pixel_values, torch.Tensor)
    rows = int(pixel_values.shape[0])
    args = tuple(_doubled(a, rows, a is pixel_values) for a in args)
    kwargs = {k: _doubled(v, rows, v is pixel_values) for k, v in kwargs.items()}
    encoder = vision_encoder(model)
    assert encoder is not None
    with torch.no_grad():
        whole = encoder(*args, **kwargs)
        with vision_in_chunks(model):
            chunked = encoder(*args, **kwargs)
    assert joins == [2 * rows]  # the wrapper saw the doubled batch once and split it …
    _assert_same(chunked, whole)  # … into pieces whose join equals the whole batch's output, every field
    assert "forward" not in encoder.__dict__  # the class's own forward again


def _plain_answer(loaded: LoadedModel, image: Image.Image) -> tuple[list[int], str]:
    """Transformers' own ``generate`` (whole batch through the encoder): the new ids and the app's decoding of them."""
    inputs = build_inputs(loaded, image, PROMPT)
    with torch.no_grad():
        sequences = loaded.model.generate(**inputs, max_new_tokens=STEPS, do_sample=False)
    new_ids = sequences[0, inputs["input_ids"].shape[1]:]
    return new_ids.tolist(), generation._decode(loaded, new_ids[:generation._count_new_tokens(new_ids, loaded)])


@pytest.mark.parametrize("name", CHUNKED)
def test_generation_tokens_identical(name: str, loaded: dict[str, LoadedModel], joins: list[int],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    ids, text = _plain_answer(loaded[name], _image(1))
    assert not joins  # transformers alone: nothing wrapped
    produced: list[list[int]] = []
    real = generation._run_generate

    def keep(*args: Any, **kwargs: Any) -> torch.Tensor:
        sequences = real(*args, **kwargs)
        produced.append(sequences[0, -len(ids):].tolist())
        return sequences

    monkeypatch.setattr(generation, "_run_generate", keep)
    result = generate(loaded[name], _image(1), PROMPT, GenerationSettings(max_new_tokens=STEPS))
    assert joins, "the app's generate did not run the encoder through the chunking"
    assert produced == [ids] and result.text == text


@pytest.mark.parametrize("name", ["idefics3", "smolvlm", "llava_next", "internvl"])
def test_capture_identical_with_tiles_in_chunks(name: str, loaded: dict[str, LoadedModel],
                                                monkeypatch: pytest.MonkeyPatch, joins: list[int]) -> None:
    model = loaded[name].model
    inputs = dict(build_inputs(loaded[name], _image(2), PROMPT))
    kwargs: dict[str, Any] = {"max_new_tokens": STEPS, "min_new_tokens": STEPS, "do_sample": False}
    chunked = capture_generate(model, dict(inputs), **kwargs)
    assert joins and joins[0] > 1  # these families' prompts carry several tiles: really split
    monkeypatch.setattr(vision_chunks, "TOKEN_BUDGET", 10**9)  # the whole batch at once, as transformers runs it
    whole = capture_generate(model, dict(inputs), **kwargs)
    assert chunked.generated_ids == whole.generated_ids
    np.testing.assert_allclose(chunked.image_attention, whole.image_attention, atol=1e-6)
    np.testing.assert_allclose(chunked.text_attention, whole.text_attention, atol=1e-6)


def test_stream_identical_in_chunks(loaded: dict[str, LoadedModel], joins: list[int]) -> None:
    ids, text = _plain_answer(loaded["smolvlm"], _image(3))
    streamed = stream(loaded["smolvlm"], _image(3), PROMPT, GenerationSettings(max_new_tokens=STEPS))
    chunks = list(streamed)
    assert joins and joins[0] > 1  # SmolVLM's tiles went through the encoder in pieces
    assert streamed.result is not None and streamed.result.text == text
    assert "".join(chunks).strip() == text
    assert streamed._sequences is not None and streamed._sequences[0, -len(ids):].tolist() == ids


def test_packed_encoders_are_left_alone(loaded: dict[str, LoadedModel], joins: list[int]) -> None:
    """Qwen2-VL packs every image into one sequence: no rows to split, so nothing is wrapped."""
    model = loaded["qwen2_vl"].model
    assert vision_encoder(model) is None
    with vision_in_chunks(model):
        assert all("forward" not in m.__dict__ for m in model.modules())


def test_restored_after_an_error_and_nested_entries_share_one_wrapper(loaded: dict[str, LoadedModel]) -> None:
    model = loaded["smolvlm"].model
    encoder = vision_encoder(model)
    assert encoder is not None
    with pytest.raises(RuntimeError, match="boom"), vision_in_chunks(model):
        wrapper = encoder.__dict__["forward"]
        with vision_in_chunks(model):
            assert encoder.__dict__["forward"] is wrapper
        assert encoder.__dict__["forward"] is wrapper  # the inner exit leaves the outer's wrapper
        raise RuntimeError("boom")
    assert "forward" not in encoder.__dict__


def test_hidden_states_join_layer_by_layer() -> None:
    """A tuple field (every layer's hidden states, as LLaVA asks CLIP for) joins element-wise, in order."""
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    def piece(v: float, rows: int) -> BaseModelOutputWithPooling:
        return BaseModelOutputWithPooling(last_hidden_state=torch.full((rows, 2, 3), v),
                                          hidden_states=(torch.full((rows, 2, 3), v), torch.full((rows, 2, 3), -v)))

    joined = vision_chunks._concat([piece(1.0, 2), piece(2.0, 1)])
    assert joined.pooler_output is None and joined.last_hidden_state.shape == (3, 2, 3)
    assert [h[:, 0, 0].tolist() for h in joined.hidden_states] == [[1.0, 1.0, 2.0], [-1.0, -1.0, -2.0]]


def test_rows_per_chunk_follow_the_patch_budget(loaded: dict[str, LoadedModel], joins: list[int],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = vision_encoder(loaded["smolvlm"].model)
    assert encoder is not None
    patches = vision_chunks._patches_per_image(encoder, torch.zeros(1, 3, 32, 32))
    assert patches == (32 // encoder.config.patch_size) ** 2
    sizes: list[int] = []
    real_forward = type(encoder).forward

    def counting(self: Any, pixel_values: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        sizes.append(int(pixel_values.shape[0]))
        return real_forward(self, pixel_values, *args, **kwargs)

    monkeypatch.setattr(type(encoder), "forward", counting)
    monkeypatch.setattr(vision_chunks, "TOKEN_BUDGET", 3 * patches)
    pixel_values = torch.rand(7, 3, 32, 32)
    mask = torch.ones(7, 32 // encoder.config.patch_size, 32 // encoder.config.patch_size, dtype=torch.bool)
    with torch.no_grad(), vision_in_chunks(loaded["smolvlm"].model):
        encoder(pixel_values=pixel_values, patch_attention_mask=mask)
    assert sizes == [3, 3, 1]


def test_faithfulness_batch_and_rollout_identical_in_chunks(loaded: dict[str, LoadedModel], joins: list[int],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The batched teacher-forced forward (images × tiles rows) and rollout's one forward: same values in chunks."""
    tiled, smol = loaded["llava_next"], loaded["smolvlm"]
    images = [_image(4), _image(5)]
    chunked_p = token_probabilities(tiled, images, PROMPT, [], target_id=7, batch_size=2)
    inputs = dict(build_inputs(smol, _image(6), PROMPT))
    chunked_r = full_attentions(smol.model, inputs)
    assert len(joins) == 2 and joins[0] > len(images)  # every tile of both images went through the wrapper
    monkeypatch.setattr(vision_chunks, "TOKEN_BUDGET", 10**9)
    np.testing.assert_allclose(chunked_p, token_probabilities(tiled, images, PROMPT, [], target_id=7, batch_size=2),
                               rtol=1e-5, atol=1e-9)
    for a, b in zip(chunked_r, full_attentions(smol.model, inputs), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_an_instance_forward_already_there_is_kept(loaded: dict[str, LoadedModel], joins: list[int]) -> None:
    """Wrappers that hook ``forward`` on the instance (accelerate's offloading does) are chunked through, then back."""
    model = loaded["smolvlm"].model
    encoder = vision_encoder(model)
    assert encoder is not None
    calls: list[int] = []
    own = encoder.forward

    def hooked(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return own(*args, **kwargs)

    encoder.forward = hooked  # type: ignore[method-assign]
    try:
        inputs = build_inputs(loaded["smolvlm"], _image(7), PROMPT)
        with torch.no_grad(), vision_in_chunks(model):
            model.generate(**inputs, max_new_tokens=1, do_sample=False)
        assert joins and len(calls) == joins[0]  # every chunk went through the instance's own wrapper
        assert encoder.__dict__["forward"] is hooked
    finally:
        del encoder.__dict__["forward"]
