"""Map a Plotly selection event from ``st.plotly_chart(on_select="rerun")`` to a checkpoint.

Kept out of the page because AppTest cannot click charts: this is the testable half of
"click a checkpoint marker -> open it in another page".
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.run import RunData

OPEN_TARGETS: dict[str, str] = {
    "Inference": "pages/1_Inference.py",
    "Comparison": "pages/2_Comparison.py",
    "Attention": "pages/4_Attention.py",
}


def _points(event: Any) -> list[Mapping]:
    if event is None:
        return []
    selection = event.get("selection") if isinstance(event, Mapping) else getattr(event, "selection", None)
    if selection is None:
        return []
    points = selection.get("points") if isinstance(selection, Mapping) else getattr(selection, "points", None)
    return [p for p in (points or []) if isinstance(p, Mapping)]


def _from_customdata(point: Mapping, run: RunData) -> CheckpointInfo | None:
    data = point.get("customdata")
    if isinstance(data, (list, tuple)) and data:
        data = data[0]
    return run.checkpoint(data) if isinstance(data, str) and data else None


SNAP_FRACTION = 0.015
"""A curve click this close to a checkpoint's step (share of the plotted step span, i.e. a few
pixels on a normal-width chart) selects that checkpoint."""


def checkpoint_from_selection(event: Any, run: RunData, x_axis: str = "step") -> CheckpointInfo | None:
    """The checkpoint a selection points at.

    Checkpoint markers and saved-score points carry the checkpoint name as ``customdata``.
    A click on a plain curve point (step axis) selects the checkpoint whose step is within
    :data:`SNAP_FRACTION` of it — so a click on a marker that lands on the curve under it still
    selects the marker's checkpoint — and otherwise the first checkpoint at or after it (the
    first one that contains that training state). ``None`` when nothing fits.
    """
    points = _points(event)
    for point in points:
        found = _from_customdata(point, run)
        if found:
            return found
    if x_axis != "step":
        return None
    steps = [c.step for c in run.checkpoints if c.step is not None]
    if not steps:
        return None
    logged = run.metrics["step"] if "step" in run.metrics and len(run.metrics) else []
    span = max([*steps, *logged]) - min([*steps, *logged])
    for point in points:
        x = point.get("x")
        if isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x):
            nearest = min(steps, key=lambda s: abs(s - x))
            if abs(nearest - x) <= SNAP_FRACTION * span:
                return run.checkpoint(nearest)
            later = [s for s in steps if s >= x]
            if later:
                return run.checkpoint(min(later))
    return None
