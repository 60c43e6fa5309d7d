"""One builder per VLM family: a tiny random checkpoint saved with its full processor.

Each builder writes ``model.save_pretrained`` + ``processor.save_pretrained`` of the real
classes into a folder, the way a fine-tuning run saves a checkpoint. Where current
transformers writes a video-processor entry (Qwen2-VL, Qwen2.5-VL, SmolVLM) but cannot build
the processor with its video processor here (see :func:`video_entry`), the processor is saved
through its image-only variant and the entry the real class writes is added to
``processor_config.json``, so loading meets what a real checkpoint holds. Vision towers have zero
layers (or mix nothing), so each image token depends only on its own patch: the painted-square
oracle is exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from dashboard.models.processors import without_video_processor

WORDS = ["what", "is", "it", "?", "red", "blue", "user", "assistant", ":", "a", "square"]
BASE_SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
IMAGE_PART = "{% if c['type'] == 'image' %}IMAGE{% else %}{{ c['text'] }}{% endif %}"
TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {% for c in m['content'] %}" + IMAGE_PART +
            " {% endfor %}{% endfor %}{% if add_generation_prompt %}assistant :{% endif %}")


def tokenizer(specials: list[str], **named: str) -> PreTrainedTokenizerFast:
    vocab: dict[str, int] = {}
    for token in [*BASE_SPECIALS, *specials, *WORDS]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                  pad_token="<pad>", extra_special_tokens=named or None, padding_side="left")
    tok.add_special_tokens({"additional_special_tokens": specials})
    return tok


def template(image_text: str) -> str:
    return TEMPLATE.replace("IMAGE", image_text)


def text_cfg(tok: PreTrainedTokenizerFast, **extra: Any) -> dict[str, Any]:
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                tie_word_embeddings=False, **extra)


def _save(folder: Path, model: Any, processor: Any, video_entry: dict[str, Any] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    if video_entry is not None:  # what the real processor class writes beside the image processor
        path = folder / "processor_config.json"
        data = json.loads(path.read_text())
        data["video_processor"] = video_entry
        path.write_text(json.dumps(data, indent=2))
    return folder


# Runs in a child process: the video-processor modules import torchvision at the top (Qwen2-VL), so
# they are imported behind empty stand-in modules (Gemma 4 also names ``tvF`` in a signature); only
# ``__init__`` and ``to_dict`` run, which use no torchvision code.
# The child keeps the stand-ins away from this process's transformers state.
_VIDEO_ENTRY_SCRIPT = """
import importlib, json, sys, types
from transformers.utils import is_torchvision_available
assert not is_torchvision_available()
for name in ("torchvision", "torchvision.transforms", "torchvision.transforms.v2",
             "torchvision.transforms.v2.functional"):
    sys.modules[name] = types.ModuleType(name)
