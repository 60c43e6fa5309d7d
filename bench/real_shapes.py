"""Checkpoints with the published shapes of SmolVLM-256M-Instruct and Qwen2-VL-2B-Instruct (random weights).

No model hub is reachable, so the configs are written here from the published ``config.json`` /
``preprocessor_config.json`` values (sources: the ``config.json`` of
``HuggingFaceTB/SmolVLM-256M-Instruct`` as republished by its fine-tunes, e.g.
huggingface.co/Mattimax/DATA-AI_Smol256M-Instruct/blob/main/config.json — text 576 hidden / 1536
MLP / 30 layers / 9 heads / 3 KV heads / head_dim 64 / 8192 positions, ``scale_factor`` 4,
``image_token_id`` 49190, vision 768 hidden / 3072 MLP / 12 layers / 12 heads / 512 px / 16 px
patches; ``Qwen/Qwen2-VL-2B-Instruct``'s config as vendored by kmodels' ``QWEN2_VL_MODEL_CONFIG``
— text 1536 hidden / 8960 MLP / 28 layers / 12 heads / 2 KV heads / vocab 151936 / tied
embeddings / mrope [16, 24, 24], vision depth 32 / embed 1280 / 16 heads / 14 px patches /
merge 2, token ids 151643–151656). Image processors are the real classes with the real image
settings, in their PIL variants: the default (fast) ``Idefics3ImageProcessor`` and
``Qwen2VLImageProcessor`` need torchvision, which the pinned CPU torch wheel cannot install.
Tokenizers are synthetic word-level ones with the real vocabulary size and the real special-token
ids (what the model's embedding and image-token lookups depend on); other words are ``w<id>``.

``tiny=True`` keeps every class, processor setting and token id but shrinks widths and depths,
so tests can build the same construction path in seconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

FAMILIES = ("smolvlm_256m", "qwen2_vl_2b")

# Chat templates in the published format (tokens the synthetic vocabulary lacks become <unk>).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
QWEN2_VL_TEMPLATE = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for c in message['content'] %}{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@dataclass(frozen=True)
class Built:
    """One saved checkpoint: where, which family, and what its weights weigh on disk."""

    folder: Path
    family: str
    dtype: torch.dtype
    params: int

    @property
    def weight_files(self) -> list[Path]:
        return sorted(self.folder.glob("*.safetensors"))

    @property
    def weight_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.weight_files)


def _tokenizer(vocab_size: int, specials: dict[int, str], bos: str, eos: str, pad: str, unk: str,
               **named: str) -> Any:
    """A word-level tokenizer with ``vocab_size`` entries and each special token at its published id."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    by_id = dict(specials)
    if unk not in by_id.values():
        by_id[min(set(range(vocab_size)) - set(by_id))] = unk
    vocab = {by_id.get(i, f"w{i}"): i for i in range(vocab_size)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=unk))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces, like a real decoder
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, pad_token=pad,
                                  unk_token=unk, extra_special_tokens=named or None, padding_side="left")
    tok.add_special_tokens({"additional_special_tokens": [t for t in specials.values()
                                                          if t not in (bos, eos, pad, unk)]})
    return tok


