"""Command-line entry point: ``python -m dashboard <subcommand>``.

One ``cmd_<name>`` function per subcommand, registered in ``build_parser`` — add new
subcommands the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dashboard.evalset import EvalSet


def user_path(text: str) -> Path:
    """A path as the user typed it: ``~`` expanded, relative to the current directory (made absolute
    here, once, so no later step can re-root it under a runs root)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty path")
    return Path(text).expanduser().absolute()


def run_folder(args: argparse.Namespace) -> Path | None:
    """``--run`` as :func:`main` resolved it (a folder path or a run name), or None after saying why not."""
    return existing_folder(args.run, "run")


def existing_folder(text: str | Path, what: str) -> Path | None:
    """The folder ``text`` names, resolved, or None after saying on stderr that it is not there."""
    folder = Path(text).resolve()
    if folder.is_dir():
        return folder
    print(f"error: {what} directory not found: {text}", file=sys.stderr)
    return None


def eval_set_of(run: Path, given: Path | None) -> EvalSet | None:
    """``--eval`` (or the run's own first eval set), loaded inside ``run``; None after saying why not."""
    from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set

    sets = [given] if given else find_eval_sets(run)
    if not sets:
        print(f"error: {run} has no eval set in {run / 'eval'} (pass --eval FILE)", file=sys.stderr)
        return None
    try:
        return load_eval_set(sets[0], roots=[run])
    except EvalSetError as exc:
        print(f"error: eval set unusable: {exc}", file=sys.stderr)
        return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Build the demo run (eval set + trained tiny LLaVA checkpoints) into ``--out``."""
    from tqdm import tqdm

    from dashboard.demo.build import PRESETS, DemoDirError, build_demo_run

    if args.preset not in PRESETS:  # argparse choices already guard this; kept for programmatic calls
        print(f"error: unknown preset {args.preset!r}", file=sys.stderr)
        return 2
    with tqdm(total=100, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}") as bar:
        def progress(fraction: float, message: str) -> None:
            bar.update(max(0, round(fraction * 100) - bar.n))
            bar.set_postfix_str(message, refresh=True)

        try:
            report = build_demo_run(Path(args.out), preset=args.preset, seed=args.seed, progress=progress,
                                    force=args.force)
        except DemoDirError as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 2
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"demo run written to {report.path}: {report.n_checkpoints} checkpoints, "
          f"eval exact match {report.first_eval_accuracy:.1%} (first) → {report.last_eval_accuracy:.1%} (last), "
          f"{report.seconds:.0f} s (load average now {load} on {os.cpu_count()} CPUs)")
    if report.eval_accuracies:
        print("eval exact match by checkpoint: " + ", ".join(f"{a:.1%}" for a in report.eval_accuracies))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Score checkpoints of a run on an eval set: values, 95 % CIs, per-task table, paired tests."""
    from dashboard.compare.headless import BadInput, evaluate, request_from_args, write_outputs

    try:
        report = evaluate(request_from_args(args))
        write_outputs(report, as_json=args.json, out=args.out)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # model/worker failure: say what, exit 1 (a CI job must see it failed)
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_pointing(args: argparse.Namespace) -> int:
    """Pointing score per checkpoint of a run (the Attention page's table, headless), in step order."""
    import json

    import torch

    from dashboard.attention.adapters import LayoutError, UnsupportedFamily
    from dashboard.attention.analysis import pointing_over_checkpoints
    from dashboard.attention.hooks import CaptureError
    from dashboard.config import load_settings
    from dashboard.models.pool import CheckpointLoadError, ModelPool
    from dashboard.runs.checkpoints import discover_checkpoints

    run = run_folder(args)
    if run is None:
        return 2
    evalset = eval_set_of(run, args.eval)
    if evalset is None:
        return 2
    examples = evalset.examples
    infos = [c for c in discover_checkpoints(run) if c.loadable]
    if args.checkpoints:
        wanted = [w.strip() for w in args.checkpoints.split(",") if w.strip()]
        by_name = {c.name: c for c in infos} | {str(c.step): c for c in infos if c.step is not None}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            print(f"error: no checkpoint {', '.join(missing)} in {run}; have {', '.join(c.name for c in infos)}",
                  file=sys.stderr)
            return 2
        infos = list({id(by_name[w]): by_name[w] for w in wanted}.values())
    if not infos:
        print(f"error: {run} has no loadable checkpoint", file=sys.stderr)
        return 2
    # The run named on the command line is what this command may read (as ``eval``): its folder is the root.
    options = dataclasses.replace(load_settings().load_options(), roots=(run.resolve(),), device="cpu")
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32, options=options)
    scored = pointing_over_checkpoints(
        pool, infos, examples, max_examples=args.examples,
        errors=(CheckpointLoadError, UnsupportedFamily, LayoutError, CaptureError),
        progress=None if args.json else lambda i, n, name: print(f"scored {name} ({i}/{n})", file=sys.stderr))
    rows = [pointing_row(s) for s in scored]
    if args.json:
        print(json.dumps({"run": str(run), "eval_set": {"path": str(evalset.path), "name": evalset.name,
                                                        "sha256": evalset.content_hash},
                          "examples_asked": args.examples, "checkpoints": rows}, indent=1))
    else:
        print(f"run {run} · eval set {evalset.path.name} · up to {args.examples or 'all'} examples per checkpoint")
        print(f"{'checkpoint':<18} {'step':>6} {'n':>4} {'pointing':>9} {'95% CI':>15} {'chance':>7} "
              f"{'mass in box':>12}")
        for row in rows:
            if "error" in row or not row["n"]:
                print(f"{row['checkpoint']:<18} {row['step']!s:>6} {row['n']!s:>4}  {row.get('error', 'no examples')}")
                continue
            lo, hi = row["pointing_ci95"]
            print(f"{row['checkpoint']:<18} {row['step']!s:>6} {row['n']:>4} {row['pointing']:>9.3f} "
                  f"{f'[{lo:.3f}, {hi:.3f}]':>15} {row['chance']:>7.3f} {row['mass_in_box']:>12.3f}")
    return 1 if any(s.error for s in scored) else 0


