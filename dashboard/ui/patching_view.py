""""Why?" under a regression: activation patching of that example between its two checkpoints.

One button per regression card; a click runs :func:`dashboard.analysis.patching.patch_checkpoints`
on the pooled models (both held) and shows the two answers, the component bar chart, the
layer × position heatmap and a JSON export with the provenance of both checkpoints. Results
stay in the session, keyed by run, checkpoints and example, so reruns redraw without the models.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import streamlit as st

from dashboard.admission import Job
from dashboard.analysis.figures import component_figure, layer_heatmap, patch_export
from dashboard.analysis.patching import PatchError, PatchReport, patch_checkpoints
from dashboard.compare.diff import escape_text
from dashboard.evalset import EvalExample
from dashboard.formatting import markdown_safe
from dashboard.generation import GenerationInputError
from dashboard.models.loading import CheckpointLoadError
from dashboard.ui import state
from dashboard.ui.gate import admitted
from dashboard.ui.resources import get_pool, get_settings

K_RESULTS = "why.results"  # {key: PatchReport | error text}, plain key: survives reruns


def _key(run: Path, earlier: str, later: str, example_id: str) -> str:
    return f"{zlib.crc32(f'{run}|{earlier}|{later}|{example_id}'.encode()):08x}"


def _compute(run: Path, earlier: Path, later: Path, example: EvalExample) -> PatchReport | str:
    settings = get_settings()
    roots = [*settings.runs_roots, settings.data_dir]
    try:  # through the one admission gate, like every action that runs a model (public limits, fair turns)
        with admitted(Job("Activation patching", examples=1, checkpoints=2)), \
                get_pool().acquire(earlier) as a, get_pool().acquire(later) as b:
            return patch_checkpoints(a, b, [example], roots, example_id=example.id)
    except (PatchError, GenerationInputError, CheckpointLoadError, OSError) as exc:  # VisitorLimitError too
        return str(exc)


def why_button(earlier: str, later: str, example: EvalExample) -> None:
    """The "Why?" button of one regression card (earlier → later) and, once clicked, its answer."""
    run = state.selected_run()
    if run is None:
        return
    key = _key(run, earlier, later, example.id)
    results: dict[str, PatchReport | str] = st.session_state.setdefault(K_RESULTS, {})
    if key not in results:
        if not st.button("Why?", key=f"why.{key}",
                         help="Activation patching: which component and decoder layer of the later checkpoint "
                              "carry its different answer on this example (takes a few seconds)."):
            return
        with st.spinner("Patching the later checkpoint's activations into the earlier one…"):
            results[key] = _compute(run, run / earlier, run / later, example)
    result = results[key]
    if isinstance(result, str):
        st.info(markdown_safe(f"No explanation: {result}"))
        del results[key]  # not kept: a refusal (a limit, a busy model) may pass on the next click
        return
    render_report(result, run, (run / earlier, run / later), key)


def render_report(report: PatchReport, run: Path, checkpoints: tuple[Path, Path], key: str) -> None:
    """The two answers, the component bar chart, the layer × position heatmap and the export."""
    data = report.to_dict()
    st.html(f"<strong>{escape_text(report.a['checkpoint'])}</strong> answers “{escape_text(report.a['answer'])}”, "
            f"<strong>{escape_text(report.b['checkpoint'])}</strong> answers “{escape_text(report.b['answer'])}” "
            f"— first different token “{escape_text(report.a['token'])}” vs “{escape_text(report.b['token'])}” "
            f"(answer token {report.answer_position + 1}).")
    st.caption("Restored = share of the logit gap between the two answers' tokens that patching the later "
               "checkpoint's activation into the earlier one closes (1 = the later answer, 0 = the earlier). "
               "A component's output also carries every change upstream of it; 'introduced' is what it adds "
               f"beyond its input. Change enters at: {', '.join(report.component_ranking()[:2])}; "
               f"layers by restoration: {', '.join(f'L{i}' for i in report.layer_ranking())}.")
    st.plotly_chart(component_figure(data), key=f"why.components.{key}")
    st.plotly_chart(layer_heatmap(data), key=f"why.layers.{key}")
    export = patch_export(report, run, checkpoints)
    st.download_button("Download this explanation (JSON, with provenance)", json.dumps(export, indent=1),
                       f"why-{report.example}-{report.a['checkpoint']}-{report.b['checkpoint']}.json",
                       "application/json", key=f"why.dl.{key}", on_click="ignore")
