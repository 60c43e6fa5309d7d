"""The capture mechanism: parts come from the adapter, taps live exactly as long as the block, sites are separate."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from dashboard.attention.capture import ImageAttentionRows
from dashboard.attention.hooks import CAPTURE_IMPLEMENTATION, CaptureError, ModelParts, Site, capturing
from tests.attention import attn_families as fam


@dataclass
class _Count:
    """A reduction that only counts what its site delivers, per layer, and notes the shapes."""

    site: Site
    seen: dict[int, list[tuple[int, ...]]] = field(default_factory=dict)

    def observe(self, layer: int, value: torch.Tensor) -> None:
        self.seen.setdefault(layer, []).append(tuple(value.shape))


@pytest.fixture(scope="module")
def llava() -> fam.Family:
    return fam.llava(fam.with_square(64, 48, (10, 10, 30, 30)))


def _hook_count(parts: ModelParts) -> int:
    return sum(len(layer._forward_hooks) for layer in parts.layers)


def test_parts_are_the_declared_modules(llava: fam.Family) -> None:
    model = llava.model
    parts = ModelParts.of(model)
    assert parts.text_model is model.model.language_model
    assert list(parts.layers) == list(model.model.language_model.layers)
    assert [id(a) for a in parts.attention] == [id(layer.self_attn) for layer in model.model.language_model.layers]
    assert parts.final_norm is model.model.language_model.norm and parts.lm_head is model.lm_head
    assert parts.image_token_id == model.config.image_token_id


def test_each_site_is_delivered_once_per_layer_per_forward(llava: fam.Family) -> None:
    parts = ModelParts.of(llava.model)
    rows, outputs = _Count("attention_row"), _Count("layer_output")
    with capturing(parts, [rows, outputs]):
        llava.model(**llava.inputs)
    seq = llava.inputs["input_ids"].shape[1]
    n = len(parts.layers)
    assert set(rows.seen) == set(outputs.seen) == set(range(n))
    heads = llava.model.config.text_config.num_attention_heads
    assert all(shapes == [(1, heads, 1, seq)] for shapes in rows.seen.values())  # one row, not seq × seq
    hidden = llava.model.config.text_config.hidden_size
    assert all(shapes == [(1, seq, hidden)] for shapes in outputs.seen.values())


def test_matrix_readers_get_eager_weights_whose_last_row_is_the_row(llava: fam.Family) -> None:
    parts = ModelParts.of(llava.model)
    fast, = _rows_of(parts, llava, [])
    row, matrix = _rows_of(parts, llava, ["attention_matrix"])
    seq = llava.inputs["input_ids"].shape[1]
    assert all(m.shape[-2:] == (seq, seq) for m in matrix)
    for layer in range(len(parts.layers)):
        torch.testing.assert_close(row[layer], matrix[layer][:, :, -1:, :])  # the eager path's row
        torch.testing.assert_close(fast[layer], row[layer], atol=1e-6, rtol=1e-5)  # = the prefill shortcut's row


def _rows_of(parts: ModelParts, family: fam.Family, extra: list[Site]) -> list[list[torch.Tensor]]:
    @dataclass
    class Keep:
        site: Site
        kept: dict[int, torch.Tensor] = field(default_factory=dict)

        def observe(self, layer: int, value: torch.Tensor) -> None:
            self.kept[layer] = value.clone()

    readers = [Keep("attention_row"), *(Keep(site) for site in extra)]
    with capturing(parts, readers):
        family.model(**family.inputs)
    return [[r.kept[i] for i in range(len(parts.layers))] for r in readers]


def test_taps_last_exactly_as_long_as_the_block(llava: fam.Family) -> None:
    model = llava.model
    parts = ModelParts.of(model)
    before = model.config._attn_implementation
    with capturing(parts, [_Count("layer_output")]):
        assert _hook_count(parts) == len(parts.layers)
        assert model.config._attn_implementation == before  # no attention reader: implementation untouched
    assert _hook_count(parts) == 0
    with pytest.raises(RuntimeError, match="boom"), capturing(parts, [_Count("attention_row"),
                                                                     _Count("layer_output")]):
        assert model.config._attn_implementation == CAPTURE_IMPLEMENTATION
        raise RuntimeError("boom")
    assert _hook_count(parts) == 0
    assert model.config._attn_implementation == before
    outside = _Count("attention_row")
    with capturing(parts, [outside]):
        pass
    model(**llava.inputs)  # after the block nothing is delivered any more
    assert outside.seen == {}


def test_rows_reduction_refuses_a_batch(llava: fam.Family) -> None:
    rows = ImageAttentionRows(2, torch.tensor([1, 2]), 4, 3)
    with pytest.raises(CaptureError, match="one sequence at a time"):
        rows.observe(0, torch.zeros(2, 4, 1, 6))


def test_unknown_family_and_site_are_capture_errors(llava: fam.Family) -> None:
    class Other(torch.nn.Module):
        config = type("Config", (), {"model_type": "no_such_family"})()

    with pytest.raises(CaptureError, match="no_such_family"):
        ModelParts.of(Other())  # type: ignore[arg-type]
    with pytest.raises(CaptureError, match="unknown capture site"), \
            capturing(ModelParts.of(llava.model), [_Count("somewhere")]):  # type: ignore[arg-type]
        pass
