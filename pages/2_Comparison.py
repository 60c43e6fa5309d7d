"""Comparison: one example, or a whole eval set, across 2–8 checkpoints of the selected run.

Thin page: running, caching, scoring, diffing, saving and exporting live in ``dashboard.compare``.
Model output is only ever shown through ``dashboard.compare.diff`` (escaped HTML) or as plain
text in tables.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.compare.diff import diff_html, escape_text, plain_html, similarity, style_block
from dashboard.compare.export import (
    checkpoint_metadata,
    eval_export,
    single_export,
    to_csv_bytes,
    to_json_bytes,
)
from dashboard.compare.results import safe_name
from dashboard.compare.runner import (
    SingleOutput,
    cache_key,
    compare_single,
    prepare_scores,
    run_eval,
    settings_dict,
)
from dashboard.compare.selection import MAX_CHECKPOINTS, MIN_CHECKPOINTS, default_checkpoints, merge_selection
from dashboard.compare.tables import (
    FILTERS,
    accuracy_figure,
    example_frame,
    examples_display,
    filter_examples,
    summary_display,
    summary_frame,
)
from dashboard.evalset import EvalSet, EvalSetError, find_eval_sets, parse_eval_set
from dashboard.formatting import fmt_rate, fmt_seconds
from dashboard.generation import GenerationSettings
from dashboard.history import HistoryError
from dashboard.images import ImageError
from dashboard.metrics import default_metrics, get_metric
from dashboard.paths import PathOutsideRoots
from dashboard.public import VisitorLimitError
from dashboard.runs.run import RunData, RunNotFoundError
from dashboard.ui import state
from dashboard.ui.image_input import PickedImage, eval_set_for, pick_image, picked_from_bytes
from dashboard.ui.resources import get_history, get_pool, get_run, get_settings
from dashboard.ui.visitor import visitor_limits
from dashboard.ui.widgets import generation_settings_form

K_CKPTS = "cmp.checkpoints"
K_CKPTS_RUN = "cmp.checkpoints_run"
K_MODE = "cmp.mode"
K_CACHE = "cmp.cache"
K_FAILED = "cmp.failed"
K_PROMPT = "cmp.prompt"
K_PROMPT_SRC = "cmp.prompt_source"
K_JOB = "cmp.eval.job"
K_REPORT = "cmp.eval.report"
MODES = ["One example", "Eval set"]

def choose_checkpoints(run: RunData) -> list:
    """2–8 loadable checkpoints; default first, middle, best, last (or those carried from another page)."""
    loadable = [c for c in run.checkpoints if c.loadable]
    names = [c.name for c in loadable]
    best = run.best_checkpoint.name if run.best_checkpoint else None
    if st.session_state.get(K_CKPTS_RUN) != str(run.path) or any(n not in names for n in
                                                                    st.session_state.get(K_CKPTS, [])):
        carried = [Path(p).name for p in state.selected_compare_checkpoints()]
        st.session_state[K_CKPTS] = merge_selection(names, carried, default_checkpoints(names, best))
        st.session_state[K_CKPTS_RUN] = str(run.path)
    elif K_CKPTS not in st.session_state:  # widget key dropped after visiting another page
        carried = [Path(p).name for p in state.selected_compare_checkpoints()]
        st.session_state[K_CKPTS] = merge_selection(names, carried, default_checkpoints(names, best))

    def label(name: str) -> str:
        return f"{name} (best)" if name == best else name

    chosen = st.multiselect(f"Checkpoints ({MIN_CHECKPOINTS}–{MAX_CHECKPOINTS})", names, key=K_CKPTS,
                            max_selections=MAX_CHECKPOINTS, format_func=label,
                            help="Defaults to the first, middle, best and last checkpoint of the run.")
    by_name = {c.name: c for c in loadable}
    infos = [by_name[n] for n in names if n in chosen]  # always in step order
    state.put(state.COMPARE_CHECKPOINTS, [str(c.path) for c in infos])
    return infos


# ------------------------------------------------------------------------- one example
def pick_from_history() -> tuple[PickedImage | None, str]:
    """An earlier generation's image and prompt from the persistent history."""
    try:
        records = get_history().list(limit=100)
    except HistoryError as exc:
        st.error(f"History is unavailable: {exc}")
        return None, ""
    if not records:
        st.info("The history is empty: generations made on the Inference page appear here.")
        return None, ""
    by_id = {r.id: r for r in records}
    chosen = st.selectbox("History item", list(by_id), key="cmp.history_id",
                          format_func=lambda i: f"#{i} · {Path(by_id[i].checkpoint).name} · {by_id[i].prompt[:60]}")
    try:
        record = get_history().get(int(chosen))
    except HistoryError as exc:
        st.error(f"History is unavailable: {exc}")
        return None, ""
    if record is None:
        st.warning("That history item was deleted.")
        return None, ""
    if record.image is None:
        st.warning("This item's image was too large to store; upload it instead.")
        return None, record.prompt
    try:
        picked = picked_from_bytes(record.image, record.image_name or f"history-{record.id}.png")
    except ImageError as exc:
        st.error(f"Stored image of #{record.id} cannot be decoded: {exc}")
        return None, record.prompt
    st.image(picked.image, caption=f"#{record.id} · {picked.name}", width=256)
    return picked, record.prompt


