"""Build a tiny but genuine LLaVA (tokenizer, processor, model) entirely offline.

Everything produced here is a stock transformers object: after ``save_pretrained`` the
folder loads with ``AutoProcessor`` / ``AutoModelForImageTextToText`` and no custom code,
exactly like a real checkpoint. The demo run and the test-suite both use it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

SPECIAL_TOKENS = ["<pad>", "<unk>", "<s>", "</s>", "<image>"]
ROLE_WORDS = ["USER", "ASSISTANT", ":"]

def _chat_template(user_parts: str) -> str:
    """USER/ASSISTANT turns as LLaVA-1.5 writes them; ``user_parts`` renders a user message's content list."""
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'user' %}USER: "
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}" + user_parts + "{% endif %} "
        "{% elif message['role'] == 'assistant' %}ASSISTANT: "
        "{% if message['content'] is string %}{{ message['content'] }}"
        "{% else %}{% for part in message['content'] %}"
        "{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
        "{% endif %}</s>"
        "{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )


# LLaVA-1.5 style template: "USER: <image>\n{prompt} ASSISTANT: {answer}</s>" (parts in message order).
CHAT_TEMPLATE = _chat_template(
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>\n{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}")

# The demo model's template: the same turns, but the user's text comes before its image
# ("USER: where is the red object ? <image>\n ASSISTANT:"), whatever order the message lists them in.
# Attention is causal, so only then can each image token see the question and mark itself as the
# object asked about (bench/RESULTS.md, "Demo v2").
QUESTION_FIRST_TEMPLATE = _chat_template(
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }} {% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n{% endif %}{% endfor %}")


@dataclass(frozen=True)
class TinyLlavaSpec:
    """Sizes of the tiny model; defaults match the recipe measured in shared/README.md."""

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 64
    vision_layers: int = 2
    vision_heads: int = 4
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    text_intermediate: int = 128
    max_positions: int = 256
    chat_template: str = CHAT_TEMPLATE

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def image_tokens(self) -> int:
        return self.grid * self.grid


def build_tokenizer(words: Iterable[str], chat_template: str = CHAT_TEMPLATE) -> PreTrainedTokenizerFast:
    """A word-level tokenizer over ``words`` (lower-cased task vocabulary + role words)."""
    vocab: dict[str, int] = {}
    for token in [*SPECIAL_TOKENS, *ROLE_WORDS, *words]:
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = chat_template
    return tokenizer


def build_processor(words: Iterable[str], spec: TinyLlavaSpec = TinyLlavaSpec()) -> LlavaProcessor:
    """Processor whose ``<image>`` expands to exactly ``spec.image_tokens`` tokens."""
    tokenizer = build_tokenizer(words, spec.chat_template)
    # The PIL class by name: ``CLIPImageProcessor`` is the torchvision backend, absent here (torch's CPU
    # wheel comes without torchvision), and naming it made transformers warn at import in every process
    # that imports this module (the server, and again in the build's spawned render worker). The PIL
    # class is what it fell back to anyway, and it saves as ``CLIPImageProcessor``, so checkpoints are
    # unchanged, and the demo's pixels no longer depend on whether torchvision happens to be installed.
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": spec.image_size},
        crop_size={"height": spec.image_size, "width": spec.image_size},
        do_center_crop=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=spec.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
        chat_template=spec.chat_template,
        image_token="<image>",
    )


def build_config(tokenizer: PreTrainedTokenizerFast, spec: TinyLlavaSpec = TinyLlavaSpec()) -> LlavaConfig:
    vision = CLIPVisionConfig(
        hidden_size=spec.vision_hidden,
        intermediate_size=spec.vision_hidden * 2,
        num_hidden_layers=spec.vision_layers,
        num_attention_heads=spec.vision_heads,
        image_size=spec.image_size,
        patch_size=spec.patch_size,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.text_hidden,
        intermediate_size=spec.text_intermediate,
        num_hidden_layers=spec.text_layers,
        num_attention_heads=spec.text_heads,
        num_key_value_heads=spec.text_heads,
        max_position_embeddings=spec.max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        pad_token_id=tokenizer.pad_token_id,
    )
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    return config


def build_model(processor: LlavaProcessor, spec: TinyLlavaSpec = TinyLlavaSpec(),
                seed: int = 0) -> LlavaForConditionalGeneration:
    """A randomly initialised tiny LLaVA, deterministic for ``seed``."""
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(build_config(processor.tokenizer, spec))
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.bos_token_id = processor.tokenizer.bos_token_id
    return model


def save_tiny_llava(out_dir: str | Path, words: Iterable[str] = (), spec: TinyLlavaSpec = TinyLlavaSpec(),
                    seed: int = 0) -> Path:
    """Write a loadable, untrained tiny LLaVA checkpoint folder (used by tests and benches)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    processor = build_processor(list(words) or DEFAULT_TEST_WORDS, spec)
    model = build_model(processor, spec, seed)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


DEFAULT_TEST_WORDS = [
    "what", "colour", "color", "shape", "is", "the", "where", "describe", "image", "a", "an", "of", "in",
    "red", "green", "blue", "yellow", "circle", "square", "triangle", "top", "bottom", "left", "right",
    "center", "?", ".", "and",
]
