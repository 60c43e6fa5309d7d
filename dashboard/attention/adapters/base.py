"""The common shape of every family adapter: where the image tokens sit and what each one sees.

A family's processor turns one picture into a run (or several runs) of image tokens. To draw a
token's attention on the picture we need, for each image token, its grid cell and the region of
the *original* image that cell covers — through the processor's resize / crop / tiling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import numpy as np


class UnsupportedFamily(ValueError):
    """No adapter for this model family (the message names what is missing)."""


class LayoutError(ValueError):
    """The inputs do not match what the family's processor produces (e.g. token count mismatch)."""


@dataclass(frozen=True)
class GridView:
    """One grid of image tokens: the whole image, a stitched set of tiles, or a global thumbnail.

    ``positions[r, c]`` is the sequence position of the token for row ``r``, column ``c``;
    ``boxes[r, c]`` is ``(x0, y0, x1, y1)`` in original-image pixels (x1/y1 exclusive).
    """

    name: str
    positions: np.ndarray
    boxes: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.positions.shape[0]), int(self.positions.shape[1])

    def grid(self, values: np.ndarray, image_positions: np.ndarray) -> np.ndarray:
        """Arrange ``values`` (aligned with ``image_positions`` along the last axis) as ``[..., rows, cols]``."""
        index = np.searchsorted(image_positions, self.positions)
        if np.any(index >= len(image_positions)) or np.any(image_positions[np.minimum(index, len(image_positions) - 1)]
                                                             != self.positions):
            raise LayoutError(f"view {self.name!r} refers to positions that are not image tokens")
        return np.asarray(values)[..., index]

    def extent(self) -> tuple[float, float, float, float]:
        """The region of the original image this view covers."""
        return (float(self.boxes[..., 0].min()), float(self.boxes[..., 1].min()),
                float(self.boxes[..., 2].max()), float(self.boxes[..., 3].max()))

    def cell_centers(self) -> np.ndarray:
        """``[rows, cols, 2]`` centre (x, y) of each cell in original-image pixels."""
        return np.stack([(self.boxes[..., 0] + self.boxes[..., 2]) / 2, (self.boxes[..., 1] + self.boxes[..., 3]) / 2],
                        axis=-1)