# Gemma 4 imports ``tvF`` only with torchvision yet names ``tvF.InterpolationMode`` in a signature
import builtins
builtins.tvF = types.SimpleNamespace(InterpolationMode=object)
module, name, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print(json.dumps(getattr(importlib.import_module(module), name)(**kwargs).to_dict()))
"""


@cache
def _video_entry_json(module: str, name: str, kwargs_json: str) -> str:
    done = subprocess.run([sys.executable, "-c", _VIDEO_ENTRY_SCRIPT, module, name, kwargs_json],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not build {name}: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def video_entry(module: str, name: str, **kwargs: Any) -> dict[str, Any]:
    """What ``processor.save_pretrained`` writes under ``"video_processor"``: the real class's ``to_dict()``.

    Why not save the processor with its video processor: without torchvision transformers'
    ``VIDEO_PROCESSOR_MAPPING`` is a placeholder, so the processor class rejects any video
    processor passed to it (``check_argument_for_proper_class``), and ``Qwen2VLVideoProcessor``
    cannot even be imported. The class itself needs no torchvision to build and serialise, so its
    ``to_dict()`` is taken from a child process (see ``_VIDEO_ENTRY_SCRIPT``); the processor writes
    exactly that dict (``ProcessorMixin.to_dict``).
    """
    return dict(json.loads(_video_entry_json(module, name, json.dumps(kwargs, sort_keys=True))))


def _qwen(folder: Path, v25: bool) -> Path:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
        Qwen2VLProcessor,
    )

    specials = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    tok = tokenizer(specials)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    common = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1]}
    torch.manual_seed(0)
    if v25:
        vision = dict(depth=0, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=4, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, window_size=56, fullatt_block_indexes=[])
        model: Any = Qwen2_5_VLForConditionalGeneration(
            Qwen2_5_VLConfig(text_config=text_cfg(tok, rope_parameters=rope), vision_config=vision, **common))
        processor_cls: Any = Qwen2_5_VLProcessor
    else:
        vision = dict(depth=0, embed_dim=32, hidden_size=32, num_heads=4, patch_size=14, spatial_merge_size=2,
                      temporal_patch_size=2)
        model = Qwen2VLForConditionalGeneration(
            Qwen2VLConfig(text_config=text_cfg(tok, rope_parameters=rope), vision_config=vision, **common))
        processor_cls = Qwen2VLProcessor
    image_processor = Qwen2VLImageProcessorPil(min_pixels=28 * 28, max_pixels=28 * 28 * 64)
    processor = without_video_processor(processor_cls)(
        image_processor=image_processor, tokenizer=tok,
        chat_template=template("<|vision_start|> <|image_pad|> <|vision_end|>"))
    entry = video_entry("transformers.models.qwen2_vl.video_processing_qwen2_vl", "Qwen2VLVideoProcessor",
                        patch_size=14, temporal_patch_size=2, merge_size=2, min_pixels=28 * 28,
                        max_pixels=28 * 28 * 64)
    return _save(folder, model, processor, entry)


def qwen2_vl(folder: Path) -> Path:
    return _qwen(folder, v25=False)


def qwen2_5_vl(folder: Path) -> Path:
    return _qwen(folder, v25=True)


def qwen3_vl(folder: Path) -> Path:
    """Qwen3-VL: Qwen2-VL's patch layout with 16px patches, learned vision positions and deepstack (off: no layers)."""
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    specials = ["<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>"]
    tok = tokenizer(specials)
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    common = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 1, 1], "mrope_interleaved": True}
    vision = dict(depth=0, hidden_size=32, out_hidden_size=32, intermediate_size=64, num_heads=4, patch_size=16,
                  spatial_merge_size=2, temporal_patch_size=2, num_position_embeddings=64, deepstack_visual_indexes=[])
    torch.manual_seed(0)
    model = Qwen3VLForConditionalGeneration(
        Qwen3VLConfig(text_config=text_cfg(tok, rope_parameters=rope, head_dim=8), vision_config=vision, **common))
    image_processor = Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, min_pixels=32 * 32,
                                               max_pixels=32 * 32 * 64, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    processor = without_video_processor(Qwen3VLProcessor)(
        image_processor=image_processor, tokenizer=tok,
        chat_template=template("<|vision_start|> <|image_pad|> <|vision_end|>"))
    entry = video_entry("transformers.models.qwen3_vl.video_processing_qwen3_vl", "Qwen3VLVideoProcessor",
                        patch_size=16, temporal_patch_size=2, merge_size=2)
    return _save(folder, model, processor, entry)


def _idefics(folder: Path, smol: bool) -> Path:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
        SmolVLMProcessor,
    )

    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    specials = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>", *tiles]
    tok = tokenizer(specials)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=0, num_attention_heads=4, image_size=32,
                  patch_size=4)
    image_id = tok.convert_tokens_to_ids("<image>")
    kwargs = dict(size={"longest_edge": 96}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    torch.manual_seed(0)
    if smol:
        model: Any = SmolVLMForConditionalGeneration(
            SmolVLMConfig(text_config=text_cfg(tok), vision_config=vision, image_token_id=image_id, scale_factor=2))
        processor: Any = without_video_processor(SmolVLMProcessor)(
            image_processor=SmolVLMImageProcessorPil(**kwargs), tokenizer=tok, image_seq_len=16,
            chat_template=template("<image>"))
        entry = video_entry("transformers.models.smolvlm.video_processing_smolvlm", "SmolVLMVideoProcessor",
                            size={"longest_edge": 96}, max_image_size={"longest_edge": 32})
        return _save(folder, model, processor, entry)
    model = Idefics3ForConditionalGeneration(
        Idefics3Config(text_config=text_cfg(tok), vision_config=vision, image_token_id=image_id, scale_factor=2))
    processor = Idefics3Processor(image_processor=Idefics3ImageProcessorPil(**kwargs), tokenizer=tok,
                                  image_seq_len=16, chat_template=template("<image>"))
    return _save(folder, model, processor)


def idefics3(folder: Path) -> Path:
    return _idefics(folder, smol=False)


def smolvlm(folder: Path) -> Path:
    return _idefics(folder, smol=True)


def paligemma(folder: Path) -> Path:
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessorPil,
    )

    tok = tokenizer(["<image>"], image_token="<image>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=8)
    text = text_cfg(tok, head_dim=8)
    text["model_type"] = "gemma"
    torch.manual_seed(0)
    config = PaliGemmaConfig(text_config=text, vision_config=vision, projection_dim=32,
                             image_token_id=tok.convert_tokens_to_ids("<image>"))
    model = PaliGemmaForConditionalGeneration(config)
    _mix_nothing(_siglip_layers(model))
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok, chat_template=template("<image>"))
    return _save(folder, model, processor)


