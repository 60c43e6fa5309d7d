"""Home: an overview of the selected run, or a way to build the demo run when there is none."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from dashboard.formatting import fmt_bytes, fmt_number, markdown_safe
from dashboard.metrics import format_metric
from dashboard.paths import PathOutsideRoots
from dashboard.public import shown_path
from dashboard.runs.discovery import discover_within
from dashboard.runs.overview import runs_table
from dashboard.runs.run import RunData
from dashboard.timeline.scores import saved_scores
from dashboard.timeline.series import checkpoint_table, metric_groups, plot_metrics
from dashboard.ui import state
from dashboard.ui.resources import get_run, get_settings
from dashboard.ui.summaries_panel import render_configuration

if TYPE_CHECKING:
    from dashboard.demo.jobs import DemoBuildJob

PAGES = {
    "pages/1_Inference.py": "Inference — image + prompt → streamed answer, history",
    "pages/2_Comparison.py": "Comparison — checkpoints side by side, eval-set accuracy",
    "pages/3_Timeline.py": "Timeline — training curves with checkpoint markers",
    "pages/4_Attention.py": "Attention — where the model looked, per token/layer/head",
}


def render_home() -> None:
    st.title("VLM checkpoint lab")
    st.caption("Inspect a vision-language model's training run checkpoint by checkpoint: "
               "ask it questions, compare checkpoints, follow the curves and see where it looked.")
    _autostart_demo_build()
    run_path = state.selected_run()
    if run_path is None:
        _render_no_run()
        return
    try:
        run = get_run(run_path)
    except (PathOutsideRoots, FileNotFoundError, NotADirectoryError) as exc:
        st.error(markdown_safe(f"Cannot open this run: {exc}"))
        return
    _render_built(run_path)
    _render_overview(run)
    st.subheader("Open a page")
    for page, label in PAGES.items():
        st.page_link(page, label=label)


K_WATCH = "home.build_watch"
K_SEEN = "home.build_checkpoints"  # checkpoints of the building demo this session has drawn


def _demo_dir() -> Path:
    return Path(state.get(state.RUNS_ROOT) or get_settings().default_runs_root) / "demo"


def _autostart_demo_build() -> None:
    """Autobuild on (launch.sh, or a Space: ``autobuild_enabled``): the first view starts the demo build when
    it is missing or unfinished, so nobody waits for training (one build per process, see ``demo/jobs.py``)."""
    from dashboard.demo.jobs import autobuild_enabled, ensure_demo_build

    if autobuild_enabled():
        ensure_demo_build(_demo_dir())


def _render_no_run() -> None:
    from dashboard.demo.jobs import demo_build_job  # imports the trainer: only when there is no run

    root = Path(state.get(state.RUNS_ROOT) or get_settings().default_runs_root)
    job = demo_build_job(root / "demo")
    if job.status.state == "running" or st.session_state.get(K_WATCH):
        _watch_build(job)
        return
    st.info(f"No training run found under `{shown_path(root, ())}`. A run is a folder of `checkpoint-<step>/` "
            "folders as written by Hugging Face `Trainer` (see README).")
    st.markdown("Build the **demo run**: a tiny LLaVA trained here with `transformers.Trainer` on a "
                "synthetic shapes task (a few minutes on 2 CPU cores).")
    failed = job.status
    if failed.state == "failed":
        st.error(markdown_safe(f"The last demo build failed and left nothing behind: {failed.error}"))
    if st.button("Build the demo run", type="primary", key="home.build"):
        job.start()  # False when another session's build is already running: then watch that one
        st.session_state[K_WATCH] = True
        _watch_build(job)


@st.fragment(run_every=1.0)
def _watch_build(job: DemoBuildJob) -> None:
    """Poll the process-wide build: every session sees the same progress; at the end show the run."""
    from dashboard.ui.live_scoring_view import follow_demo_build

    status = job.status
    if status.state == "running":
        st.progress(status.fraction, text=f"Building the demo run (one build for everyone on this server) — "
                                          f"{status.message}")
        n_checkpoints = sum(1 for p in job.out_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
        st.caption("Checkpoints appear in the sidebar and on the Timeline as they are saved, and are scored "
                   f"live on the demo's eval set ({n_checkpoints} saved so far).")
        follow_demo_build(job.out_dir)
        if st.session_state.get(K_SEEN) != n_checkpoints:  # a new checkpoint: redraw sidebar and overview
            st.session_state[K_SEEN] = n_checkpoints
            st.rerun(scope="app")
        return
    st.session_state.pop(K_WATCH, None)
    if status.state == "done":
        state.put(state.RUN_PATH, str(job.out_dir))
        state.put(state.CHECKPOINT_PATH, None)
    st.rerun(scope="app")


def _render_built(run_path: Path) -> None:
    """A demo run being built shows the build's progress; an interrupted one says so and offers to resume;
    right after this process built it, say so to everyone viewing it."""
    from dashboard.demo.jobs import demo_build_job, finished_build
    from dashboard.demo.marker import read_marker

    marker = read_marker(run_path)
    if marker is not None and marker.get("complete") is not True:
        job = demo_build_job(run_path)
        if job.status.state == "running" or st.session_state.get(K_WATCH):
            _watch_build(job)
            return
        n_checkpoints = sum(1 for p in run_path.glob("checkpoint-*") if (p / "trainer_state.json").is_file())
        st.warning(f"This demo run is unfinished: its build stopped after {n_checkpoints} checkpoint(s) "
                   "(`\"complete\": false` in demo_run.json), so it is not the finished demo. Building again "
                   "resumes from its last checkpoint.")
        if job.status.state == "failed":
            st.error(f"The build failed: {markdown_safe(job.status.error)}")
        if st.button("Resume the demo build", type="primary", key="home.resume"):
            job.start()
            st.session_state[K_WATCH] = True
            st.rerun()
        return
    status = finished_build(run_path)
    if status is not None and status.report is not None:
        report = status.report
        resumed = f", resumed from {report.resumed_from}" if report.resumed_from else ""
        st.success(f"Built the demo run: {report.n_checkpoints} checkpoints in {report.seconds:.0f} s{resumed} "
                   f"(eval accuracy {report.first_eval_accuracy:.0%} → {report.last_eval_accuracy:.0%}).")


def _last_value(metrics: pd.DataFrame, name: str) -> float | None:
    rows = metrics[metrics["metric"] == name]
    return None if rows.empty else float(rows.sort_values("step", kind="stable")["value"].iloc[-1])


def checkpoint_scores(run: RunData, saved: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per checkpoint: the eval metrics logged at its step (the surviving run's, as the Timeline's
    markers show them) and the eval-set scores saved by Comparison, one column each."""
    evals = metric_groups(plot_metrics(run))["eval"]
    table = checkpoint_table(run, evals)[["checkpoint", *evals]] if run.checkpoints else pd.DataFrame()
    if saved is not None and not saved.empty and len(table):
        saved = saved.assign(column=saved["eval_set"].astype(str) + " · " + saved["metric"].astype(str) + " (saved)")
        wide = saved.pivot_table(index="checkpoint", columns="column", values="value", aggfunc="last")
        table = table.merge(wide, how="left", left_on="checkpoint", right_index=True)
    return table


