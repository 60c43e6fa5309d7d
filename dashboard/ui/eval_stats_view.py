"""Comparison page sections for an eval set: uncertainty, paired verdicts, regression list.

All numbers come from :mod:`dashboard.compare.report` / :mod:`dashboard.compare.regressions`
— the same objects ``python -m dashboard eval`` prints — so the page and the CLI agree.
Model output is only shown through :func:`dashboard.compare.diff.diff_html` (escaped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import streamlit as st

from dashboard.compare.diff import diff_html, escape_text
from dashboard.compare.regressions import Change, find_regressions
from dashboard.compare.report import categorical_columns, group_table, paired, summarize, summary_table
from dashboard.compare.results import CheckpointScores
from dashboard.compare.stats import format_p
from dashboard.evalset import EvalSet
from dashboard.formatting import markdown_safe
from dashboard.metrics import registered

MAX_SHOWN = 20


def _label(metric: str) -> str:
    known = registered().get(metric)
    return known.label if known is not None else metric


def _percent_columns(metrics: Sequence[str]) -> dict[str, object]:
    config: dict[str, object] = {}
    for m in metrics:
        label = _label(m)
        config[m] = st.column_config.NumberColumn(label, format="percent")
        config[f"{m} ci95 low"] = st.column_config.NumberColumn(f"{label} 95% CI low", format="percent")
        config[f"{m} ci95 high"] = st.column_config.NumberColumn(f"{label} 95% CI high", format="percent")
    return config


def uncertainty_section(evalset: EvalSet, scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> str | None:
    """Values with 95 % bootstrap CIs and n, per checkpoint and per category; returns the group column."""
    st.subheader("Scores with 95% confidence intervals")
    columns = categorical_columns(evalset)
    group_by = st.selectbox("Break down by", columns, key="cmp.eval.group_by",
                            help="The eval set's task column, or another categorical column.") if columns else None
    summaries = [summarize(evalset, s, metrics, group_by=group_by) for s in scores.values()]
    st.dataframe(pd.DataFrame(summary_table(summaries, metrics)), hide_index=True, key="cmp.eval.ci_table",
                 column_config=_percent_columns(metrics))
    st.caption("Intervals: percentile bootstrap over examples (2,000 resamples, seed 0).")
    if group_by:
        st.dataframe(pd.DataFrame(group_table(summaries, metrics)), hide_index=True, key="cmp.eval.group_table",
                     column_config=_percent_columns(metrics))
    return group_by


def paired_section(scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> None:
    """Is B really better than A on the same examples? McNemar / paired bootstrap, in words."""
    names = [n for n, s in scores.items() if s.n]
    if len(names) < 2:
        return
    st.subheader("Paired comparison")
    c1, c2 = st.columns(2)
    a = c1.selectbox("Checkpoint A", names, index=0, key="cmp.eval.pair_a")
    b = c2.selectbox("Checkpoint B", names, index=len(names) - 1, key="cmp.eval.pair_b")
    if a == b:
        st.info("Pick two different checkpoints.")
        return
    rows = []
    for m in metrics:
        r = paired(scores[a], scores[b], m)
        rows.append({"metric": _label(m), "n (both scored)": r.n, "only A better": r.a_only,
                     "only B better": r.b_only, "test": r.test, "p-value": r.p_value, "verdict": r.verdict})
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cmp.eval.paired_table",
                 column_config={"p-value": st.column_config.NumberColumn(format="%.4g")})
    first = rows[0]
    st.markdown(f"**{escape_text(str(first['metric']))}: {escape_text(str(first['verdict']))}**")


def _change_card(change: Change, earlier: str, later: str) -> None:
    ex = change.example
    with st.container(border=True):
        c1, c2 = st.columns([1, 4])
        c1.image(str(ex.image_path), width=96)
        with c2:
            st.html(f"<strong>{escape_text(ex.id)}</strong>{' · ' + escape_text(ex.task) if ex.task else ''}"
                    f" · prompt: {escape_text(ex.prompt)} · reference: <strong>{escape_text(ex.answer)}</strong>")
            st.html(f"{escape_text(earlier)} ({change.earlier_score:.2f}): "
                    + diff_html(ex.answer, change.earlier_output))
            st.html(f"{escape_text(later)} ({change.later_score:.2f}): " + diff_html(ex.answer, change.later_output))


def regression_section(evalset: EvalSet, scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> None:
    """Examples right at an earlier checkpoint and wrong at a later one (and the reverse)."""
    names = [n for n, s in scores.items() if s.n]
    if len(names) < 2:
        return
    st.subheader("Regressions")
    c1, c2, c3 = st.columns(3)
    earlier = c1.selectbox("Earlier", names, index=0, key="cmp.eval.reg_earlier")
    later = c2.selectbox("Later", names, index=len(names) - 1, key="cmp.eval.reg_later")
    metric = c3.selectbox("Metric", metrics, key="cmp.eval.reg_metric", format_func=lambda m: _label(m))
    if earlier == later:
        st.info("Pick two different checkpoints.")
        return
    found = find_regressions(evalset, scores[earlier], scores[later], metric)
    result = paired(scores[earlier], scores[later], metric)
    st.caption(f"{len(found.broke)} broke, {len(found.fixed)} fixed from {markdown_safe(earlier)} to "
               f"{markdown_safe(later)} "
               f"({format_p(result.p_value)}). Words in outputs not in the reference are marked, missing ones struck.")
    broke_tab, fixed_tab = st.tabs([f"Broke ({len(found.broke)})", f"Fixed ({len(found.fixed)})"])
    for tab, changes in ((broke_tab, found.broke), (fixed_tab, found.fixed)):
        with tab:
            if not changes:
                st.caption("None.")
            for change in changes[:MAX_SHOWN]:
                _change_card(change, earlier, later)
            if len(changes) > MAX_SHOWN:
                st.caption(f"… and {len(changes) - MAX_SHOWN} more (all are in the JSON export).")