def gemma3(folder: Path) -> Path:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil, Gemma3Processor

    specials = ["<start_of_image>", "<end_of_image>", "<image_soft_token>"]
    tok = tokenizer(specials, boi_token="<start_of_image>", eoi_token="<end_of_image>",
                    image_token="<image_soft_token>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                  patch_size=4)
    text = text_cfg(tok, head_dim=8, sliding_window=64)
    torch.manual_seed(0)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=16,
                          image_token_id=tok.convert_tokens_to_ids("<image_soft_token>"),
                          boi_token_id=tok.convert_tokens_to_ids("<start_of_image>"),
                          eoi_token_id=tok.convert_tokens_to_ids("<end_of_image>"))
    model = Gemma3ForConditionalGeneration(config)
    _mix_nothing(_siglip_layers(model))
    with torch.no_grad():  # initialised to zeros, which would make every image look the same
        model.model.multi_modal_projector.mm_input_projection_weight.normal_(0.0, 0.5)
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=16,
                                chat_template=template("<start_of_image>"))
    return _save(folder, model, processor)


def gemma4(folder: Path) -> Path:
    """Gemma 4 with its full processor (image processor, audio feature extractor, tokenizer; video entry added).

    One vision layer whose attention output is zeroed, 4px patches pooled 2×2, 70 soft tokens at most.
    """
    from transformers import (
        Gemma4AudioFeatureExtractor,
        Gemma4Config,
        Gemma4ForConditionalGeneration,
        Gemma4ImageProcessorPil,
        Gemma4Processor,
    )

    specials = ["<start_of_image>", "<end_of_image>", "<image_soft_token>", "<|video|>", "<audio_soft_token>",
                "<start_of_audio>", "<end_of_audio>"]
    tok = tokenizer(specials, boi_token="<start_of_image>", eoi_token="<end_of_image>",
                    image_token="<image_soft_token>", audio_token="<audio_soft_token>", boa_token="<start_of_audio>",
                    eoa_token="<end_of_audio>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in specials}
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  num_key_value_heads=4, head_dim=8, patch_size=4, pooling_kernel_size=2, position_embedding_size=64)
    text = text_cfg(tok, head_dim=8, global_head_dim=8, sliding_window=512, hidden_size_per_layer_input=8,
                    vocab_size_per_layer_input=len(tok), layer_types=["sliding_attention", "full_attention"])
    torch.manual_seed(0)
    config = Gemma4Config(text_config=text, vision_config=vision, audio_config=None,
                          image_token_id=ids["<image_soft_token>"], boi_token_id=ids["<start_of_image>"],
                          eoi_token_id=ids["<end_of_image>"], video_token_id=ids["<|video|>"])
    model = Gemma4ForConditionalGeneration(config)
    with torch.no_grad():
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.o_proj.linear.weight.zero_()
    image_processor = Gemma4ImageProcessorPil(patch_size=4, pooling_kernel_size=2, max_soft_tokens=70)
    processor = without_video_processor(Gemma4Processor)(
        feature_extractor=Gemma4AudioFeatureExtractor(), image_processor=image_processor, tokenizer=tok,
        image_seq_length=70, chat_template=template("<image_soft_token>"))
    entry = video_entry("transformers.models.gemma4.video_processing_gemma4", "Gemma4VideoProcessor",
                        patch_size=4, pooling_kernel_size=2)
    return _save(folder, model, processor, entry)