def prompt_input(source_id: str, suggested: str) -> str:
    """Prompt box that takes the example's/history item's prompt when the source changes."""
    if st.session_state.get(K_PROMPT_SRC) != source_id:
        st.session_state[K_PROMPT_SRC] = source_id
        if suggested:
            st.session_state[K_PROMPT] = suggested
    return st.text_area("Prompt", key=K_PROMPT, height=80, placeholder="e.g. what colour is the square ?")


def render_outputs(outputs: list[SingleOutput], reference: str, show_deleted: bool) -> None:
    ref_text = next((o.text for o in outputs if o.name == reference and o.ok), "")
    per_row = min(4, len(outputs))
    for start in range(0, len(outputs), per_row):
        for column, out in zip(st.columns(per_row), outputs[start:start + per_row], strict=False):
            with column, st.container(border=True):
                tag = " · reference" if out.name == reference else ""
                st.html(f"<strong>{escape_text(out.name)}</strong>{tag}")
                if not out.ok:
                    st.error(out.error or "failed")
                    continue
                body = plain_html(out.text) if out.name == reference else diff_html(ref_text, out.text,
                                                                                     show_deleted=show_deleted)
                st.html(body)
                st.caption(f"{out.output_tokens} tokens out · {out.prompt_tokens} in · "
                           f"decode {fmt_rate(out.tokens_per_s)} · first token {fmt_seconds(out.ttft_s)}")
                st.caption(f"end to end {fmt_seconds(out.generation_s)} · load {fmt_seconds(out.load_s)}"
                           + (" · cached" if out.cached else "")
                           + ("" if out.name == reference else f" · {similarity(ref_text, out.text):.0%} similar"))