@dataclass(frozen=True)
class TokenSegment:
    """A run of image tokens, consecutive in prompt order, that is one row-major grid (a tile, a view).

    ``group`` names what it is ("tile", "global view", "image", "CLS token"); ``index`` counts
    segments of the same group from 1; ``short`` prefixes its tokens' column labels ("t2", "g").
    ``row_end``: the last column is a row-end token with no pixels (LLaVA-NeXT's ``image_newline``).
    """

    group: str
    rows: int
    cols: int
    index: int = 1
    short: str = ""
    row_end: bool = False

    def label(self, row: int, col: int) -> str:
        return f"r{row + 1}nl" if self.row_end and col == self.cols - 1 else f"r{row + 1}c{col + 1}"

    @property
    def count(self) -> int:
        return self.rows * self.cols


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}" if start == prev else f"{start}–{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def _names(segments: list[TokenSegment], totals: dict[str, int]) -> str:
    """"tiles 1–4 of 6 and the global view": segments grouped, numbered groups as ranges."""
    parts = []
    for group in dict.fromkeys(s.group for s in segments):
        chosen = [s.index for s in segments if s.group == group]
        if totals[group] == 1:
            parts.append(f"the {group}")
        else:
            plural = group + "s" if len(chosen) > 1 else group
            parts.append(f"{plural} {_ranges(chosen)} of {totals[group]}")
    return " and ".join(parts)


@dataclass(frozen=True)
class ImageLayout:
    """All views of one image in one prompt; ``views[0]`` is the one shown by default.

    ``segments`` and ``token_order`` say how the image tokens are ordered in the prompt (what a
    per-token list such as the logit lens' columns follows); the segments cover every image token.
    """

    family: str
    image_size: tuple[int, ...]  # (width, height) of the original image
    views: tuple[GridView, ...]
    image_positions: np.ndarray  # every image-token position in the prompt, sorted
    note: str = ""
    segments: tuple[TokenSegment, ...] = ()
    token_order: str = ""  # one line, for this prompt: the order the image tokens appear in

    def __post_init__(self) -> None:
        if self.segments and sum(s.count for s in self.segments) != len(self.image_positions):
            raise LayoutError(f"{self.family}: segments cover {sum(s.count for s in self.segments)} image tokens, "
                              f"the prompt has {len(self.image_positions)}")

    @property
    def primary(self) -> GridView:
        return self.views[0]

    def cells(self) -> list[tuple[TokenSegment, int, int]]:
        """Per image token, in prompt order: its segment and (row, col) inside it."""
        return [(seg, k // seg.cols, k % seg.cols) for seg in self.segments for k in range(seg.count)]

    def token_labels(self) -> list[str]:
        """Short label per image token, in prompt order: ``r1c2`` or, with several segments, ``t3·r1c2``."""
        if not self.segments:
            return [f"img{i}" for i in range(len(self.image_positions))]
        many = len(self.segments) > 1
        return [f"{seg.short}·{seg.label(r, c)}" if many and seg.short else seg.label(r, c)
                for seg, r, c in self.cells()]

    def order_caption(self, shown: int) -> str:
        """What a list of the first ``shown`` image tokens (in prompt order) holds, and what it leaves out."""
        total = len(self.image_positions)
        shown = max(0, min(shown, total))
        head = f"All {total} image tokens" if shown == total else f"First {shown} of {total} image tokens"
        text = f"{head}, in prompt order: {self.token_order or 'as the processor lays them out'}."
        if shown == total or not self.segments:
            return text
        totals: dict[str, int] = {}
        for seg in self.segments:
            totals[seg.group] = totals.get(seg.group, 0) + 1
        full, missing, start = [], [], 0
        partial = ""
        for seg in self.segments:
            end = start + seg.count
            if end <= shown:
                full.append(seg)
            elif start >= shown:
                missing.append(seg)
            else:
                rows = (shown - start) // seg.cols
                name = _names([seg], totals)
                partial = f"the first {shown - start} of {seg.count} tokens of {name} ({rows} of {seg.rows} rows)"
            start = end
        parts = []
        if full:
            parts.append(f"shown: {_names(full, totals)}")
        if partial:
            parts.append(f"{'and ' if full else 'shown: '}{partial}")
        if missing:
            parts.append(f"not shown: {_names(missing, totals)}")
        rest = "; ".join(parts).replace("; and ", ", and ")
        return f"{text} {rest[:1].upper()}{rest[1:]}."

    def view(self, name: str) -> GridView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"no view {name!r}; have {[v.name for v in self.views]}")

    def view_or_primary(self, name: str | None) -> GridView:
        """The view ``name``, or the primary one when none is named (the pages' and the checks' default)."""
        return self.view(name) if name else self.primary

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "image_size": list(self.image_size), "note": self.note,
                "views": [{"name": v.name, "rows": v.shape[0], "cols": v.shape[1], "extent": v.extent()}
                          for v in self.views]}


@dataclass(frozen=True)
class Components:
    """Where a family's language-model parts live, as attribute paths from the loaded model.

    Declared per family (as TransformerLens' per-architecture component mappings do), so capture
    code never guesses: a wrong path fails with a message that names the family and the path.
    """

    text_model: str = "model.language_model"  # the decoder stack: has ``layers`` and the final norm
    layers: str = "layers"  # relative to text_model
    attention: str = "self_attn"  # relative to each decoder layer
    final_norm: str = "norm"  # relative to text_model
    lm_head: str = "lm_head"  # relative to the top-level model
    image_token_id: str = "image_token_id"  # attribute of the model's config
    mlp: str = "mlp"  # relative to each decoder layer
    embed_tokens: str = "embed_tokens"  # relative to text_model
    vision_tower: str = "model.vision_tower"  # relative to the top-level model; its output feeds the projector
    projector: str = "model.multi_modal_projector"  # relative to the top-level model; maps vision to text width

    def resolve(self, root: Any, path: str, family: str) -> Any:
        try:
            return attrgetter(path)(root)
        except AttributeError as exc:
            raise LayoutError(f"{family}: the adapter declares {path!r} but {type(root).__name__} has no such "
                              f"part ({exc})") from exc


class FamilyAdapter(Protocol):
    """One per family: the ``model_types`` it handles, where its parts live and how its image tokens lie."""

    family: str
    model_types: tuple[str, ...]
    components: Components
    token_order: str  # one line for captions: the order image tokens appear in the prompt

    def layout(self, config: Any, processor: Any, input_ids: np.ndarray, image: Any,
               inputs: Mapping[str, Any]) -> ImageLayout: ...


def uniform_boxes(rows: int, cols: int, region: tuple[float, float, float, float]) -> np.ndarray:
    """``[rows, cols, 4]`` boxes splitting ``region`` (x0, y0, x1, y1) into equal cells."""
    x0, y0, x1, y1 = region
    xs = np.linspace(x0, x1, cols + 1)
    ys = np.linspace(y0, y1, rows + 1)
    boxes = np.empty((rows, cols, 4), dtype=np.float64)
    boxes[..., 0] = xs[None, :-1]
    boxes[..., 2] = xs[None, 1:]
    boxes[..., 1] = ys[:-1, None]
    boxes[..., 3] = ys[1:, None]
    return boxes


def image_token_positions(input_ids: np.ndarray, token_id: int) -> np.ndarray:
    ids = np.asarray(input_ids).reshape(-1)
    return np.flatnonzero(ids == token_id)


def contiguous_runs(positions: np.ndarray) -> list[np.ndarray]:
    """Split sorted positions into runs of consecutive integers."""
    if len(positions) == 0:
        return []
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    return list(np.split(positions, breaks))


def config_value(config: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return default


def size_value(size: Any, key: str) -> Any:
    """Read ``key`` from a processor ``size`` that may be a dict or a ``SizeDict``."""
    if size is None:
        return None
    if isinstance(size, Mapping):
        return size.get(key)
    return getattr(size, key, None)