# Runs in a child process: ``PixtralProcessor`` imports the torchvision image-processor module at import
# time (and is marked as needing torchvision), so it is imported behind the same stand-ins as above and
# only builds and saves itself (``save_pretrained`` writes its tokenizer and ``processor_config.json``).
_PIXTRAL_SAVE_SCRIPT = _VIDEO_ENTRY_SCRIPT.split("module, name, kwargs")[0] + """
from transformers import AutoTokenizer, PixtralImageProcessorPil
from transformers.models.pixtral.processing_pixtral import PixtralProcessor
folder, kwargs = sys.argv[1], json.loads(sys.argv[2])
tok = AutoTokenizer.from_pretrained(folder)
PixtralProcessor(image_processor=PixtralImageProcessorPil(**kwargs.pop("image_processor")), tokenizer=tok,
                 chat_template=tok.chat_template, **kwargs).save_pretrained(folder)
"""


def mistral3(folder: Path) -> Path:
    """Mistral 3 (Pixtral tower, 2×2 patch merger) saved with the real ``PixtralProcessor``.

    Not loadable here: the processor class cannot be imported without torchvision (see
    ``_PIXTRAL_SAVE_SCRIPT``), so the checkpoint is what a real one holds and the app must say why.
    """
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    tok = tokenizer(["[IMG]", "[IMG_BREAK]", "[IMG_END]"])
    tok.chat_template = template("[IMG]")
    vision = dict(model_type="pixtral", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, head_dim=8, image_size=64, patch_size=4)
    torch.manual_seed(0)
    config = Mistral3Config(vision_config=vision, text_config=text_cfg(tok, model_type="mistral", head_dim=8),
                            image_token_index=tok.convert_tokens_to_ids("[IMG]"), spatial_merge_size=2,
                            vision_feature_layer=-1)
    folder.mkdir(parents=True, exist_ok=True)
    Mistral3ForConditionalGeneration(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    kwargs = dict(patch_size=4, spatial_merge_size=2,
                  image_processor=dict(size={"longest_edge": 64}, patch_size={"height": 4, "width": 4}))
    done = subprocess.run([sys.executable, "-c", _PIXTRAL_SAVE_SCRIPT, str(folder), json.dumps(kwargs)],
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"could not save PixtralProcessor: {done.stderr[-2000:]}")
    return folder


def llava_next(folder: Path) -> Path:
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil,
        LlavaNextProcessor,
    )

    tok = tokenizer(["<image>"], image_token="<image>")
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(0)
    config = LlavaNextConfig(text_config=text_cfg(tok, model_type="llama"), vision_config=vision,
                             image_token_id=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1,
                             image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]])
    model = LlavaNextForConditionalGeneration(config)
    tower = model.model.vision_tower
    _mix_nothing(getattr(tower, "vision_model", tower).encoder.layers)
    image_processor = LlavaNextImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                                 image_grid_pinpoints=[[32, 32], [32, 64], [64, 32]])
    processor = LlavaNextProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8,
                                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                                   chat_template=template("<image>"))
    return _save(folder, model, processor)


def llava_onevision(folder: Path) -> Path:
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionImageProcessorPil,
        LlavaOnevisionProcessor,
    )

    tok = tokenizer(["<image>", "<video>"], image_token="<image>", video_token="<video>")
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, image_size=32, patch_size=8)
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64], [32, 96], [96, 32]]
    torch.manual_seed(0)
    config = LlavaOnevisionConfig(text_config=text_cfg(tok, model_type="qwen2"), vision_config=vision,
                                  image_token_id=tok.convert_tokens_to_ids("<image>"),
                                  video_token_id=tok.convert_tokens_to_ids("<video>"), vision_feature_layer=-1,
                                  vision_feature_select_strategy="full", image_grid_pinpoints=pinpoints,
                                  vision_aspect_ratio="anyres_max_9")
    model = LlavaOnevisionForConditionalGeneration(config)
    _mix_nothing(_siglip_layers(model))
    image_processor = LlavaOnevisionImageProcessorPil(size={"height": 32, "width": 32},
                                                      image_grid_pinpoints=pinpoints)
    processor = without_video_processor(LlavaOnevisionProcessor)(
        image_processor=image_processor, tokenizer=tok, num_image_tokens=16, vision_feature_select_strategy="full",
        vision_aspect_ratio="anyres_max_9", chat_template=template("<image>"))
    entry = video_entry("transformers.models.llava_onevision.video_processing_llava_onevision",
                        "LlavaOnevisionVideoProcessor", size={"height": 32, "width": 32})
    return _save(folder, model, processor, entry)


