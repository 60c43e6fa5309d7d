"""Tiny random models of each supported family, built from configs (no downloads).

Vision towers have zero transformer layers (LLaVA: one layer whose attention output is zeroed),
so each image token depends only on its own patch(es): that makes "which image tokens changed
when one patch changed" an exact oracle for the layout.
Prompts are built directly as ``input_ids`` in the layout each family's processor produces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

VOCAB = 64
IMAGE_ID = 60


@dataclass
class Family:
    name: str
    model: Any
    processor: Any  # object with .image_processor
    inputs: dict[str, Any]  # model inputs for the test image


class _Proc:
    def __init__(self, image_processor: Any):
        self.image_processor = image_processor


def text_cfg(**extra: Any) -> dict[str, Any]:
    return dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                tie_word_embeddings=False, **extra)


def qwen(image: Image.Image, v25: bool = False) -> Family:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    torch.manual_seed(0)
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
    common = dict(image_token_id=IMAGE_ID, video_token_id=61, vision_start_token_id=62, vision_end_token_id=63)
    if v25:
        vision = dict(depth=0, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[])
        config = Qwen2_5_VLConfig(text_config=text_cfg(rope_parameters=rope), vision_config=vision, **common)
        model = Qwen2_5_VLForConditionalGeneration(config).eval()
    else:
        vision = dict(depth=0, embed_dim=32, hidden_size=32, num_heads=4, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2)
        config = Qwen2VLConfig(text_config=text_cfg(rope_parameters=rope), vision_config=vision, **common)
        model = Qwen2VLForConditionalGeneration(config).eval()
    ip = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 64)
    feats = ip(images=[image], return_tensors="pt")
    n = int(feats["image_grid_thw"][0].prod()) // 4
    ids = [1, 5, 6, 62, *([IMAGE_ID] * n), 63, 7, 8, 9]
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
              "pixel_values": feats["pixel_values"], "image_grid_thw": feats["image_grid_thw"],
              "mm_token_type_ids": torch.tensor([[int(t == IMAGE_ID) for t in ids]])}
    return Family("qwen2_5_vl" if v25 else "qwen2_vl", model, _Proc(ip), inputs)


def idefics3(image: Image.Image, split: bool = True) -> Family:
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil

    torch.manual_seed(0)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=0, num_attention_heads=4, image_size=32,
                  patch_size=4)
    config = Idefics3Config(text_config=text_cfg(), vision_config=vision, image_token_id=IMAGE_ID, scale_factor=2)
    model = Idefics3ForConditionalGeneration(config).eval()
    ip = Idefics3ImageProcessorPil(size={"longest_edge": 96}, max_image_size={"longest_edge": 32},
                                   do_image_splitting=split)
    feats = ip(images=[[image]], return_row_col_info=True, return_tensors="pt")
    rows, cols = int(feats["rows"][0][0]), int(feats["cols"][0][0])
    seq = (32 // 4 // 2) ** 2
    fake, glob, newline = 50, 51, 52
    ids = [1, 5]
    for r in range(rows):
        for c in range(cols):
            ids += [fake, 10 + r * 6 + c, *([IMAGE_ID] * seq)]
        ids += [newline]
    ids += ([newline] if rows else []) + [fake, glob, *([IMAGE_ID] * seq), fake, 7, 8]
    inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
              "pixel_values": feats["pixel_values"], "pixel_attention_mask": feats["pixel_attention_mask"]}
    return Family("idefics3", model, _Proc(ip), inputs)


def image_embeddings(model: Any, inputs: dict[str, Any]) -> np.ndarray:
    """The ``inputs_embeds`` the language model receives (image features already scattered in)."""
    from dashboard.attention.hooks import ModelParts

    seen: dict[str, torch.Tensor] = {}

    def hook(_module: Any, args: tuple, kwargs: dict) -> None:
        seen["embeds"] = kwargs.get("inputs_embeds", args[0] if args else None)

    handle = ModelParts.of(model).text_model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return seen["embeds"][0].float().numpy()


def blank(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), (128, 128, 128))


def with_square(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    arr = np.full((height, width, 3), 128, dtype=np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = (255, 0, 0)
    return Image.fromarray(arr)


def llava(image: Image.Image) -> Family:
    """Tiny LLaVA with a zero-layer CLIP tower and the demo's processor (resize shortest edge + centre crop)."""
    from transformers import LlavaForConditionalGeneration

    from dashboard.demo.modeling import TinyLlavaSpec, build_config, build_processor

    spec = TinyLlavaSpec(vision_layers=1)
    processor = build_processor(["what", "is", "it", "?"], spec)
    config = build_config(processor.tokenizer, spec)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # CLIP keeps one layer (its hidden states are read from layers) but mixes nothing
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    text = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"},
                                                                       {"type": "text", "text": "what is it ?"}]}],
                                         add_generation_prompt=True)
    inputs = dict(processor(images=image, text=text, return_tensors="pt"))
    return Family("llava", model, processor, inputs)