def _best_help(run, best_info) -> str:
    """Which checkpoint, by which metric, with which value: the trainer's own record, named."""
    best_metric = run.state.best_metric if run.state else None
    named = [] if run.config.empty else list(run.config[run.config["key"] == "metric_for_best_model"]["value"])
    metric = (f"{named[-1]} (metric_for_best_model)" if named
              else "metric_for_best_model (its name is not recorded in this run)")
    name = best_info.name if best_info else "none"
    return markdown_safe(f"{name}: {metric} = {fmt_number(best_metric)} "
                         f"(trainer_state.json's best_metric and best_model_checkpoint; {run.best.reason})")


def _render_overview(run: RunData) -> None:
    st.subheader(f"Run {markdown_safe(run.name)}")
    st.caption(markdown_safe(shown_path(run.path, get_settings().runs_roots)))
    if run.lfs_pointers:
        st.error(markdown_safe(f"{run.name} is a Git LFS pointer run: its files were cloned without their content. "
                       "Run `git lfs pull` in it."))
    for notice in run.restart_notices():
        st.info(markdown_safe(f"Resumed training — {notice}. The Timeline can draw each attempt."))
    for problem in run.problems:
        st.warning(markdown_safe(problem))
    best_info = run.best_checkpoint
    cols = st.columns(4)
    cols[0].metric("Checkpoints", len(run.checkpoints))
    cols[1].metric("Global step", run.state.global_step if run.state and run.state.global_step else "—")
    best_label = "—" if best_info is None else (f"step {best_info.step}" if best_info.step is not None
                                                 else markdown_safe(best_info.name))
    cols[2].metric("Best checkpoint", best_label, help=_best_help(run, best_info))
    cols[3].metric("Last eval accuracy",
                   format_metric("eval_accuracy", _last_value(run.preferred_metrics, "eval_accuracy")))
    st.caption(markdown_safe(f"Best checkpoint: {best_info.name if best_info else 'none'} — {run.best.reason}."))
    if run.checkpoints:
        saved, _ = saved_scores(run.path, get_settings().data_dir)
        scores = checkpoint_scores(run, saved)
        best_name = best_info.name if best_info else None
        table = pd.DataFrame([{
            "checkpoint": c.name,
            "step": c.step,
            "size": fmt_bytes(c.size_bytes),
            "saved": c.modified,
            "weights": c.weight_format,
            "adapter": c.is_adapter,
            "model type": c.model_type or "?",
            "best": c.name == best_name,
            "problems": "; ".join(c.problems),
        } for c in run.checkpoints])
        if len(scores.columns) > 1:
            table = table.merge(scores, how="left", on="checkpoint")
        st.dataframe(table, hide_index=True, width="stretch")
        if len(scores.columns) > 1:
            st.caption("Score columns: eval metrics logged at each checkpoint's step, and eval-set scores saved "
                       "by Comparison (… (saved)).")
    else:
        st.info("No checkpoint folders in this run yet.")
    _render_results(run)
    render_configuration(run)
    _render_runs_table(run)