def internvl(folder: Path) -> Path:
    """InternVL: crop-to-patches tiles plus a thumbnail, pixel shuffle 0.5."""
    from transformers import (
        GotOcr2ImageProcessorPil,
        InternVLConfig,
        InternVLForConditionalGeneration,
        InternVLProcessor,
    )

    specials = ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]
    tok = tokenizer(specials, start_image_token="<img>", end_image_token="</img>",
                    context_image_token="<IMG_CONTEXT>", video_token="<video>")
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  image_size=[32, 32], patch_size=[8, 8])
    torch.manual_seed(0)
    config = InternVLConfig(text_config=text_cfg(tok, model_type="qwen2"), vision_config=vision,
                            image_token_id=tok.convert_tokens_to_ids("<IMG_CONTEXT>"), image_seq_length=4,
                            downsample_ratio=0.5, vision_feature_layer=-1)
    model = InternVLForConditionalGeneration(config)
    with torch.no_grad():  # zero the vision attention's output so patches do not mix
        for layer in model.model.vision_tower.encoder.layer:
            layer.attention.projection_layer.weight.zero_()
            layer.attention.projection_layer.bias.zero_()
    image_processor = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=True, max_patches=4)
    processor = without_video_processor(InternVLProcessor)(
        image_processor=image_processor, tokenizer=tok, image_seq_length=4,
        chat_template=template("<IMG_CONTEXT>"))
    entry = video_entry("transformers.models.internvl.video_processing_internvl", "InternVLVideoProcessor",
                        size={"height": 32, "width": 32})
    return _save(folder, model, processor, entry)


def aya_vision(folder: Path) -> Path:
    """Aya Vision: an image-text-to-text family with no adapter; it must load, generate and say why no map."""
    from transformers import (
        AyaVisionConfig,
        AyaVisionForConditionalGeneration,
        AyaVisionProcessor,
        GotOcr2ImageProcessorPil,
    )

    specials = ["<image>", "<|START_OF_IMG|>", "<|END_OF_IMG|>", "<|IMG_PATCH|>", "<|IMG_LINE_BREAK|>", "TILE",
                "TILE_GLOBAL"]
    tok = tokenizer(specials)
    vision = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                  num_attention_heads=4, image_size=32, patch_size=8, vision_use_head=False)
    torch.manual_seed(0)
    config = AyaVisionConfig(text_config=text_cfg(tok, model_type="cohere2", head_dim=8), vision_config=vision,
                             image_token_id=tok.convert_tokens_to_ids("<|IMG_PATCH|>"), downsample_factor=2,
                             vision_feature_layer=-1)
    model = AyaVisionForConditionalGeneration(config)
    image_processor = GotOcr2ImageProcessorPil(size={"height": 32, "width": 32}, crop_to_patches=True, max_patches=4)
    processor = AyaVisionProcessor(image_processor=image_processor, tokenizer=tok, patch_size=8, img_size=32,
                                   downsample_factor=2, chat_template=template("<image>"))
    return _save(folder, model, processor)


def llava(folder: Path) -> Path:
    from transformers import LlavaForConditionalGeneration

    from dashboard.demo.modeling import TinyLlavaSpec, build_config, build_processor

    spec = TinyLlavaSpec(vision_layers=1)
    processor = build_processor(WORDS, spec)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(build_config(processor.tokenizer, spec))
    with torch.no_grad():
        for layer in model.model.vision_tower.encoder.layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()
    return _save(folder, model, processor)


def _siglip_layers(model: Any) -> Any:
    return model.model.vision_tower.encoder.layers


def _mix_nothing(layers: Any) -> None:
    """Zero the vision layers' attention output so each patch's feature depends on that patch alone."""
    with torch.no_grad():
        for layer in layers:
            layer.self_attn.out_proj.weight.zero_()
            layer.self_attn.out_proj.bias.zero_()


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "llava": llava, "llava_next": llava_next, "llava_onevision": llava_onevision,
    "qwen2_vl": qwen2_vl, "qwen2_5_vl": qwen2_5_vl, "qwen3_vl": qwen3_vl, "internvl": internvl,
    "aya_vision": aya_vision,
    "idefics3": idefics3, "smolvlm": smolvlm, "paligemma": paligemma, "gemma3": gemma3,
    "gemma4": gemma4,
}
# Families whose processor cannot be built in this install (the app must say why, not crash).
UNLOADABLE: dict[str, Callable[[Path], Path]] = {"mistral3": mistral3}
