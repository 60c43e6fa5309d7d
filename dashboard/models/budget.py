"""Budgets checked *before* a model or processor allocates anything.

A checkpoint's ``config.json`` decides what ``from_pretrained`` builds; weights only fill it in.
A config with ``num_hidden_layers: 20000`` beside small real weights therefore builds GBs of
randomly initialised layers before any weight-based estimate notices. So the parameter bytes
are estimated from the config itself, on the meta device (``accelerate.init_empty_weights``:
no memory), and compared with the budget and with the weights actually present. Processor
sizes (``size``/``crop_size`` of 30000 px) are sanity-checked the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from dashboard.runs.files import RunFileError, excerpt, read_json

MAX_LAYERS = 256
"""Per layer-count field; the largest published models have ~130 layers (and building 1,000 tiny
layers on the meta device alone takes seconds)."""
MAX_WIDTH = 65_536
MAX_VOCAB = 4_000_000
MAX_PROCESSOR_SIDE = 8_192
"""Longest resize/crop side a processor config may ask for (Idefics3 uses 1,456; Qwen2-VL ≤ 3,584)."""
MAX_PROCESSOR_PIXELS = MAX_PROCESSOR_SIDE ** 2
WEIGHTS_SLACK = 2.0
"""The config may describe at most this many times the bytes the weight files hold (plus 16 MB)."""

_LAYER_KEYS = ("num_hidden_layers", "num_layers", "n_layer", "num_decoder_layers", "encoder_layers",
               "decoder_layers")
_WIDTH_KEYS = ("hidden_size", "intermediate_size", "d_model", "n_embd", "ffn_dim", "num_attention_heads")
_SIZE_KEYS = ("size", "crop_size", "max_image_size", "image_size", "resample_size")
_PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json")
_AREA_SIZED_MARKERS = ("merge_size", "temporal_patch_size", "min_pixels", "max_pixels")


class ConfigBudgetError(ValueError):
    """The config (or processor config) describes something implausible or over the budget."""


def _walk(config: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _walk(value, f"{name}.")
        else:
            yield name, value


def check_config_sanity(config: Mapping[str, Any], shown: str) -> None:
    """Refuse layer counts, widths and vocabularies no real model has (checked in nested configs)."""
    for name, value in _walk(config):
        key = name.rsplit(".", 1)[-1]
        if not isinstance(value, int) or isinstance(value, bool):
            continue
        limit = (MAX_LAYERS if key in _LAYER_KEYS else MAX_WIDTH if key in _WIDTH_KEYS
                 else MAX_VOCAB if key == "vocab_size" else None)
        if limit is not None and not 0 <= value <= limit:
            raise ConfigBudgetError(f"{shown}: {name} = {value:,} is not plausible (limit {limit:,}); "
                                    "the checkpoint's config.json does not describe a model this app loads")


def config_param_bytes(folder: Path, dtype: torch.dtype, trust_remote_code: bool = False) -> int:
    """Bytes of parameters + buffers the config describes, built on the meta device (no memory)."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForImageTextToText

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code, local_files_only=True)
    with init_empty_weights(include_buffers=True):
        model = AutoModelForImageTextToText.from_config(config, trust_remote_code=trust_remote_code)
    size = torch.tensor([], dtype=dtype).element_size()
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        total += tensor.numel() * (size if tensor.is_floating_point() else tensor.element_size())
    return total


def check_against_weights(config_bytes: int, weights_bytes: int, shown: str) -> None:
    """A config far bigger than its weights would build (and randomly initialise) the difference."""
    if weights_bytes and config_bytes > WEIGHTS_SLACK * weights_bytes + 16 * 10**6:
        raise ConfigBudgetError(
            f"{shown}: config.json describes a model of about {config_bytes / 1e6:,.1f} MB but the weight files "
            f"hold only {weights_bytes / 1e6:,.1f} MB; refusing to build the missing layers")


def _sides(value: Any) -> Iterator[int]:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key not in ("max_pixels", "min_pixels") and isinstance(item, int) and not isinstance(item, bool):
                yield item
    elif isinstance(value, (list, tuple)):
        yield from (v for v in value if isinstance(v, int) and not isinstance(v, bool))


def check_processor_config(folder: Path, roots: Sequence[Path], shown: str | None = None) -> None:
    """Refuse processor configs whose resize/crop sizes would allocate huge images per input.

    ``shown``: the checkpoint's name for messages (``folder`` may be a private staging folder).
    """
    shown = shown or folder.name
    for name in _PROCESSOR_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = read_json(path, roots)
        except RunFileError as exc:
            raise ConfigBudgetError(str(exc)) from exc
        if not isinstance(data, dict):
            continue
        sections = [data, *(v for v in data.values() if isinstance(v, Mapping))]
        for section in sections:
            # Qwen2-VL-style processors (dynamic resolution) give ``size`` as pixel *areas*
            # ({"shortest_edge": min_pixels, "longest_edge": max_pixels}), not side lengths.
            area = any(k in section for k in _AREA_SIZED_MARKERS)
            limit, unit = (MAX_PROCESSOR_PIXELS, "px²") if area else (MAX_PROCESSOR_SIDE, "px")
            for key in _SIZE_KEYS:
                for side in _sides(section.get(key)):
                    if not 0 < side <= limit:
                        raise ConfigBudgetError(f"{shown}/{name}: {key} {excerpt(side)} {unit} is outside "
                                                f"1–{limit:,} {unit}; refusing to build this processor")
            for key in ("max_pixels", "longest_edge"):
                value = section.get(key)
                if isinstance(value, int) and value > MAX_PROCESSOR_PIXELS:
                    raise ConfigBudgetError(f"{shown}/{name}: {key} {value:,} is over the limit")
