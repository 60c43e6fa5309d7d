"""Oracle tests: change one image region, see which image tokens change, check the adapter maps them there.

The towers have no transformer layers, so only tokens whose patches touch the changed pixels move
(plus resampling blur at the edges). A transposed or shifted grid puts the strongest change in the
wrong cell — the negative controls below show that the check catches it.
"""

from __future__ import annotations

import numpy as np
import pytest

from dashboard.attention.adapters import GridView, UnsupportedFamily, adapter_for, layout_for
from tests.attention import attn_families as fam

BUILDERS = {
    "llava": fam.llava,
    "qwen2_vl": fam.qwen,
    "qwen2_5_vl": lambda im: fam.qwen(im, v25=True),
    "idefics3": fam.idefics3,
    "idefics3-nosplit": lambda im: fam.idefics3(im, split=False),
}
# (image width, height, bright square) per family; non-square images exercise resize/crop/tiling.
CASES = {
    "llava": (96, 64, (70, 20, 78, 28)),  # resize 64 high, centre crop 16 px off each side
    "qwen2_vl": (150, 100, (100, 20, 110, 30)),
    "qwen2_5_vl": (150, 100, (20, 70, 30, 80)),
    "idefics3": (150, 100, (100, 20, 110, 30)),
    "idefics3-nosplit": (60, 40, (40, 10, 44, 14)),
}


def _changes(name: str) -> tuple[fam.Family, np.ndarray, tuple[int, int, int, int]]:
    width, height, square = CASES[name]
    base = BUILDERS[name](fam.blank(width, height))
    moved = BUILDERS[name](fam.with_square(width, height, square))
    delta = np.abs(fam.image_embeddings(base.model, base.inputs) - fam.image_embeddings(moved.model, moved.inputs))
    return base, delta.max(-1), square


def _overlaps(box: np.ndarray, square: tuple[int, int, int, int], margin: float = 0.0) -> bool:
    x0, y0, x1, y1 = square
    return bool(box[0] < x1 + margin and box[2] > x0 - margin and box[1] < y1 + margin and box[3] > y0 - margin)


def check_view(view: GridView, change: np.ndarray, square: tuple[int, int, int, int]) -> None:
    """The strongest-changing cell covers the square; every changed cell is at most one cell away."""
    cell_change = change[view.positions]
    assert cell_change.max() > 1e-4, f"{view.name}: no image token changed"
    peak = np.unravel_index(int(cell_change.argmax()), cell_change.shape)
    assert _overlaps(view.boxes[peak], square), f"{view.name}: peak cell {peak} {view.boxes[peak]} misses {square}"
    cell = max(view.boxes[0, 0, 2] - view.boxes[0, 0, 0], view.boxes[0, 0, 3] - view.boxes[0, 0, 1])
    for r, c in np.argwhere(cell_change > 1e-4 * cell_change.max()):
        assert _overlaps(view.boxes[r, c], square, margin=cell), f"{view.name}: cell {(r, c)} changed far from square"


@pytest.fixture(scope="module", params=list(BUILDERS))
def family_case(request: pytest.FixtureRequest):
    name = request.param
    family, change, square = _changes(name)
    width, height, _ = CASES[name]
    layout = layout_for(family.model.config, family.processor, family.inputs["input_ids"],
                        fam.blank(width, height), family.inputs)
    return name, layout, change, square


def test_every_view_points_at_the_changed_region(family_case) -> None:
    name, layout, change, square = family_case
    changed = np.flatnonzero(change > 1e-6)
    assert len(changed) and np.isin(changed, layout.image_positions).all()  # text tokens never move
    for view in layout.views:
        check_view(view, change, square)
    if name == "idefics3":
        assert [v.name for v in layout.views] == ["tiles", "global"]
        assert layout.view("tiles").shape == (8, 12)  # 2×3 tiles of 4×4 tokens


def test_transposed_or_shifted_grid_fails_the_oracle(family_case) -> None:
    _name, layout, change, square = family_case
    view = layout.primary
    shifted = GridView(view.name, np.roll(view.positions, 1, axis=1), view.boxes)
    with pytest.raises(AssertionError):
        check_view(shifted, change, square)
    flipped = GridView(view.name, view.positions[::-1, ::-1].copy(), view.boxes)
    with pytest.raises(AssertionError):
        check_view(flipped, change, square)
    rows, cols = view.shape
    if rows == cols:
        transposed = GridView(view.name, view.positions.T.copy(), view.boxes)
        with pytest.raises(AssertionError):
            check_view(transposed, change, square)


def test_llava_boxes_follow_resize_and_centre_crop() -> None:
    family = fam.llava(fam.blank(96, 64))
    layout = layout_for(family.model.config, family.processor, family.inputs["input_ids"], fam.blank(96, 64),
                        family.inputs)
    assert layout.primary.shape == (8, 8)
    assert layout.primary.extent() == pytest.approx((16.0, 0.0, 80.0, 64.0))  # 96→crop of the middle 64 px


def test_unsupported_family_names_what_is_missing() -> None:
    with pytest.raises(UnsupportedFamily, match=r"mllama.*cross-attends"):
        adapter_for("mllama")
    with pytest.raises(UnsupportedFamily, match="Supported: llava"):
        adapter_for("blip-2")


def test_token_count_mismatch_is_reported() -> None:
    from dashboard.attention.adapters import LayoutError

    family = fam.llava(fam.blank(64, 64))
    ids = family.inputs["input_ids"][0].tolist()
    image_id = family.model.config.image_token_id
    ids.remove(image_id)
    with pytest.raises(LayoutError, match="63 image tokens, expected 64"):
        layout_for(family.model.config, family.processor, np.array(ids), fam.blank(64, 64), family.inputs)