def pointing_row(scored: Any) -> dict[str, Any]:
    """One checkpoint of ``pointing --json``: the page's summary numbers, the exact 95 % interval of the
    hit rate and every example's hit, peak patch and mass in the box."""
    summary = scored.summary()
    row = {k: summary.get(k) for k in ("checkpoint", "step", "n", "pointing", "chance", "mass_in_box")}
    row["pointing_ci95"] = [summary.get("pointing_ci95_low"), summary.get("pointing_ci95_high")]
    row["examples"] = scored.report.examples() if scored.report is not None else []
    return row | ({"error": scored.error} if scored.error else {})


def cmd_faithfulness(args: argparse.Namespace) -> int:
    """Is the attention map faithful? Deletion and insertion curves vs random orders, and the weight-randomisation
    check.

    For each eval example: generate the first answer token, take its map (every layer, head mean),
    delete image patches from the processor's input (and put them back into a painted picture) in the
    map's order and in random orders, rank the map's curves among the random ones (permutation p), and
    re-initialise a copy's decoder layers (top first) to see whether the map changes.
    """
    import json

    import torch

    from dashboard.attention import faithfulness
    from dashboard.config import load_settings
    from dashboard.models.pool import CheckpointLoadError, ModelPool

    checkpoint = existing_folder(args.checkpoint, "checkpoint")
    if checkpoint is None:
        return 2
    run = checkpoint.parent
    evalset = eval_set_of(run, args.eval)
    if evalset is None:
        return 2
    # The checkpoint's run folder is what this command may read (as ``pointing``): its folder is the root.
    options = dataclasses.replace(load_settings().load_options(), roots=(run,), device="cpu")
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32, options=options)
    seeds = tuple(range(args.seeds))
    try:
        with pool.acquire(checkpoint) as loaded:
            rows, skipped = faithfulness.over_examples(
                loaded, evalset.examples, limit=args.limit,
                plan=faithfulness.CheckPlan(seeds, args.points, sanity=not args.no_sanity),
                progress=None if args.json else lambda i, n, name: print(f"checked {name} ({i}/{n})", file=sys.stderr))
    except CheckpointLoadError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    summary = faithfulness.summarise([r.result for r in rows])
    if args.json:
        print(json.dumps({"checkpoint": str(checkpoint), "eval_set": {"path": str(evalset.path), "name": evalset.name,
                                                                      "sha256": evalset.content_hash},
                          "fill": faithfulness.FILL, "seeds": list(seeds), "points": args.points,
                          "summary": summary, "examples": [r.to_dict() for r in rows], "skipped": skipped},
                         indent=1))
    else:
        print(f"checkpoint {checkpoint} · eval set {evalset.path.name} · deleted patches filled with the "
              f"{faithfulness.FILL} · {len(seeds)} random orders")
        print(f"{'example':<12} {'token':<12} {'p(token)':>9} {'deletion':>9} {'p':>6} {'insertion':>9} {'p':>6} "
              f"{'beats':>6} {'sanity rho':>11}")
        for row in rows:
            res = row.result
            rho = f"{res.sanity.full:.3f}" if res.sanity is not None else "-"
            print(f"{row.id:<12} {res.token:<12} {res.deletion.base:>9.3f} {res.deletion.score:>+9.3f} "
                  f"{res.deletion.p_value:>6.3f} {res.insertion.score:>+9.3f} {res.insertion.p_value:>6.3f} "
                  f"{'yes' if res.beats_random else 'no':>6} {rho:>11}")
        print(f"map beats random (p ≤ {summary['alpha']} over both curves, Westfall–Young) on "
              f"{summary['beats_random']:.1%} of {summary['n_scored']} examples (each curve alone at p ≤ "
              f"{summary['alpha']}: deletion {summary['deletion_significant']:.1%}, insertion "
              f"{summary['insertion_significant']:.1%}); mean sanity Spearman {summary['mean_sanity_spearman']:.3f}")
        for line in skipped:
            print(f"skipped {line}", file=sys.stderr)
    return 0 if rows else 1