def _idefics3(tiny: bool) -> tuple[Any, Any]:
    """SmolVLM-256M-Instruct: ``Idefics3ForConditionalGeneration`` + ``Idefics3Processor`` (model_type idefics3)."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
    )

    specials = {0: "<|endoftext|>", 1: "<|im_start|>", 2: "<|im_end|>", 49152: "<global-img>",
                49189: "<fake_token_around_image>", 49190: "<image>", 49279: "<end_of_utterance>"}
    specials.update({49153 + 6 * (r - 1) + (c - 1): f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)})
    tok = _tokenizer(49280, specials, bos="<|im_start|>", eos="<end_of_utterance>", pad="<|im_end|>",
                     unk="<unk>")
    text = dict(model_type="llama", vocab_size=49280, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                num_attention_heads=9, num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
                rms_norm_eps=1e-5, rope_theta=100000.0, pad_token_id=2, bos_token_id=1, eos_token_id=49279,
                tie_word_embeddings=False)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=512, patch_size=16, hidden_act="gelu_pytorch_tanh", layer_norm_eps=1e-6)
    if tiny:
        text.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, head_dim=8)
        vision.update(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2)
    config = Idefics3Config(text_config=text, vision_config=vision, image_token_id=49190, scale_factor=4,
                            pad_token_id=2, tie_word_embeddings=False)
    model = Idefics3ForConditionalGeneration(config)
    model.generation_config.eos_token_id = 49279
    model.generation_config.pad_token_id = 2
    image_processor = Idefics3ImageProcessorPil(
        do_convert_rgb=True, do_resize=True, size={"longest_edge": 4 * 512}, resample=1, do_image_splitting=True,
        max_image_size={"longest_edge": 512}, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], do_pad=True)
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=64,
                                  chat_template=SMOLVLM_TEMPLATE)
    return model, processor


def _qwen2_vl(tiny: bool) -> tuple[Any, Any, dict[str, Any]]:
    """Qwen2-VL-2B-Instruct: ``Qwen2VLForConditionalGeneration`` + ``Qwen2VLProcessor`` (images only)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil, Qwen2VLProcessor

    from dashboard.models.processors import without_video_processor

    specials = {151643: "<|endoftext|>", 151644: "<|im_start|>", 151645: "<|im_end|>",
                151652: "<|vision_start|>", 151653: "<|vision_end|>", 151654: "<|vision_pad|>",
                151655: "<|image_pad|>", 151656: "<|video_pad|>"}
    tok = _tokenizer(151936, specials, bos="<|im_start|>", eos="<|im_end|>", pad="<|endoftext|>", unk="<unk>")
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}
    text = dict(vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6,
                hidden_act="silu", rope_parameters=rope, use_sliding_window=False, sliding_window=32768,
                max_window_layers=28, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643,
                tie_word_embeddings=True)
    vision = dict(depth=32, embed_dim=1280, hidden_size=1536, mlp_ratio=4, num_heads=16, in_channels=3,
                  patch_size=14, spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu")
    if tiny:
        text.update(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    num_key_value_heads=2, rope_parameters={**rope, "mrope_section": [2, 1, 1]})
        vision.update(depth=1, embed_dim=32, hidden_size=32, num_heads=2)
    config = Qwen2VLConfig(text_config=text, vision_config=vision, image_token_id=151655, video_token_id=151656,
                           vision_start_token_id=151652, vision_end_token_id=151653, tie_word_embeddings=True)
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [151645, 151643]
    model.generation_config.pad_token_id = 151643
    settings: dict[str, Any] = dict(min_pixels=3136, max_pixels=12845056, patch_size=14, temporal_patch_size=2,
                                    merge_size=2)  # the published preprocessor_config.json values
    image_processor = Qwen2VLImageProcessorPil(
        do_resize=True, resample=3, do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
        do_convert_rgb=True, **settings)
    processor = without_video_processor(Qwen2VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                                          chat_template=QWEN2_VL_TEMPLATE)
    return model, processor, settings


def build(folder: Path, family: str, dtype: torch.dtype = torch.float32, *, tiny: bool = False,
          seed: int = 0) -> Built:
    """Build ``family`` with random weights and save model + processor to ``folder`` (``save_pretrained``)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in the target dtype: no fp32 copy of a 2B model on the way
    try:
        if family == "smolvlm_256m":
            model, processor = _idefics3(tiny)
            video = None
        else:
            model, processor, settings = _qwen2_vl(tiny)
            video = _qwen_video_entry(settings)
    finally:
        torch.set_default_dtype(previous)
    model = model.to(dtype).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if video is not None:  # what the real Qwen2VLProcessor writes beside its image processor
        path = folder / "processor_config.json"
        data = json.loads(path.read_text()) if path.exists() else {}
        data["video_processor"] = video
        path.write_text(json.dumps(data, indent=2))
    params = sum(p.numel() for p in model.parameters())
    del model
    return Built(folder, family, dtype, params)


def _qwen_video_entry(settings: dict[str, Any]) -> dict[str, Any]:
    """``Qwen2VLVideoProcessor.to_dict()`` (built in a child process: the module imports torchvision)."""
    from tests.attention.family_checkpoints import video_entry

    return video_entry("transformers.models.qwen2_vl.video_processing_qwen2_vl", "Qwen2VLVideoProcessor",
                       **settings)
