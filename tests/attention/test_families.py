"""Every family, from a checkpoint saved with its full processor: load → generate → capture → grid.

The checkpoints come from :mod:`tests.attention.family_checkpoints` (``save_pretrained`` of the
real model and processor classes) and load through the app's loader, which goes through
``AutoProcessor`` / ``AutoModelForImageTextToText``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dashboard.attention.adapters import REGISTRY, UnsupportedFamily, adapter_for, layout_for, unavailable_reason
from dashboard.attention.analysis import analyse
from dashboard.attention.capture import capture_generate, reference_from_output_attentions
from dashboard.attention.hooks import ModelParts
from dashboard.generation import GenerationSettings, build_inputs, generate
from dashboard.models.loading import LoadedModel, load_checkpoint
from tests.attention import family_checkpoints as fc

FAMILIES = sorted(fc.BUILDERS)
WITH_ATTENTION = [f for f in FAMILIES if f in REGISTRY]
STEPS = 3
SIZE = (80, 56)
RESAMPLING_MARGIN = 3  # px: resize kernels (Lanczos in Idefics3's two resizes) bleed a painted edge this far


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: build(root / name) for name, build in fc.BUILDERS.items()}


@pytest.fixture(scope="module")
def loaded(checkpoints: dict[str, Path]) -> dict[str, LoadedModel]:
    return {name: load_checkpoint(path, torch.device("cpu")) for name, path in checkpoints.items()}


def _painted(box: tuple[int, int, int, int] | None) -> Image.Image:
    arr = np.full((SIZE[1], SIZE[0], 3), 128, dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        arr[y0:y1, x0:x1] = (250, 20, 20)
    return Image.fromarray(arr)


def test_every_family_has_a_builder_and_an_attention_verdict() -> None:
    assert set(FAMILIES) == {"llava", "llava_next", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl",
                             "internvl", "aya_vision", "idefics3", "smolvlm", "paligemma", "gemma3", "gemma4"}
    without = [f for f in FAMILIES if f not in REGISTRY]
    assert without == ["aya_vision"]  # at least one family exercises the "no map" path
    for name in without:
        with pytest.raises(UnsupportedFamily, match=unavailable_reason(name)[1]):
            adapter_for(name)


@pytest.mark.parametrize("name", FAMILIES)
def test_loads_and_generates(name: str, loaded: dict[str, LoadedModel]) -> None:
    result = generate(loaded[name], _painted(None), "what is it ?", GenerationSettings(max_new_tokens=STEPS))
    assert result.output_tokens >= 1 and result.prompt_tokens > 0


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_capture_equals_output_attentions(name: str, loaded: dict[str, LoadedModel]) -> None:
    model = loaded[name].model
    inputs = dict(build_inputs(loaded[name], _painted((8, 8, 30, 30)), "what is it ?"))
    result = capture_generate(model, inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
                              lens_top_k=2)
    before = model.config._attn_implementation
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
                                 output_attentions=True, return_dict_in_generate=True)
    finally:
        model.set_attn_implementation(before)
    prompt_len = inputs["input_ids"].shape[1]
    assert out.sequences[0, prompt_len:].tolist() == result.generated_ids
    image, text = reference_from_output_attentions(out.attentions, result.image_positions, prompt_len)
    np.testing.assert_allclose(result.image_attention, image, atol=1e-5)
    np.testing.assert_allclose(result.text_attention, text, atol=1e-5)
    assert result.lens is not None and result.lens.generated_ids.shape[:2] == (result.n_layers, STEPS)


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_logit_lens_equals_hidden_states_decoded_by_hand(name: str, loaded: dict[str, LoadedModel]) -> None:
    """The lens through the capture mechanism = ``output_hidden_states=True`` → final norm → LM head, by hand.

    The reference takes the head and norm from transformers' own accessors (not the adapter's
    declared paths), and the hidden states from transformers' own recording (not our hooks).
    """
    model, k = loaded[name].model, 3
    inputs = dict(build_inputs(loaded[name], _painted((8, 8, 30, 30)), "what is it ?"))
    result = capture_generate(model, inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
                              lens_top_k=k, lens_image_tokens=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=STEPS, min_new_tokens=STEPS, do_sample=False,
                             output_hidden_states=True, return_dict_in_generate=True)
        head, norm = model.get_output_embeddings(), model.get_decoder().norm
        n_layers = len(out.hidden_states[0]) - 1  # per step: (embeddings, layer 0, ..., last layer)

        def top_k(layer: int, hidden: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
            # transformers hands back the last layer's output already through the final norm
            normed = hidden if layer == n_layers - 1 else norm(hidden)
            probs, ids = head(normed).float().softmax(-1).topk(k, dim=-1)
            return ids.numpy(), probs.numpy()

        generated = [[top_k(layer, out.hidden_states[step][layer + 1][0, -1]) for step in range(STEPS)]
                     for layer in range(n_layers)]
        positions = torch.as_tensor(result.image_positions)
        image = [top_k(layer, out.hidden_states[0][layer + 1][0, positions]) for layer in range(n_layers)]
    lens = result.lens
    assert lens is not None and lens.image_ids is not None and lens.image_probs is not None
    assert lens.generated_ids.shape == (n_layers, STEPS, k) == (result.n_layers, STEPS, k)
    np.testing.assert_array_equal(lens.generated_ids, np.array([[ids for ids, _ in row] for row in generated]))
    np.testing.assert_allclose(lens.generated_probs, np.array([[p for _, p in row] for row in generated]), atol=1e-5)
    np.testing.assert_array_equal(lens.image_ids, np.stack([ids for ids, _ in image]))
    np.testing.assert_allclose(lens.image_probs, np.stack([p for _, p in image]), atol=1e-5)
    # the last layer is the model's choice; min_new_tokens masks EOS, so the choice is the best non-EOS id
    eos = model.generation_config.eos_token_id
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    chosen = [next(int(i) for i in row if int(i) not in eos_ids) for row in lens.generated_ids[-1]]
    assert chosen == result.generated_ids


def _embeds(item: LoadedModel, image: Image.Image) -> tuple[np.ndarray, dict]:
    inputs = dict(build_inputs(item, image, "what is it ?"))
    seen: dict[str, torch.Tensor] = {}

    def hook(_module: object, args: tuple, kwargs: dict) -> None:
        seen["embeds"] = kwargs.get("inputs_embeds", args[0] if args else None)

    handle = ModelParts.of(item.model).text_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            item.model(**inputs)
    finally:
        handle.remove()
    return seen["embeds"][0].float().numpy(), inputs


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_painted_square_lands_in_the_mapped_cells(name: str, loaded: dict[str, LoadedModel]) -> None:
    """Paint a square; the image tokens whose embedding changes are exactly those whose box overlaps it."""
    item = loaded[name]
    box = (44, 8, 62, 26)
    base, inputs = _embeds(item, _painted(None))
    painted, _ = _embeds(item, _painted(box))
    layout = layout_for(item.model.config, item.processor, inputs["input_ids"], _painted(None), inputs)
    changed = set(np.flatnonzero(np.abs(painted - base).max(-1) > 1e-6).tolist())
    assert changed and changed <= set(layout.image_positions.tolist())
    view = layout.primary
    boxes = view.boxes.reshape(-1, 4)
    m = RESAMPLING_MARGIN
    overlaps = ((boxes[:, 0] < box[2] + m) & (boxes[:, 2] > box[0] - m) & (boxes[:, 1] < box[3] + m)
                & (boxes[:, 3] > box[1] - m))
    inside = ((boxes[:, 0] >= box[0] - 2) & (boxes[:, 2] <= box[2] + 2) & (boxes[:, 1] >= box[1] - 2)
              & (boxes[:, 3] <= box[3] + 2))
    positions = view.positions.reshape(-1)
    changed_here = {int(p) for p in positions if int(p) in changed}
    assert {int(p) for p in positions[inside]} <= changed_here  # cells well inside the square changed
    assert changed_here <= {int(p) for p in positions[overlaps]}  # nothing changed outside it (resampling margin)


@pytest.mark.parametrize("name", sorted(set(FAMILIES) - set(REGISTRY)))
def test_unsupported_family_says_why_and_still_generates(name: str, loaded: dict[str, LoadedModel]) -> None:
    family, why = unavailable_reason(name)
    with pytest.raises(UnsupportedFamily, match=f"attention view not available for {family} .*{why}"):
        analyse(loaded[name], _painted(None), "what is it ?", max_new_tokens=1)


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_declared_token_order_matches_the_grid_views(name: str, loaded: dict[str, LoadedModel]) -> None:
    """Each declared segment is a row-major block of a view: what the lens columns and captions rely on."""
    item = loaded[name]
    inputs = dict(build_inputs(item, _painted(None), "what is it ?"))
    layout = layout_for(item.model.config, item.processor, inputs["input_ids"], _painted(None), inputs)
    cells = layout.cells()
    labels = layout.token_labels()
    assert len(cells) == len(labels) == len(set(labels)) == len(layout.image_positions)
    index = {int(p): i for i, p in enumerate(layout.image_positions)}
    placed: set[int] = set()
    for view in layout.views:
        offsets: dict[int, set[tuple[int, int]]] = {}
        for (vr, vc), pos in np.ndenumerate(view.positions):
            segment, r, c = cells[index[int(pos)]]
            offsets.setdefault(id(segment), set()).add((vr - r, vc - c))
            placed.add(index[int(pos)])
        assert all(len(o) == 1 for o in offsets.values()), offsets  # one block, same row-major order
    # every token the views draw is accounted for; the rest is a declared extra without pixels (LLaVA's CLS
    # token, LLaVA-NeXT's newline token ending each row)
    for i in set(range(len(cells))) - placed:
        segment, _, c = cells[i]
        assert segment.group == "CLS token" or (segment.row_end and c == segment.cols - 1), (segment, c)
    assert all(i in placed for i, (seg, _, c) in enumerate(cells) if seg.row_end and c < seg.cols - 1)


def test_idefics3_caption_names_tiles_shown_and_the_global_view_left_out(loaded: dict[str, LoadedModel]) -> None:
    item = loaded["idefics3"]
    inputs = dict(build_inputs(item, _painted(None), "what is it ?"))
    layout = layout_for(item.model.config, item.processor, inputs["input_ids"], _painted(None), inputs)
    tiles = [s for s in layout.segments if s.group == "tile"]
    n, per = len(tiles), tiles[0].count
    assert n >= 3 and layout.segments[-1].group == "global view"
    assert layout.token_labels()[0] == "t1·r1c1" and layout.token_labels()[-1] == f"g·r{tiles[0].rows}c{tiles[0].cols}"
    caption = layout.order_caption(n * per)
    assert caption.startswith(f"First {n * per} of {(n + 1) * per} image tokens, in prompt order: tile by tile")
    assert caption.endswith(f"Shown: tiles 1–{n} of {n}; not shown: the global view.")
    partial = layout.order_caption(per + 4)
    assert partial.endswith(f"Shown: tile 1 of {n}, and the first 4 of {per} tokens of tile 2 of {n} "
                            f"(1 of {tiles[0].rows} rows); not shown: tiles 3–{n} of {n} and the global view.")
    assert "row-major over the primary grid" not in caption


@pytest.mark.parametrize("name", ["qwen2_vl", "paligemma"])
def test_single_grid_caption_states_row_major_order(name: str, loaded: dict[str, LoadedModel]) -> None:
    item = loaded[name]
    inputs = dict(build_inputs(item, _painted(None), "what is it ?"))
    layout = layout_for(item.model.config, item.processor, inputs["input_ids"], _painted(None), inputs)
    rows, cols = layout.primary.shape
    total = rows * cols
    assert layout.order_caption(total).startswith(f"All {total} image tokens, in prompt order: row-major over "
                                                  f"the {rows}×{cols} grid")
    assert layout.token_labels()[cols] == "r2c1"  # row-major: the token after the first row starts row 2


@pytest.mark.parametrize("name", WITH_ATTENTION)
def test_rollout_draws_every_view(name: str, loaded: dict[str, LoadedModel]) -> None:
    """Rollout (the page's third map) runs through the family's capture and fills each view's grid."""
    item = loaded[name]
    result = analyse(item, _painted((8, 8, 30, 30)), "what is it ?", max_new_tokens=2)
    for view in result.layout.views:
        grid = result.rollout_grid(item, 0, view=view.name)
        assert grid.shape == view.shape
        assert np.isfinite(grid).all() and (grid >= 0).all() and grid.sum() > 0


@pytest.mark.parametrize("name", FAMILIES)
def test_a_batch_of_prompts_scores_as_each_prompt_alone(name: str, loaded: dict[str, LoadedModel]) -> None:
    """The batched forward the eval set, the faithfulness curves and the comparison use: each row's next-token
    probabilities equal that prompt run alone. Failed for SmolVLM and Gemma 3/4 (their processors count images
    per prompt and refused a flat list) and PaliGemma (its processor adds ``labels``; with only the last position's
    logits kept the forward's loss failed)."""
    item = loaded[name]
    images = [_painted(None), _painted((8, 8, 30, 30)), _painted((40, 20, 76, 52))]
    with torch.inference_mode():
        batch = build_inputs(item, images, "what is here ?")
        assert "labels" not in batch
        together = item.model(**batch, logits_to_keep=1).logits[:, -1].float().softmax(-1)
        for row, image in enumerate(images):
            alone = item.model(**build_inputs(item, image, "what is here ?"), logits_to_keep=1).logits[:, -1]
            np.testing.assert_allclose(together[row].numpy(), alone.float().softmax(-1)[0].numpy(), atol=1e-4)
