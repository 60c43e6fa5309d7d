"""Home: an overview of the selected run, or a way to build the demo run when there is none."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import streamlit as st

from dashboard.formatting import fmt_bytes, fmt_number, markdown_safe
from dashboard.metrics import format_metric
from dashboard.paths import PathOutsideRoots
from dashboard.ui import state
from dashboard.ui.resources import get_run, get_settings
from dashboard.ui.sidebar import best_checkpoint_path
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


def _render_no_run() -> None:
    from dashboard.demo.jobs import demo_build_job  # imports the trainer: only when there is no run

    root = Path(state.get(state.RUNS_ROOT) or get_settings().default_runs_root)
    job = demo_build_job(root / "demo")
    if job.status.state == "running" or st.session_state.get(K_WATCH):
        _watch_build(job)
        return
    st.info(f"No training run found under `{root}`. A run is a folder of `checkpoint-<step>/` "
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
    status = job.status
    if status.state == "running":
        st.progress(status.fraction, text=f"Building the demo run (one build for everyone on this server) — "
                                          f"{status.message}")
        return
    st.session_state.pop(K_WATCH, None)
    if status.state == "done":
        state.put(state.RUN_PATH, str(job.out_dir))
        state.put(state.CHECKPOINT_PATH, None)
    st.rerun(scope="app")


def _render_built(run_path: Path) -> None:
    """Right after this process built the demo run, say so to everyone viewing it."""
    from dashboard.demo.jobs import finished_build

    status = finished_build(run_path)
    if status is not None and status.report is not None:
        report = status.report
        st.success(f"Built the demo run: {report.n_checkpoints} checkpoints in {report.seconds:.0f} s "
                   f"(eval accuracy {report.first_eval_accuracy:.0%} → {report.last_eval_accuracy:.0%}).")


def _last_value(metrics: pd.DataFrame, name: str) -> float | None:
    rows = metrics[metrics["metric"] == name]
    return None if rows.empty else float(rows.sort_values("step")["value"].iloc[-1])


def _best_help(run, best_info) -> str:
    """Which checkpoint, by which metric, with which value: the trainer's own record, named."""
    best_metric = run.state.best_metric if run.state else None
    named = [] if run.config.empty else list(run.config[run.config["key"] == "metric_for_best_model"]["value"])
    metric = (f"{named[-1]} (metric_for_best_model)" if named
              else "metric_for_best_model (its name is not recorded in this run)")
    name = best_info.name if best_info else "none"
    return markdown_safe(f"{name}: {metric} = {fmt_number(best_metric)} "
                         "(trainer_state.json's best_metric and best_model_checkpoint)")


def _render_overview(run) -> None:
    st.subheader(f"Run {markdown_safe(run.name)}")
    st.caption(markdown_safe(run.path))
    if run.lfs_pointers:
        st.error(markdown_safe(f"{run.name} is a Git LFS pointer run: its files were cloned without their content. "
                       "Run `git lfs pull` in it."))
    for problem in run.problems:
        st.warning(markdown_safe(problem))
    best = best_checkpoint_path(run)
    cols = st.columns(4)
    cols[0].metric("Checkpoints", len(run.checkpoints))
    cols[1].metric("Global step", run.state.global_step if run.state and run.state.global_step else "—")
    best_info = next((c for c in run.checkpoints if str(c.path) == best), None)
    best_label = "—" if best_info is None else (f"step {best_info.step}" if best_info.step is not None
                                                 else markdown_safe(best_info.name))
    cols[2].metric("Best checkpoint", best_label, help=_best_help(run, best_info))
    cols[3].metric("Last eval accuracy", format_metric("eval_accuracy", _last_value(run.metrics, "eval_accuracy")))
    if run.checkpoints:
        table = pd.DataFrame([{
            "checkpoint": c.name,
            "step": c.step,
            "size": fmt_bytes(c.size_bytes),
            "saved": c.modified,
            "weights": c.weight_format,
            "adapter": c.is_adapter,
            "model type": c.model_type or "?",
            "best": str(c.path) == best,
            "problems": "; ".join(c.problems),
        } for c in run.checkpoints])
        st.dataframe(table, hide_index=True, width="stretch")
    else:
        st.info("No checkpoint folders in this run yet.")
    render_configuration(run)