def single_example(run: RunData, infos: list, gen: GenerationSettings) -> None:
    source = st.radio("Input", ["Image", "History item"], horizontal=True, key="cmp.input")
    if source == "Image":
        picked = pick_image("cmp.img", run.path)
        suggested = picked.example.prompt if picked is not None and picked.example is not None else ""
        source_id = f"img:{picked.digest if picked else ''}:{picked.example.id if picked and picked.example else ''}"
    else:
        picked, suggested = pick_from_history()
        source_id = f"hist:{st.session_state.get('cmp.history_id')}"
    prompt = prompt_input(source_id, suggested)
    if picked is None:
        st.info("Choose an image (upload, demo gallery or history) to compare outputs.")
        return
    if not prompt.strip():
        st.info("Enter a prompt.")
        return
    cache: dict = st.session_state.setdefault(K_CACHE, {})
    failed: dict = st.session_state.setdefault(K_FAILED, {})
    keys = {c.name: cache_key(c.path, picked.digest, prompt, gen) for c in infos}
    missing = [c for c in infos if keys[c.name] not in cache]
    label = f"Run {len(missing)} checkpoint(s)" if missing else "All outputs cached"
    if st.button(label, type="primary", disabled=not missing, key="cmp.run_single"):
        bar = st.progress(0.0, text="starting")
        try:
            with visitor_limits(gen, sweep=(1, len(missing))):
                outs = compare_single(get_pool(), [c.path for c in missing], picked.image, prompt, gen, cache,
                                      image_digest=picked.digest, on_progress=lambda d, t, m: bar.progress(
                                          d / max(t, 1), text=f"{d}/{t} · {m}"))
        except VisitorLimitError as exc:
            st.warning(f"Not run: {exc}")
            return
        for out in outs:
            failed.pop(keys[out.name], None)
            if not out.ok:
                failed[keys[out.name]] = out
        st.rerun()  # redraw the button and the columns from the cache
    outputs: list[SingleOutput] = [cache.get(keys[c.name]) or failed.get(keys[c.name]) for c in infos]
    outputs = [o for o in outputs if o is not None]
    if not outputs:
        return
    ok_names = [o.name for o in outputs if o.ok]
    if not ok_names:
        for out in outputs:
            st.error(f"{out.name}: {out.error}")
        return
    c1, c2 = st.columns([3, 1])
    reference = c1.selectbox("Reference checkpoint (diffs are against its output)", ok_names,
                             index=len(ok_names) - 1, key="cmp.reference")
    show_deleted = c2.toggle("Show removed words", value=True, key="cmp.show_deleted")
    render_outputs(outputs, reference, show_deleted)
    meta = {c.name: checkpoint_metadata(c) for c in infos}
    data = single_export(outputs, reference=reference, prompt=prompt, image_name=picked.name,
                         image_digest=picked.digest, settings=settings_dict(gen), checkpoints=meta)
    export_buttons(data, f"comparison-{safe_name(run.name)}", "single")


def export_buttons(data: dict, stem: str, key: str) -> None:
    c1, c2 = st.columns(2)
    c1.download_button("Download JSON", to_json_bytes(data), f"{stem}.json", "application/json",
                       key=f"cmp.dl.{key}.json", on_click="ignore")
    c2.download_button("Download CSV", to_csv_bytes(data), f"{stem}.csv", "text/csv",
                       key=f"cmp.dl.{key}.csv", on_click="ignore")


# ------------------------------------------------------------------------- eval set
def choose_eval_set(run: RunData) -> EvalSet | None:
    settings = get_settings()
    sets = find_eval_sets(run.path)
    options = (["Run's eval set"] if sets else []) + ["Upload JSONL/CSV"]
    source = st.radio("Eval set source", options, horizontal=True, key="cmp.eval.source")
    try:
        if source == "Run's eval set":
            path = st.selectbox("Eval set", sets, key="cmp.eval.file", format_func=lambda p: p.name)
            evalset = eval_set_for(Path(path))
        else:
            upload = st.file_uploader("Eval set (columns: image, prompt, answer; optional id, task)",
                                      type=["jsonl", "csv"], key="cmp.eval.upload",
                                      help="Relative image paths are taken relative to the selected run folder; "
                                           "images must lie inside the runs roots.")
            if upload is None:
                return None
            evalset = parse_eval_set(upload.getvalue(), name=Path(upload.name).stem, path=Path(upload.name),
                                     base_dir=run.path, roots=settings.runs_roots,
                                     fmt=Path(upload.name).suffix.lower().lstrip("."))
    except (EvalSetError, OSError) as exc:
        st.error(f"Cannot use this eval set: {exc}")
        return None
    st.caption(f"**{len(evalset.examples)}** usable examples in {evalset.name}")
    if evalset.problems:
        with st.expander(f"{len(evalset.problems)} bad row(s) skipped", expanded=not evalset.examples):
            st.text("\n".join(evalset.problems[:200]))
    return evalset if evalset.examples else None


def _start(job: tuple) -> None:
    st.session_state[K_JOB] = job
    st.session_state.pop(K_REPORT, None)


def _stop() -> None:
    st.session_state[K_JOB] = None
    st.session_state[K_REPORT] = {"stopped": True}