def cmd_runs(args: argparse.Namespace) -> int:
    """List the runs under the runs root (any depth): name, modified, checkpoints, best checkpoint."""
    from dashboard.config import load_settings
    from dashboard.runs.discovery import discover_runs
    from dashboard.runs.overview import runs_table

    roots = [Path(args.root)] if args.root else list(load_settings().runs_roots)
    found = [(root, discover_runs(root)) for root in roots]
    for _, discovery in found:
        for problem in discovery.problems:
            print(f"warning: {problem}", file=sys.stderr)
    table = runs_table([r for _, d in found for r in d.runs], roots)
    if args.json:
        print(table.to_json(orient="records", date_format="iso", indent=1))
        return 0
    if table.empty:
        print(f"no runs under {', '.join(str(r) for r in roots)}")
        return 0
    print(table.to_string(index=False))
    return 0


def cmd_drift(args: argparse.Namespace) -> int:
    """Relative weight change per module (vision layers, projector, decoder attention/MLP, …) between checkpoints."""
    import json

    from dashboard.analysis.drift import DriftError, drift_over_checkpoints, drift_report
    from dashboard.compare.headless import BadInput, resolve_checkpoints

    run = run_folder(args)
    if run is None:
        return 2
    names = [n.strip() for n in args.checkpoints.split(",") if n.strip()] if args.checkpoints else None
    try:
        results = drift_over_checkpoints(resolve_checkpoints(run, names), [run], args.against)
    except (BadInput, DriftError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(drift_report(run, results, args.against), indent=1))
        return 0
    print(f"run {run} · relative weight change ‖θ_B − θ_A‖ / ‖θ_A‖ against the {args.against} checkpoint")
    for result in results:
        top = ", ".join(f"{m.module} {m.relative_change:.3g}" for m in result.ranked()[:5]
                        if m.relative_change is not None)
        print(f"{result.checkpoint} vs {result.against} ({result.weights} weights): {top}")
    return 0


