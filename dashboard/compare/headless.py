"""``python -m dashboard eval``: score a run's checkpoints without a browser.

Same eval-set loader, sweep engine (local pool or Ray), result files and report as the
Comparison page, so a training job or CI gets exactly the numbers the page shows. Progress
goes to stderr; the JSON report (or a short table) to stdout and/or ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from dashboard.compare.report import eval_report
from dashboard.compare.runner import EvalRun, Progress, prepare_scores, run_eval, settings_dict
from dashboard.compare.sweep import SweepBackend
from dashboard.evalset import EvalSet, EvalSetError, find_eval_sets, load_eval_set
from dashboard.formatting import fmt_fraction
from dashboard.generation import DEFAULT_GENERATION, GenerationSettings
from dashboard.metrics import default_metrics
from dashboard.runs.files import write_atomic


class BadInput(ValueError):
    """Something the user passed cannot be used (exit code 2)."""


@dataclass
class EvalRequest:
    run: Path
    checkpoints: list[str] | None = None
    eval_file: Path | None = None
    limit: int | None = None
    batch_size: int = 8
    max_new_tokens: int = DEFAULT_GENERATION.max_new_tokens
    group_by: str = "task"


def resolve_checkpoints(run_dir: Path, names: Sequence[str] | None) -> list[Path]:
    """The named checkpoints (folder name or step number) in step order, or all loadable ones."""
    from dashboard.runs.run import RunNotFoundError, load_run

    try:
        run = load_run(run_dir, [run_dir.resolve()])  # the run named on the command line is the root
    except (RunNotFoundError, OSError) as exc:
        raise BadInput(str(exc)) from exc
    loadable = [c for c in run.checkpoints if c.loadable]
    if not loadable:
        raise BadInput(f"{run_dir} has no loadable checkpoints")
    if not names:
        return [c.path for c in loadable]
    by_key = {c.name: c for c in loadable} | {str(c.step): c for c in loadable if c.step is not None}
    missing = [n for n in names if n not in by_key]
    if missing:
        raise BadInput(f"unknown checkpoint(s) {', '.join(missing)}; choose from "
                       f"{', '.join(c.name for c in loadable)}")
    chosen = {by_key[n].name: by_key[n] for n in names}
    return [c.path for c in loadable if c.name in chosen]


def resolve_eval_set(run_dir: Path, eval_file: Path | None, limit: int | None) -> EvalSet:
    if eval_file is None:
        found = find_eval_sets(run_dir)
        if not found:
            raise BadInput(f"no eval set in {run_dir / 'eval'}; pass --eval FILE")
        eval_file = found[0]
    try:
        evalset = load_eval_set(eval_file, roots=[run_dir, eval_file.parent])
    except (EvalSetError, OSError) as exc:
        raise BadInput(f"cannot use eval set {eval_file}: {exc}") from exc
    if not evalset.examples:
        raise BadInput(f"eval set {eval_file} has no usable rows ({len(evalset.problems)} bad)")
    if limit is not None:
        if limit < 1:
            raise BadInput("--limit must be ≥ 1")
        evalset = evalset.first(limit)  # same file hash, subset first-N: its own result identity
    return evalset


@dataclass
class EvalContext:
    """Everything scoring needs besides the checkpoints: shared by ``eval`` and ``watch``."""

    run_dir: Path
    evalset: EvalSet
    gen: GenerationSettings
    settings: Any  # dashboard.config.Settings, with the run as its runs root
    batch_size: int = 8
    group_by: str | None = "task"


def eval_context(request: EvalRequest, base: Any = None) -> EvalContext:
    """Validate the request's run, eval set and generation settings; raises :class:`BadInput`.

    ``base``: the caller's :class:`~dashboard.config.Settings` (the app's, secrets included); default
    the environment's.
    """
    from dashboard.config import load_settings

    run_dir = Path(request.run).resolve()
    if not run_dir.is_dir():
        raise BadInput(f"run directory not found: {run_dir}")
    evalset = resolve_eval_set(run_dir, request.eval_file, request.limit)
    gen = dataclasses.replace(DEFAULT_GENERATION, max_new_tokens=request.max_new_tokens)
    try:
        gen.validate()
    except ValueError as exc:
        raise BadInput(str(exc)) from exc
    # The run named on the command line is what this command may read: its folder is the runs root.
    settings = dataclasses.replace(base or load_settings(), runs_roots=(run_dir,))
    return EvalContext(run_dir, evalset, gen, settings, request.batch_size, request.group_by)


def context_backend(ctx: EvalContext, pool_factory: Callable[[], Any] | None = None) -> SweepBackend:
    """Ray when ``VLMLAB_RAY_ADDRESS`` is set, else a local pool (``pool_factory``, default: a new one)."""
    from dashboard.compare.backends import default_backend
    from dashboard.models.pool import ModelPool

    factory = pool_factory or (lambda: ModelPool.from_settings(ctx.settings))
    return default_backend(factory, ctx.settings)


def score_and_report(ctx: EvalContext, checkpoints: Sequence[Path], backend: SweepBackend, *,
                     on_progress: Progress | None = None,
                     should_stop: Callable[[], bool] | None = None) -> tuple[dict[str, Any], EvalRun]:
    """Score what is not saved yet (the Comparison page's sweep and result files), then the report.

    The one scoring path of ``python -m dashboard eval``, ``watch``, the live switch and the
    Trainer callback, so every one of them writes and reports the same numbers.
    """
    outcome = run_eval(None, ctx.run_dir, checkpoints, ctx.evalset, ctx.gen, data_dir=ctx.settings.data_dir,
                       batch_size=ctx.batch_size, max_image_pixels=ctx.settings.max_image_pixels,
                       on_progress=on_progress or (lambda done, total, message: None),
                       should_stop=should_stop or (lambda: False), backend=backend)
    scores = prepare_scores(ctx.run_dir, checkpoints, ctx.evalset, ctx.gen, ctx.settings.data_dir)
    report = eval_report(ctx.evalset, scores, settings=settings_dict(ctx.gen), metrics=list(default_metrics()),
                         group_by=ctx.group_by)
    report["settings"]["backend"] = backend.name
    return report, outcome


def evaluate(request: EvalRequest, progress: TextIO | None = None) -> dict[str, Any]:
    """Run the sweep (reusing saved results) and build the report; raises :class:`BadInput`.

    Progress goes to ``progress``, by default the ``sys.stderr`` of the call (not of the import).
    """
    from tqdm import tqdm

    run_dir = Path(request.run).resolve()
    if not run_dir.is_dir():
        raise BadInput(f"run directory not found: {run_dir}")
    checkpoints = resolve_checkpoints(run_dir, request.checkpoints)
    ctx = eval_context(request)
    backend = context_backend(ctx)
    with tqdm(total=0, file=progress or sys.stderr, unit="ex", desc=f"eval ({backend.name})") as bar:
        def on_progress(done: int, total: int, message: str) -> None:
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(message, refresh=True)

        report, outcome = score_and_report(ctx, checkpoints, backend, on_progress=on_progress)
    if outcome.errors:
        raise RuntimeError("; ".join(f"{name}: {error}" for name, error in outcome.errors.items()))
    report["work"] = {"generated": outcome.computed, "reused": outcome.reused}
    return report


def text_summary(report: dict[str, Any]) -> str:
    """A few human lines for when ``--json`` is not given."""
    es = report["eval_set"]
    lines = [f"eval set {es['name']} (subset {es['subset']}, n = {es['n']}, file sha256 {es['sha256'][:12]})"]
    for ck in report["checkpoints"]:
        em = ck["metrics"].get("exact_match", {})
        lines.append(f"  {ck['checkpoint']:>20}  exact match {fmt_fraction(em.get('value'))} "
                     f"[{fmt_fraction(em['ci95'][0])}, {fmt_fraction(em['ci95'][1])}]  n = {ck['n']}")
    from dashboard.compare.stats import detectable_sentence, verdict

    for p in report["paired"]:
        if p["metric"] == "exact_match":
            holm = f", Holm over {p['family_size']} pairs" if p["family_size"] > 1 else ""
            lines.append(f"  {p['a']} vs {p['b']}: only A {p['a_only']}, only B {p['b_only']} → "
                         + verdict(p["a"], p["b"], p["a_only"], p["b_only"], p["p_holm"]) + holm)
            lines.append("    " + detectable_sentence(p["n"], p["min_detectable_difference"]))
    return "\n".join(lines)


def request_from_args(args: Any) -> EvalRequest:
    names = [n.strip() for n in args.checkpoints.split(",") if n.strip()] if args.checkpoints else None
    return dataclasses.replace(EvalRequest(run=Path(args.run).absolute()), checkpoints=names,
                               eval_file=Path(args.eval).absolute() if args.eval else None, limit=args.limit,
                               batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                               group_by=args.group_by)


def write_outputs(report: dict[str, Any], *, as_json: bool, out: str | Path | None) -> None:
    """Print the report; with ``out`` also write it there, atomically and never through a symlink
    (the results writer, :func:`dashboard.runs.files.write_atomic`, inside ``out``'s folder)."""
    text = json.dumps(report, ensure_ascii=False, indent=2)
    if out:
        target = Path(out).expanduser().absolute()
        write_atomic(target, (text + "\n").encode("utf-8"), target.parent)
    print(text if as_json else text_summary(report))
