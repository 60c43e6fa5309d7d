"""Pointing score: does the attention peak for the answer token land inside the asked-about object?

The demo eval set knows every object's box. For each example we generate, take the first
generated token (the word that names the asked-about property), average its attention over the chosen layers
and heads, find the peak grid cell, and check whether that cell's centre (in original-image
pixels, through the adapter's geometry) lies inside the target object's box. The *chance* rate is
the share of cells whose centre is inside the box — what a peak picked at random would score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from dashboard.attention.adapters import GridView
from dashboard.compare.stats import proportion_ci
from dashboard.metrics import first_word_match


@dataclass(frozen=True)
class PointingRow:
    id: str
    output: str
    answer: str
    correct: bool  # first generated token == the reference's first word (the token the score looks at)
    hit: bool
    chance: float
    mass_in_box: float  # share of the map's (image) attention inside the box
    peak: tuple[int, int]
    per_layer_hit: tuple[bool, ...]
    answer_correct: bool | None = None  # exact match of the whole generated answer, when it was generated


@dataclass
class PointingReport:
    checkpoint: str
    rows: list[PointingRow]
    skipped: list[str]

    @property
    def n(self) -> int:
        return len(self.rows)

    def summary(self) -> dict[str, float | int | str]:
        return summarise(self.checkpoint, self.rows, len(self.skipped))

    def split_by_correctness(self) -> list[dict[str, float | int | str]]:
        """Pointing of right and of wrong answers separately: does the model look at the object when it is right?

        Rows without a whole-answer verdict fall back to the first-token verdict.
        """
        out = []
        for label, wanted in (("right", True), ("wrong", False)):
            rows = [r for r in self.rows if _verdict(r) is wanted]
            out.append({"answer": label, **summarise(self.checkpoint, rows, 0)})
        return out

    def to_dict(self) -> dict:
        return {"summary": self.summary(), "rows": [asdict(r) for r in self.rows], "skipped": self.skipped}

    def examples(self) -> list[dict[str, object]]:
        return per_example(self.rows)


def per_example(rows: Sequence[PointingRow]) -> list[dict[str, object]]:
    """One entry per scored example — hit, peak patch (row, column), attention mass in the box —
    so an analyst sees *which* examples a checkpoint misses (CLI ``--json`` and the page's export)."""
    return [{"id": r.id, "hit": r.hit, "peak_patch": list(r.peak), "mass_in_box": r.mass_in_box,
             "chance": r.chance, "first_token": r.output, "answer": r.answer,
             "answer_correct": _verdict(r)} for r in rows]


def _verdict(row: PointingRow) -> bool:
    return row.correct if row.answer_correct is None else row.answer_correct


def summarise(checkpoint: str, rows: Sequence[PointingRow], skipped: int = 0) -> dict[str, float | int | str]:
    """The per-checkpoint numbers the page, the bench and ``python -m dashboard pointing`` all print."""
    if not rows:
        return {"checkpoint": checkpoint, "n": 0, "skipped": skipped}
    per_layer = np.array([r.per_layer_hit for r in rows], dtype=float).mean(0)
    lo, hi = proportion_ci([float(r.hit) for r in rows]).ci95  # exact interval: honest with n = 3
    verdicts = [r.answer_correct for r in rows if r.answer_correct is not None]
    return {
        "checkpoint": checkpoint,
        "n": len(rows),
        "pointing": float(np.mean([r.hit for r in rows])),
        "pointing_ci95_low": lo,
        "pointing_ci95_high": hi,
        "chance": float(np.mean([r.chance for r in rows])),
        "mass_in_box": float(np.mean([r.mass_in_box for r in rows])),
        "accuracy": float(np.mean([r.correct for r in rows])),  # registry first_word_match: one token
        "exact_match": float(np.mean(verdicts)) if verdicts else float("nan"),  # the whole answer
        "distinct_peaks": len({r.peak for r in rows}),  # 1–2 = the peak ignores the image content
        "best_layer": int(per_layer.argmax()),
        "best_layer_pointing": float(per_layer.max()),
        "skipped": skipped,
    }


def inside(centres: np.ndarray, bbox: Sequence[float]) -> np.ndarray:
    """Boolean mask of points inside ``bbox`` = (x0, y0, x1, y1), x1/y1 exclusive."""
    x0, y0, x1, y1 = (float(v) for v in bbox)
    return (centres[..., 0] >= x0) & (centres[..., 0] < x1) & (centres[..., 1] >= y0) & (centres[..., 1] < y1)


def peak_cell(grid: np.ndarray) -> tuple[int, int]:
    r, c = np.unravel_index(int(np.argmax(grid)), grid.shape)
    return int(r), int(c)


def point_hit(grid: np.ndarray, view: GridView, bbox: Sequence[float]) -> bool:
    r, c = peak_cell(grid)
    return bool(inside(view.cell_centers()[r, c], bbox))


def chance_rate(view: GridView, bbox: Sequence[float]) -> float:
    return float(inside(view.cell_centers(), bbox).mean())


def mass_in_box(grid: np.ndarray, view: GridView, bbox: Sequence[float]) -> float:
    total = float(np.sum(grid))
    return float(np.sum(grid[inside(view.cell_centers(), bbox)]) / total) if total > 0 else 0.0


def score_example(example_id: str, layer_grids: np.ndarray, view: GridView, bbox: Sequence[float], output: str,
                  answer: str, layers: Sequence[int] | None = None, answer_correct: bool | None = None) -> PointingRow:
    """``layer_grids``: ``[layers, rows, cols]`` head-mean attention of the answer token per layer.

    ``output`` is the first generated token; ``answer_correct`` the verdict on the whole answer, if known.
    """
    chosen = list(range(len(layer_grids))) if layers is None else list(layers)
    grid = layer_grids[chosen].mean(0)
    return PointingRow(
        id=example_id, output=output, answer=answer, correct=bool(first_word_match(output, answer)),
        hit=point_hit(grid, view, bbox), chance=chance_rate(view, bbox), mass_in_box=mass_in_box(grid, view, bbox),
        peak=peak_cell(grid), per_layer_hit=tuple(point_hit(g, view, bbox) for g in layer_grids),
        answer_correct=answer_correct)