def cmd_patch(args: argparse.Namespace) -> int:
    """Activation patching between two checkpoints: which component and layer carry B's different answer."""
    import dataclasses
    import json

    from dashboard.analysis.patching import PatchError, patch_checkpoints
    from dashboard.compare.headless import BadInput, resolve_checkpoints, resolve_eval_set
    from dashboard.config import load_settings
    from dashboard.generation import GenerationInputError
    from dashboard.models.pool import CheckpointLoadError, ModelPool

    run = run_folder(args)
    if run is None:
        return 2
    names = [n.strip() for n in args.checkpoints.split(",") if n.strip()]
    if len(names) != 2:
        print("error: --checkpoints takes exactly two checkpoints, A,B", file=sys.stderr)
        return 2
    try:
        found = resolve_checkpoints(run, names)
        by_name = {p.name: p for p in found}
        pair = [by_name.get(n) or by_name.get(f"checkpoint-{n}") for n in names]
        if any(p is None for p in pair) or len(found) != 2:
            raise BadInput("--checkpoints must name two different checkpoints")
        eval_file = Path(args.eval).resolve() if args.eval else None
        evalset = resolve_eval_set(run, eval_file, None)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = dataclasses.replace(load_settings(), runs_roots=(run,))
    pool = ModelPool.from_settings(settings)
    roots = [run] + ([eval_file.parent] if eval_file else [])
    try:
        with pool.acquire(pair[0]) as a, pool.acquire(pair[1]) as b:  # type: ignore[arg-type]
            report = patch_checkpoints(a, b, evalset.examples, roots, example_id=args.example or None,
                                       direction=args.direction)
    except (PatchError, GenerationInputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except CheckpointLoadError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
        return 0
    print(f"example {report.example}: {report.a['checkpoint']} answers {report.a['answer']!r}, "
          f"{report.b['checkpoint']} answers {report.b['answer']!r} (first different token: "
          f"{report.a['token']!r} vs {report.b['token']!r}); direction {report.direction}, {report.seconds:.1f} s")
    for row in report.components:
        print(f"  {row['component']:<16} restored {row['restored']:+.3f}  introduced {row['introduced']:+.3f}")
    print("  layers by largest restoration: " + ", ".join(str(i) for i in report.layer_ranking()))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """Score every checkpoint of a run that has no result yet, then each new one as it is saved."""
    import json
    import signal
    import threading

    from dashboard.compare.headless import BadInput, EvalRequest
    from dashboard.live.watcher import WatchConfig, Watcher

    request = EvalRequest(run=Path(args.run), eval_file=Path(args.eval) if args.eval else None, limit=args.limit,
                          batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
    stop = threading.Event()

    def emit(line: dict) -> None:
        if args.json:
            print(json.dumps(line, ensure_ascii=False), flush=True)
        elif "error" in line:
            print(f"{line['checkpoint']}: failed: {line['error']}", flush=True)
        else:
            em = line["metrics"].get("exact_match", {})
            extra = (f"  pointing {line['pointing']['pointing']:.3f}"
                     if line.get("pointing", {}).get("pointing") is not None else "")
            print(f"{line['checkpoint']} (step {line['step']}): exact match {em.get('value', float('nan')):.3f} "
                  f"[{em['ci95'][0]:.3f}, {em['ci95'][1]:.3f}]  n = {line['n']}{extra}", flush=True)

    try:
        watcher = Watcher(WatchConfig(request, pointing=args.pointing, poll_s=args.poll, until_idle_s=args.until_idle),
                          on_result=emit, stop=stop)
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for signum in (signal.SIGINT, signal.SIGTERM):  # finish the current batch's save, then exit 0
        signal.signal(signum, lambda *_: stop.set())
    print(f"watching {watcher.ctx.run_dir} (eval set {watcher.ctx.evalset.name}, n = "
          f"{len(watcher.ctx.evalset.examples)}); Ctrl-C to stop", file=sys.stderr, flush=True)
    try:
        status = watcher.run()
    except Exception as exc:  # the watcher itself failed (not one checkpoint): say what, exit 1
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 1 if status.errors else 0


def cmd_geometry(args: argparse.Namespace) -> int:
    """Geometry oracle: does each image token's pixel box match what the processor fed its vision patch?

    Paints each token's claimed box a flat code, runs the checkpoint's own processor over random
    image sizes and aspect ratios, and reports the worst IoU (config and processor only, no weights).
    """
    import json

    from dashboard.attention.adapters import LayoutError, UnsupportedFamily
    from dashboard.attention.geometry import GeometryError, run_checkpoint
    from dashboard.models.loading import CheckpointLoadError
    from dashboard.models.processors import ProcessorLoadError

    folder = Path(args.checkpoint)
    if not folder.is_dir():
        print(f"error: checkpoint directory not found: {folder}", file=sys.stderr)
        return 2
    try:
        report = run_checkpoint(folder, cases=args.cases, seed=args.seed, low=args.min_side, high=args.max_side,
                                images=args.images)
    except (UnsupportedFamily, GeometryError, CheckpointLoadError, ProcessorLoadError, OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LayoutError as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return 1
    passed = report["min_iou"] is not None and report["min_iou"] >= args.threshold
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        worst = report["worst"] or {}
        print(f"{report['model_type']}: {report['cases']} image sizes, {report['tokens_checked']} tokens checked, "
              f"min IoU {report['min_iou']:.4f} ({'pass' if passed else 'FAIL'} at {args.threshold})")
        if worst:
            print(f"worst: image {worst['image_size'][0]}×{worst['image_size'][1]}, view {worst['view']}, "
                  f"r{worst['row'] + 1}c{worst['col'] + 1}, IoU {worst['iou']:.4f}")
    return 0 if passed else 1


def build_parser() -> argparse.ArgumentParser:
    from dashboard.attention.faithfulness import DEFAULT_POINTS, DEFAULT_SEEDS
    from dashboard.generation import DEFAULT_GENERATION

    parser = argparse.ArgumentParser(prog="python -m dashboard", description="VLM checkpoint lab tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="build the demo run (a tiny LLaVA trained on a synthetic task)",
                          description=cmd_demo.__doc__)
    demo.add_argument("--out", required=True, type=user_path,
                      help="output run directory (new, empty, or a previous demo run)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data, model init and training (default 0)")
    demo.add_argument("--preset", choices=["full", "test"], default="full",
                      help="'full': the real demo (default); 'test': a fast small run for the test-suite")
    demo.add_argument("--force", action="store_true",
                      help="delete --out's contents even if it is not a previous demo run")
    demo.set_defaults(func=cmd_demo)

    ev = sub.add_parser("eval", help="score a run's checkpoints on an eval set (CIs, per task, paired tests)",
                        description=(cmd_eval.__doc__ or "")
                        + " Progress on stderr; exit 0 done, 2 bad input, 1 failure.")
    ev.add_argument("--run", required=True,
                    help="run directory (checkpoint-N/ folders), absolute or relative to the current directory, "
                         "or a run name under the runs root (projA/run1)")
    ev.add_argument("--checkpoints", help="comma-separated names or steps (default: every loadable checkpoint)")
    ev.add_argument("--eval", type=user_path, help="eval set JSONL/CSV (default: the first file in <run>/eval/)")
    ev.add_argument("--limit", type=int, help="only the first N examples (a result of its own, subset first-N)")
    ev.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    ev.add_argument("--out", type=user_path, help="also write the JSON report to this file")
    ev.add_argument("--batch-size", type=int, default=8, help="examples per generate batch (default 8)")
    ev.add_argument("--max-new-tokens", type=int, default=DEFAULT_GENERATION.max_new_tokens,
                    help=f"greedy decoding budget (default {DEFAULT_GENERATION.max_new_tokens}, the pages' default)")
    ev.add_argument("--group-by", default="task", help="categorical column for the breakdown (default task)")
    ev.set_defaults(func=cmd_eval)

    pointing = sub.add_parser("pointing", help="pointing score per checkpoint (attention peak inside the asked object)",
                              description=cmd_pointing.__doc__)
    pointing.add_argument("--run", required=True,
                          help="run directory with checkpoints and an eval set in eval/ (absolute or relative to the "
                               "current directory), or a run name under the runs root (projA/run1)")
    pointing.add_argument("--checkpoints", default="", help="comma-separated checkpoint names or steps (default: all)")
    pointing.add_argument("--examples", type=int, default=None, help="examples per checkpoint (default: all)")
    pointing.add_argument("--eval", type=user_path, default=None, help="eval set file (default: the run's eval/ set)")
    pointing.add_argument("--json", action="store_true", help="print JSON: {\"checkpoints\": [...]} in step order")
    pointing.set_defaults(func=cmd_pointing)

    faith = sub.add_parser("faithfulness", description=cmd_faithfulness.__doc__,
                           help="is the attention map faithful? deletion and insertion curves vs random orders, "
                                "and the weight-randomisation sanity check")
    faith.add_argument("--checkpoint", required=True, type=user_path, help="checkpoint folder inside its run folder")
    faith.add_argument("--eval", type=user_path, default=None,
                       help="eval set file (default: the first file in the run's eval/ folder)")
    faith.add_argument("--limit", type=int, default=None, help="only the first N examples (default: all)")
    faith.add_argument("--seeds", type=int, default=len(DEFAULT_SEEDS),
                       help=f"random orders the map is ranked among (default {len(DEFAULT_SEEDS)}: p in steps of 0.01; "
                            "fewer than 19 can never reach p ≤ 0.05)")
    faith.add_argument("--points", type=int, default=DEFAULT_POINTS,
                       help=f"points on each curve at most (default {DEFAULT_POINTS}: 1, 2, 3, … patches, then "
                            "wider steps)")
    faith.add_argument("--no-sanity", action="store_true", help="skip the weight-randomisation sanity check")
    faith.add_argument("--json", action="store_true",
                       help='print JSON: {"summary": {"beats_random", ...}, "examples": [...], "skipped": [...]}')
    faith.set_defaults(func=cmd_faithfulness)

    runs = sub.add_parser("runs", help="list the runs under the runs root (nested at any depth) with their best "
                                       "checkpoint", description=cmd_runs.__doc__)
    runs.add_argument("--root", default="", help="runs root (default: VLMLAB_RUNS_ROOT / the configured roots)")
    runs.add_argument("--json", action="store_true", help="print the table as JSON records")
    runs.set_defaults(func=cmd_runs)

    drift = sub.add_parser("drift", help="relative weight change per module between checkpoints",
                           description=cmd_drift.__doc__)
    drift.add_argument("--run", required=True, help="run directory (checkpoint-N/ folders)")
    drift.add_argument("--checkpoints", default="", help="comma-separated names or steps (default: all, in step order)")
    drift.add_argument("--against", choices=["previous", "first"], default="previous",
                       help="compare each checkpoint with the previous one (default) or with the first")
    drift.add_argument("--json", action="store_true",
                       help='print JSON: {"checkpoints": [{"checkpoint", "step", "modules": [...]}]}')
    drift.set_defaults(func=cmd_drift)

    patch = sub.add_parser("patch", help="activation patching between two checkpoints on one example",
                           description=cmd_patch.__doc__)
    patch.add_argument("--run", required=True, help="run directory (checkpoint-N/ folders, eval set in eval/)")
    patch.add_argument("--checkpoints", required=True, help="two checkpoints A,B (names or steps)")
    patch.add_argument("--example", default="", help="eval example id (default: the first where A and B differ)")
    patch.add_argument("--eval", type=user_path, default=None, help="eval set file (default: the run's eval/ set)")
    patch.add_argument("--direction", choices=["a-to-b", "b-to-a"], default="a-to-b",
                       help="a-to-b (default): run A with B's activations, 1 = B's answer; b-to-a: the reverse")
    patch.add_argument("--json", action="store_true",
                       help='print JSON: {"example", "a", "b", "components": [...], "layers": [...]}')
    patch.set_defaults(func=cmd_patch)

    watch = sub.add_parser("watch", help="score checkpoints as they are saved (same results as eval and the app)",
                           description=(cmd_watch.__doc__ or "") + " Exit 0 when idle or stopped, 2 bad input, "
                           "1 if a checkpoint could not be scored.")
    watch.add_argument("--run", required=True,
                       help="run directory (checkpoint-N/ folders), or a run name under the runs root; watched for new "
                            "checkpoints")
    watch.add_argument("--eval", type=user_path, help="eval set JSONL/CSV (default: the first file in <run>/eval/)")
    watch.add_argument("--limit", type=int, help="only the first N examples")
    watch.add_argument("--pointing", action="store_true", help="also the pointing score (attention in the box)")
    watch.add_argument("--until-idle", type=float, default=None, metavar="SECONDS",
                       help="exit after this many seconds without a new checkpoint (default: run until stopped)")
    watch.add_argument("--json", action="store_true", help="one JSON object per scored checkpoint on stdout")
    watch.add_argument("--poll", type=float, default=2.0, metavar="SECONDS",
                       help="seconds between looks at the run folder (default 2)")
    watch.add_argument("--batch-size", type=int, default=8, help="examples per generate batch (default 8)")
    watch.add_argument("--max-new-tokens", type=int, default=DEFAULT_GENERATION.max_new_tokens,
                       help=f"greedy decoding budget (default {DEFAULT_GENERATION.max_new_tokens}, as eval and the "
                            "pages: the same results)")
    watch.set_defaults(func=cmd_watch)

    geometry = sub.add_parser("geometry", help="check an adapter's token-to-pixel boxes against the processor",
                              description=cmd_geometry.__doc__)
    geometry.add_argument("--checkpoint", required=True, type=user_path,
                          help="checkpoint folder (config + processor files)")
    geometry.add_argument("--cases", type=int, default=200, help="random image sizes to check (default 200)")
    geometry.add_argument("--seed", type=int, default=0, help="seed for the image sizes (default 0)")
    geometry.add_argument("--images", type=int, default=1,
                          help="images per prompt, each of its own random size (default 1; families that map "
                               "several images)")
    geometry.add_argument("--min-side", type=int, default=None,
                          help="smallest image side (default: the processor's working size, at most 448)")
    geometry.add_argument("--max-side", type=int, default=None, help="largest typical side (default 3× min)")
    geometry.add_argument("--threshold", type=float, default=0.99, help="pass if min IoU ≥ this (default 0.99)")
    geometry.add_argument("--json", action="store_true",
                          help='print JSON: {"model_type", "cases", "min_iou", "worst": {...}, ...}')
    geometry.set_defaults(func=cmd_geometry)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from dashboard.config import ConfigError, load_settings
    from dashboard.logs import configure_logging
    from dashboard.runs.discovery import resolve_run_arg

    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
        configure_logging(settings.log_level)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if getattr(args, "run", None):  # a folder path, or a run's name as the sidebar lists it (projA/run1)
        # made absolute here, once, like every user_path: nothing later re-roots it under a runs root
        args.run = str(resolve_run_arg(args.run, settings.runs_roots).absolute())
    return args.func(args)
