"""Comparison, eval set: score every chosen checkpoint on a set, with Run/Stop, tables and export.

The Run/Stop machine is :class:`dashboard.compare.eval_job.EvalJobState`; scores are saved
per chunk by ``dashboard.compare.runner`` so a stopped job continues where it stopped.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.admission import Job
from dashboard.compare.backends import default_backend
from dashboard.compare.diff import diff_html, escape_text, plain_html
from dashboard.compare.eval_job import EvalJobState, report_lines
from dashboard.compare.export import EvalView, checkpoint_metadata, eval_export, summary_csv_bytes
from dashboard.compare.results import migrate_legacy, safe_name
from dashboard.compare.runner import prepare_scores, run_eval, settings_dict
from dashboard.compare.tables import (
    FILTERS,
    accuracy_figure,
    example_frame,
    examples_display,
    filter_examples,
    summary_display,
    summary_frame,
)
from dashboard.evalset import EvalSet
from dashboard.formatting import markdown_safe
from dashboard.generation import GenerationSettings
from dashboard.metrics import default_metrics, get_metric
from dashboard.public import VisitorLimitError, public_mode, results_location, scrub_paths
from dashboard.runs.checkpoints import CheckpointInfo
from dashboard.runs.run import RunData
from dashboard.ui.cancel import session_gone_check
from dashboard.ui.comparison_single_view import export_buttons
from dashboard.ui.eval_stats_view import paired_section, regression_section, uncertainty_section
from dashboard.ui.evalset_input import choose_eval_set_or_upload, run_eval_sets
from dashboard.ui.gate import admitted, max_batch_size, max_examples
from dashboard.ui.resources import get_pool, get_settings
from dashboard.ui.visitor import current_visitor


def _job() -> EvalJobState:
    return EvalJobState(st.session_state)


def render_eval_mode(run: RunData, infos: list[CheckpointInfo], gen: GenerationSettings) -> None:
    settings = get_settings()
    whole = choose_eval_set_or_upload("cmp.eval", run.path)
    if whole is None:
        return
    for old in migrate_legacy(run.path, settings.data_dir, lambda: [whole]):
        if old.eval_set == whole.name:
            st.caption(markdown_safe(old.message))
    paths = [c.path for c in infos]
    shared = whole.path in run_eval_sets(run.path)
    home, data_dir = results_location(run.path, settings.data_dir, current_visitor(), shared)
    if public_mode():
        st.caption("Scores of the run's own eval set are shared: every visitor of this demo sees them (here and on "
                   "the Timeline). Scores of a set you upload are kept for you alone." if shared else
                   "Scores of this uploaded set are kept for you alone: no other visitor sees them.")
    c1, c2, c3 = st.columns([3, 1, 1])
    metrics = c1.multiselect("Metrics", list(default_metrics()), default=list(default_metrics()),
                             key="cmp.eval.metrics", format_func=lambda m: get_metric(m).label) or ["exact_match"]
    evalset = first_examples(whole, len(paths), c2)
    most = max_batch_size()
    batch = int(c3.number_input("Batch size", 1, most, min(8, most), key="cmp.eval.batch"))
    job = (str(run.path), evalset.name, str(evalset.path), evalset.content_hash, evalset.subset,
           tuple(str(p) for p in paths), gen.key(), batch)
    running = _job().is_running(job)
    b1, b2 = st.columns(2)
    b1.button("Run eval set", type="primary", disabled=running, on_click=lambda: _job().start(job),
              key="cmp.eval.run")
    b2.button("Stop", disabled=not running, on_click=lambda: _job().stop(), key="cmp.eval.stop",
              help="Keeps every chunk already scored; Run again continues where it stopped.")
    if running:
        bar = st.progress(0.0, text="starting")
        backend = default_backend(get_pool, settings)
        try:
            with admitted(Job.generating("Eval set", gen, len(evalset.examples), len(paths))):
                report = run_eval(None, home, paths, evalset, gen, data_dir=data_dir,
                                  batch_size=batch, max_image_pixels=settings.max_image_pixels, backend=backend,
                                  should_stop=session_gone_check(),
                                  on_progress=lambda d, t, m: bar.progress(
                                      d / max(t, 1), text=markdown_safe(f"{d}/{t} · {backend.name} · {m}")))
        except VisitorLimitError as exc:
            _job().abandon()
            st.warning(markdown_safe(f"Not run: {exc}"))
            return
        _job().finish(report)
        st.rerun()  # redraw with Run enabled / Stop disabled and the fresh scores
    stopped, timing, errors = report_lines(_job().report_for(job))
    if stopped:
        st.info(markdown_safe(stopped))
    if timing:
        st.caption(markdown_safe(timing))
    for error in errors:
        st.error(markdown_safe(error))
    scores = prepare_scores(home, paths, evalset, gen, data_dir)
    if not any(s.n for s in scores.values()):
        st.info("No saved scores for these checkpoints and settings yet: press **Run eval set**.")
        return
    identity_caption(evalset, scores)
    summary = summary_frame(scores, metrics)
    st.plotly_chart(accuracy_figure(summary, metrics), key="cmp.eval.chart")
    st.dataframe(summary_display(summary, metrics), hide_index=True, key="cmp.eval.summary")
    c1, c2 = st.columns(2)
    table_metric = c1.selectbox("Score shown per example", metrics, key="cmp.eval.table_metric",
                                format_func=lambda m: get_metric(m).label)
    mode = c2.radio("Examples", FILTERS, horizontal=True, key="cmp.eval.filter")
    frame = filter_examples(example_frame(evalset, scores, table_metric), mode)
    st.caption(f"{len(frame)} of {len(evalset.examples)} examples")
    st.dataframe(examples_display(frame, table_metric), hide_index=True, key="cmp.eval.table",
                 column_config={"image": st.column_config.ImageColumn("image", width="small")})
    example_detail(evalset, scores, list(frame["id"]) if not frame.empty else [])
    group_by = uncertainty_section(evalset, scores, metrics)
    pair = paired_section(scores, metrics)
    regression = regression_section(evalset, scores, metrics)
    view = EvalView(group_by=group_by, pair=pair, regression=regression, example_metric=table_metric,
                    example_filter=mode)
    data = eval_export(evalset, scores, metrics=metrics, settings=settings_dict(gen), reference=infos[-1].name,
                       checkpoints={c.name: checkpoint_metadata(c) for c in infos}, run=str(run.path), view=view)
    data = scrub_paths(data, settings.runs_roots)
    export_buttons(data, f"eval-{safe_name(run.name)}-{safe_name(evalset.name)}", "eval")
    st.download_button("Download summary CSV (CIs, per group, provenance)", summary_csv_bytes(data),
                       f"eval-summary-{safe_name(run.name)}-{safe_name(evalset.name)}.csv", "text/csv",
                       key="cmp.dl.eval.summary", on_click="ignore")


def first_examples(evalset: EvalSet, n_checkpoints: int, column: Any) -> EvalSet:
    """The first N examples of the set, N from a control that only offers what one job may run.

    Locally the default is the whole set; in public mode it is the largest count the examples × checkpoints
    cap allows, so Run works as offered. A subset is a result of its own (``EvalSet.first``, like the CLI's
    ``--limit N``); answers already generated for other subsets are reused.
    """
    total = len(evalset.examples)
    cap = max_examples(n_checkpoints, total)
    if not public_mode():
        n = int(column.number_input("First N examples", 0, total, 0, key="cmp.eval.limit",
                                    help="0 = the whole set. A subset is a result of its own (like the CLI's "
                                         "--limit N); answers already generated for other subsets are reused."))
    else:  # the key follows the cap, so a changed checkpoint count resets the control to what runs
        n = int(column.number_input("First N examples", 1, cap, cap, key=f"cmp.eval.limit.{cap}",
                                    help=f"This public demo runs at most {cap} examples × {n_checkpoints} "
                                         "checkpoint(s) per job."))
    return evalset.first(n) if n else evalset


def identity_caption(evalset: EvalSet, scores: dict) -> None:
    """Which result this is: the eval file's sha256, the subset and each checkpoint's result key
    (the ``identity.key`` of ``python -m dashboard eval --json`` for the same evaluation)."""
    keys = " · ".join(f"{name} {s.identity.key[:12]}" for name, s in scores.items())
    st.caption(markdown_safe(f"Eval file sha256 {evalset.content_hash[:12]} · subset {evalset.subset} "
                             f"(n = {len(evalset.examples)}) · result keys: {keys}"))


def example_detail(evalset: EvalSet, scores: dict, ids: list[str]) -> None:
    """One example's outputs side by side, diffed against a chosen reference checkpoint."""
    if not ids:
        return
    with st.expander("Inspect one example"):
        by_id = evalset.by_id()
        c1, c2 = st.columns(2)
        ex_id = c1.selectbox("Example", ids, key="cmp.eval.detail_id")
        names = list(scores)
        reference = c2.selectbox("Reference", names, index=len(names) - 1, key="cmp.eval.detail_ref")
        ex = by_id[ex_id]
        st.image(str(ex.image_path), width=128)
        st.text(f"prompt: {ex.prompt}\nanswer: {ex.answer}")
        rows = {name: {str(r["id"]): r for r in s.rows}.get(ex_id) for name, s in scores.items()}
        ref_text = (rows.get(reference) or {}).get("output", "")
        for column, (name, row) in zip(st.columns(len(rows)), rows.items(), strict=True):
            with column:
                st.html(f"<strong>{escape_text(name)}</strong>")
                if row is None:
                    st.caption("not scored yet")
                    continue
                text = str(row.get("output", ""))
                st.html(plain_html(text) if name == reference else diff_html(ref_text, text))