def _render_results(run: RunData) -> None:
    """End-of-run numbers (result files, the final summary entry), with the file each came from."""
    if run.results.empty:
        return
    st.subheader("Results")
    st.dataframe(run.results, hide_index=True, width="stretch",
                 column_config={"value": st.column_config.NumberColumn(format="%.6g")})


K_RUN_FILTER = "home.runs_filter"
K_RUNS_TABLE = "home.runs_table"


def _render_runs_table(run: RunData) -> None:
    """Every run under the root: sortable (click a header), filterable, a row click opens it."""
    settings = get_settings()
    root = Path(state.get(state.RUNS_ROOT) or settings.default_runs_root)
    listings = discover_within(root, settings.runs_roots).runs
    if len(listings) < 2:
        return
    st.subheader(f"All runs ({len(listings)})")
    needle = st.text_input("Filter runs by name", key=K_RUN_FILTER, placeholder="e.g. lr3e-4 or projA/")
    table = runs_table(listings, settings.runs_roots)
    if needle:
        table = table[table["run"].str.contains(needle, case=False, regex=False)].reset_index(drop=True)
    event = st.dataframe(table, hide_index=True, width="stretch", key=K_RUNS_TABLE, on_select="rerun",
                         selection_mode="single-row",
                         column_config={"run": st.column_config.TextColumn(width="large"),
                                        "best metric": st.column_config.NumberColumn(format="%.6g")})
    st.caption("Newest first; click a column header to sort, a row to open that run.")
    rows = event.selection.rows if event is not None else []
    if rows:
        name = str(table["run"].iat[rows[0]])
        picked = next((r for r in listings if r.name == name), None)
        if picked is not None and picked.path.resolve() != run.path.resolve():
            state.put(state.RUN_PATH, str(picked.path.resolve()))
            state.put(state.CHECKPOINT_PATH, None)
            st.rerun()