def eval_mode(run: RunData, infos: list, gen: GenerationSettings) -> None:
    settings = get_settings()
    evalset = choose_eval_set(run)
    if evalset is None:
        return
    c1, c2 = st.columns([3, 1])
    metrics = c1.multiselect("Metrics", list(default_metrics()), default=list(default_metrics()),
                             key="cmp.eval.metrics", format_func=lambda m: get_metric(m).label) or ["exact_match"]
    batch = int(c2.number_input("Batch size", 1, 64, 8, key="cmp.eval.batch"))
    paths = [c.path for c in infos]
    job = (str(run.path), evalset.name, str(evalset.path), tuple(str(p) for p in paths), gen.key(), batch)
    running = st.session_state.get(K_JOB) == job
    b1, b2 = st.columns(2)
    b1.button("Run eval set", type="primary", disabled=running, on_click=_start, args=(job,), key="cmp.eval.run")
    b2.button("Stop", disabled=not running, on_click=_stop, key="cmp.eval.stop",
              help="Keeps every chunk already scored; Run again continues where it stopped.")
    if running:
        bar = st.progress(0.0, text="starting")
        try:
            with visitor_limits(gen, sweep=(len(evalset.examples), len(paths))):
                report = run_eval(get_pool(), run.path, paths, evalset, gen, data_dir=settings.data_dir,
                                  batch_size=batch, max_image_pixels=settings.max_image_pixels,
                                  on_progress=lambda d, t, m: bar.progress(d / max(t, 1), text=f"{d}/{t} · {m}"))
        except VisitorLimitError as exc:
            st.session_state[K_JOB] = None
            st.warning(f"Not run: {exc}")
            return
        st.session_state[K_JOB] = None
        st.session_state[K_REPORT] = {"stopped": report.stopped, "computed": report.computed,
                                      "reused": report.reused, "load_s": report.load_s,
                                      "generation_s": report.generation_s, "errors": report.errors}
        st.rerun()  # redraw with Run enabled / Stop disabled and the fresh scores
    report = st.session_state.get(K_REPORT)
    if report:
        if report.get("stopped"):
            st.info("Stopped. Scored examples were saved; press Run to continue with the rest.")
        if "computed" in report:
            st.caption(f"Generated {report['computed']} answers (reused {report['reused']} saved) · "
                       f"load {fmt_seconds(report['load_s'])} · generation {fmt_seconds(report['generation_s'])}")
        for name, error in report.get("errors", {}).items():
            st.error(f"{name}: {error}")
    scores = prepare_scores(run.path, paths, evalset, gen, settings.data_dir)
    if not any(s.n for s in scores.values()):
        st.info("No saved scores for these checkpoints and settings yet: press **Run eval set**.")
        return
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
    data = eval_export(evalset, scores, metrics=metrics, settings=settings_dict(gen), reference=infos[-1].name,
                       checkpoints={c.name: checkpoint_metadata(c) for c in infos})
    export_buttons(data, f"eval-{safe_name(run.name)}-{safe_name(evalset.name)}", "eval")


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


# ------------------------------------------------------------------------- page
st.title("Comparison")
st.html(style_block())
run_dir = state.selected_run()
if run_dir is None:
    st.info("Pick a run in the sidebar to compare its checkpoints.")
    st.stop()
try:
    run = get_run(run_dir)
except (PathOutsideRoots, RunNotFoundError) as exc:
    st.error(f"Cannot open run: {exc}")
    st.stop()
if sum(c.loadable for c in run.checkpoints) < MIN_CHECKPOINTS:
    st.warning(f"{run.name} has fewer than {MIN_CHECKPOINTS} loadable checkpoints; nothing to compare.")
    st.stop()
infos = choose_checkpoints(run)
if len(infos) < MIN_CHECKPOINTS:
    st.info(f"Choose at least {MIN_CHECKPOINTS} checkpoints.")
    st.stop()
gen = generation_settings_form("cmp", "Generation settings (shared by all checkpoints)", {"max_new_tokens": 16})
mode = st.radio("Mode", MODES, horizontal=True, key=K_MODE)
if mode == MODES[0]:
    single_example(run, infos, gen)
else:
    eval_mode(run, infos, gen)
