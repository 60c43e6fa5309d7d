"""Timeline section "What moved": module × checkpoint heatmap of relative weight change.

Computed on request (it reads every checkpoint's weights once, tensor by tensor) by
:func:`dashboard.analysis.drift.drift_over_checkpoints` — the code behind ``python -m dashboard
drift`` — and kept in the session per run, file signature and reference choice.
"""

from __future__ import annotations

import json
import zlib

import streamlit as st

from dashboard.analysis.drift import Against, CheckpointDrift, DriftError, drift_over_checkpoints
from dashboard.analysis.figures import drift_export, drift_heatmap
from dashboard.formatting import markdown_safe
from dashboard.runs.run import RunData
from dashboard.ui.resources import get_settings

K_RESULTS = "drift.results"  # {key: list[CheckpointDrift] | error text}
K_OPEN = "drift.open"  # the expander: open or closed
AGAINST_LABELS = {"previous": "the previous checkpoint", "first": "the first checkpoint"}


def render_drift(run: RunData) -> None:
    """The "What moved" expander of the Timeline page."""
    checkpoints = [c.path for c in run.checkpoints if c.loadable]
    if len(checkpoints) < 2:
        return
    # Drawn only while open: collapsed, its widgets were mounted on every page switch to the
    # Timeline for nothing (issue 35); the reference choice is kept while the page stays open.
    expander = st.expander("What moved: weight change per module", key=K_OPEN, on_change="rerun")
    if not expander.open:
        return
    with expander:
        k = f"drift.{zlib.crc32(str(run.path).encode()):08x}"
        against: Against = st.radio("Compare each checkpoint with", list(AGAINST_LABELS), horizontal=True,
                                    format_func=AGAINST_LABELS.__getitem__, key=f"{k}.against",
                                    persist_state="page")
        files = repr([(c.name, c.size_bytes, c.modified) for c in run.checkpoints])  # recompute when they change
        key = f"{k}.{against}.{zlib.crc32(files.encode()):08x}"
        results: dict[str, list[CheckpointDrift] | str] = st.session_state.setdefault(K_RESULTS, {})
        if key not in results:
            if not st.button(f"Compute for {len(checkpoints)} checkpoints", key=f"{k}.run",
                             help="Reads each checkpoint's weights once, one tensor at a time."):
                st.caption("‖θ_B − θ_A‖ / ‖θ_A‖ per module: vision-tower layers, projector, embeddings, each "
                           "decoder layer's attention, MLP and norms, final norm, LM head.")
                return
            with st.spinner("Reading weights…"):
                try:
                    results[key] = drift_over_checkpoints(checkpoints, list(get_settings().runs_roots), against)
                except DriftError as exc:
                    results[key] = str(exc)
        found = results[key]
        if isinstance(found, str):
            st.info(f"Weight drift unavailable: {markdown_safe(found)}")
            return
        if any(r.weights == "adapter" for r in found):
            st.caption("Adapter checkpoints: the change of the adapter's own tensors (not the merged weights).")
        st.plotly_chart(drift_heatmap(found), key=f"{k}.heatmap")
        top = [f"{r.checkpoint}: {r.ranked()[0].module}" for r in found if r.modules]
        st.caption(markdown_safe("Largest change — " + "; ".join(top)))
        st.download_button("Download drift (JSON, with provenance)",
                           json.dumps(drift_export(run.path, found, against), indent=1),
                           f"drift-{run.path.name}-{against}.json", "application/json", key=f"{k}.dl",
                           on_click="ignore")
