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
from dashboard.compare.report import (
    categorical_columns,
    default_pairs,
    group_table,
    paired,
    paired_family,
    summarize,
    summary_table,
)
from dashboard.compare.results import CheckpointScores
from dashboard.compare.stats import detectable_sentence, format_p, verdict
from dashboard.compare.tables import format_ci_rows
from dashboard.evalset import EvalSet
from dashboard.formatting import fmt_fraction, markdown_safe
from dashboard.metrics import registered
from dashboard.ui.patching_view import why_button

MAX_SHOWN = 20


def _label(metric: str) -> str:
    known = registered().get(metric)
    return known.label if known is not None else metric


def _text_columns(metrics: Sequence[str]) -> dict[str, object]:
    config: dict[str, object] = {}
    for m in metrics:
        label = _label(m)
        config[m] = st.column_config.TextColumn(label)
        config[f"{m} ci95 low"] = st.column_config.TextColumn(f"{label} 95% CI low")
        config[f"{m} ci95 high"] = st.column_config.TextColumn(f"{label} 95% CI high")
    return config


INTERVALS_NOTE = ("Intervals: exact Clopper–Pearson for right/wrong metrics (exact match, contains) — honest at "
                  "0 % and 100 %; percentile bootstrap over examples for token F1 (2,000 resamples, seed 0). "
                  "When examples share an image, both are widened for the correlation (clustered by image).")


def uncertainty_section(evalset: EvalSet, scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> str | None:
    """Values with 95 % CIs and n, per checkpoint and per category; returns the group column.

    The per-group table is shown only when there are at least two groups (one group would repeat
    the overall table)."""
    st.subheader("Scores with 95% confidence intervals")
    columns = categorical_columns(evalset)
    group_by = st.selectbox("Break down by", columns, key="cmp.eval.group_by",
                            help="The eval set's task column, or another categorical column.") if columns else None
    summaries = [summarize(evalset, s, metrics, group_by=group_by) for s in scores.values()]
    st.dataframe(format_ci_rows(summary_table(summaries, metrics), metrics), hide_index=True,
                 key="cmp.eval.ci_table", column_config=_text_columns(metrics))
    clustered = sorted({e.clusters for s in summaries for e in s.metrics.values() if e.clusters is not None})
    note = INTERVALS_NOTE + (f" Here examples share images ({clustered[0]} images)." if clustered else "")
    st.caption(note)
    groups = {g for s in summaries for g in s.by_group}
    if group_by and len(groups) > 1:
        st.dataframe(format_ci_rows(group_table(summaries, metrics), metrics), hide_index=True,
                     key="cmp.eval.group_table", column_config=_text_columns(metrics))
    elif group_by:
        st.caption(f"Every scored example has the same {group_by}: no per-{group_by} table.")
    return group_by


def paired_section(scores: Mapping[str, CheckpointScores], metrics: Sequence[str]) -> tuple[str, str] | None:
    """Is B really better than A on the same examples? McNemar / paired bootstrap, in words, with the
    minimum detectable difference for this n and, when more than two checkpoints are compared,
    Holm-adjusted p-values over the pairs tested (the CLI's pairs plus the one chosen here).

    Returns the pair shown (for the export), None when there is none."""
    names = [n for n, s in scores.items() if s.n]
    if len(names) < 2:
        return None
    st.subheader("Paired comparison")
    c1, c2 = st.columns(2)
    a = c1.selectbox("Checkpoint A", names, index=0, key="cmp.eval.pair_a")
    b = c2.selectbox("Checkpoint B", names, index=len(names) - 1, key="cmp.eval.pair_b")
    if a == b:
        st.info("Pick two different checkpoints.")
        return None
    pairs = default_pairs(names)
    if (a, b) not in pairs:
        pairs.append((a, b))
    family = paired_family(scores, pairs, metrics)
    rows = []
    for m in metrics:
        r = paired(scores[a], scores[b], m)
        tested = next(f for f in family if (f["a"], f["b"], f["metric"]) == (a, b, m))
        row = {"metric": _label(m), "n (both scored)": r.n, "only A better": r.a_only,
               "only B better": r.b_only, "test": r.test, "p-value": format_p(r.p_value)}
        if tested["family_size"] > 1:  # several pairs tested: the verdict uses the adjusted p
            row[f"p (Holm, {tested['family_size']} pairs)"] = format_p(tested["p_holm"])
        row.update({"min. detectable difference": fmt_fraction(r.min_detectable),
                    "verdict": verdict(a, b, r.mean_a, r.mean_b, tested["p_holm"])})
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="cmp.eval.paired_table")
    first = rows[0]
    r0 = paired(scores[a], scores[b], metrics[0])  # the first metric's n and detectable difference
    st.markdown(f"**{escape_text(str(first['metric']))}: {escape_text(str(first['verdict']))}**")
    st.caption(detectable_sentence(r0.n, r0.min_detectable))
    if len(pairs) > 1:
        with st.expander(f"All {len(pairs)} pairs tested (Holm-adjusted within each metric)"):
            st.dataframe(pd.DataFrame([{"A": f["a"], "B": f["b"], "metric": _label(f["metric"]), "n": f["n"],
                                        "only A better": f["a_only"], "only B better": f["b_only"],
                                        "p-value": format_p(f["p_value"]), "p (Holm)": format_p(f["p_holm"])}
                                       for f in family]), hide_index=True, key="cmp.eval.family_table")
    return a, b


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
            why_button(earlier, later, ex)


def regression_section(evalset: EvalSet, scores: Mapping[str, CheckpointScores],
                       metrics: Sequence[str]) -> tuple[str, str, str] | None:
    """Examples right at an earlier checkpoint and wrong at a later one (and the reverse).

    Returns (earlier, later, metric) as shown (for the export), None when there is none."""
    names = [n for n, s in scores.items() if s.n]
    if len(names) < 2:
        return None
    st.subheader("Regressions")
    c1, c2, c3 = st.columns(3)
    earlier = c1.selectbox("Earlier", names, index=0, key="cmp.eval.reg_earlier")
    later = c2.selectbox("Later", names, index=len(names) - 1, key="cmp.eval.reg_later")
    metric = c3.selectbox("Metric", metrics, key="cmp.eval.reg_metric", format_func=lambda m: _label(m))
    if earlier == later:
        st.info("Pick two different checkpoints.")
        return None
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
    return earlier, later, metric
