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
class ImageLayout:
    """All views of one image in one prompt; ``views[0]`` is the one shown by default."""

    family: str
    image_size: tuple[int, ...]  # (width, height) of the original image
    views: tuple[GridView, ...]
    image_positions: np.ndarray  # every image-token position in the prompt, sorted
    note: str = ""

    @property
    def primary(self) -> GridView:
        return self.views[0]

    def view(self, name: str) -> GridView:
        for view in self.views:
            if view.name == name:
                return view
        raise KeyError(f"no view {name!r}; have {[v.name for v in self.views]}")

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
