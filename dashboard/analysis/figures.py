"""Plotly figures and exports of drift and patching (built here so they are tested without Streamlit).

The figures draw exactly the numbers of :meth:`PatchReport.to_dict` / :func:`drift_report`
— the same dictionaries the CLI prints — so page, export and CLI agree by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import plotly.graph_objects as go

from dashboard.analysis.drift import CheckpointDrift, heatmap_rows
from dashboard.analysis.patching import POSITIONS, PatchReport
from dashboard.formatting import plotly_text
from dashboard.provenance import provenance


def component_figure(report: Mapping[str, Any]) -> go.Figure:
    """Bars per component: share of the logit gap restored by patching its output, and what it introduces."""
    names = [plotly_text(c["component"]) for c in report["components"]]
    fig = go.Figure()
    fig.add_bar(x=names, y=[c["restored"] for c in report["components"]], name="restored (output patched)")
    fig.add_bar(x=names, y=[c["introduced"] for c in report["components"]],
                name="introduced (beyond its input)")
    fig.update_layout(barmode="group", height=320, margin={"t": 40, "b": 30, "l": 40, "r": 10},
                      title=plotly_text(f"Which component carries {report['b']['checkpoint']}'s answer "
                                        f"(1 = {report['b']['checkpoint']}, 0 = {report['a']['checkpoint']})"),
                      yaxis_title="share of the logit gap", legend_orientation="h")
    if report.get("direction") == "b-to-a":
        fig.update_layout(title=plotly_text(f"Which component carries {report['a']['checkpoint']}'s answer "
                                            f"(1 = {report['a']['checkpoint']}, 0 = {report['b']['checkpoint']})"))
    return fig


def layer_matrix(report: Mapping[str, Any]) -> tuple[list[str], list[str], list[list[float]]]:
    """``(rows "L0 attention" …, columns image/text/all, values)`` of the layer × position heatmap."""
    rows: dict[str, dict[str, float]] = {}
    for entry in report["layers"]:
        rows.setdefault(f"L{entry['layer']} {entry['site']}", {})[entry["positions"]] = entry["restored"]
    return list(rows), list(POSITIONS), [[row[p] for p in POSITIONS] for row in rows.values()]


def layer_heatmap(report: Mapping[str, Any]) -> go.Figure:
    """Decoder layer × site (rows) by token positions (columns): share of the logit gap restored."""
    names, columns, values = layer_matrix(report)
    column_labels = [f"image tokens ({report['n_image_tokens']})" if c == "image" else
                     f"text tokens ({report['n_text_tokens']})" if c == "text" else "all" for c in columns]
    fig = go.Figure(go.Heatmap(z=values, x=column_labels, y=names, colorscale="RdBu", zmid=0,
                               text=[[f"{v:.2f}" for v in row] for row in values], texttemplate="%{text}",
                               colorbar={"title": "restored"}))
    fig.update_layout(height=120 + 28 * len(names), margin={"t": 40, "b": 30, "l": 90, "r": 10},
                      title="Per decoder layer: attention / MLP output patched at these positions",
                      yaxis_autorange="reversed")
    return fig


def drift_heatmap(results: Sequence[CheckpointDrift]) -> go.Figure:
    """Module (rows, forward order) × checkpoint (columns): relative weight change."""
    modules, columns, values = heatmap_rows(results)
    against = {r.checkpoint: r.against for r in results}
    fig = go.Figure(go.Heatmap(z=values, x=[plotly_text(c) for c in columns], y=[plotly_text(m) for m in modules],
                               colorscale="Viridis", colorbar={"title": "‖Δθ‖/‖θ‖"},
                               customdata=[[plotly_text(against[c]) for c in columns] for _ in modules],
                               hovertemplate="%{y} at %{x} vs %{customdata}: %{z:.3g}<extra></extra>"))
    fig.update_layout(height=140 + 22 * len(modules), margin={"t": 40, "b": 30, "l": 200, "r": 10},
                      title="What moved: relative weight change per module", yaxis_autorange="reversed")
    return fig


def patch_export(report: PatchReport, run: Path, checkpoints: tuple[Path, Path],
                 eval_set: Path | None = None, roots: Sequence[Path] = ()) -> dict[str, Any]:
    """The "Why?" export: the report (as the CLI prints it) with the provenance of both checkpoints."""
    settings = {"analysis": "activation patching", "direction": report.direction, "greedy": True}
    return {"provenance": {side: provenance(run=run, checkpoint=path, settings=settings, eval_set=eval_set,
                                            roots=roots)
                           for side, path in zip(("a", "b"), checkpoints, strict=True)},
            "report": report.to_dict()}


def drift_export(run: Path, results: Sequence[CheckpointDrift], against: str) -> dict[str, Any]:
    """The "what moved" export: :func:`drift_report` (the CLI's JSON) with each checkpoint's provenance."""
    from dashboard.analysis.drift import drift_report

    settings = {"analysis": "weight drift", "against": against}
    return {**drift_report(run, results, against),  # type: ignore[arg-type]
            "provenance": [provenance(run=run, checkpoint=run / r.checkpoint, settings=settings) for r in results]}
