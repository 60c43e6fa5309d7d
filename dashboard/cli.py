"""Command-line entry point: ``python -m dashboard <subcommand>``.

One ``cmd_<name>`` function per subcommand, registered in ``build_parser`` — add new
subcommands the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path


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
    from dashboard.evalset import EvalSetError, find_eval_sets, load_eval_set
    from dashboard.models.pool import CheckpointLoadError, ModelPool
    from dashboard.runs.checkpoints import discover_checkpoints

    run = Path(args.run)
    if not run.is_dir():
        print(f"error: run directory not found: {run}", file=sys.stderr)
        return 2
    sets = [Path(args.eval)] if args.eval else find_eval_sets(run)
    if not sets:
        print(f"error: {run} has no eval set in {run / 'eval'} (pass --eval FILE)", file=sys.stderr)
        return 2
    try:
        examples = load_eval_set(sets[0], roots=[run]).examples
    except EvalSetError as exc:
        print(f"error: eval set unusable: {exc}", file=sys.stderr)
        return 2
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
    pool = ModelPool(budget_bytes=2 * 1024**3, device="cpu", dtype=torch.float32)
    scored = pointing_over_checkpoints(
        pool, infos, examples, max_examples=args.examples,
        errors=(CheckpointLoadError, UnsupportedFamily, LayoutError, CaptureError),
        progress=None if args.json else lambda i, n, name: print(f"scored {name} ({i}/{n})", file=sys.stderr))
    keys = ("checkpoint", "step", "n", "pointing", "chance", "mass_in_box")
    rows = [{k: s.summary().get(k) for k in keys} | ({"error": s.error} if s.error else {}) for s in scored]
    if args.json:
        print(json.dumps({"run": str(run), "eval_set": str(sets[0]), "checkpoints": rows}, indent=1))
    else:
        print(f"run {run} · eval set {sets[0].name} · up to {args.examples or 'all'} examples per checkpoint")
        print(f"{'checkpoint':<18} {'step':>6} {'n':>4} {'pointing':>9} {'chance':>7} {'mass in box':>12}")
        for row in rows:
            if "error" in row or not row["n"]:
                print(f"{row['checkpoint']:<18} {row['step']!s:>6} {row['n']!s:>4}  {row.get('error', 'no examples')}")
                continue
            print(f"{row['checkpoint']:<18} {row['step']!s:>6} {row['n']:>4} {row['pointing']:>9.3f} "
                  f"{row['chance']:>7.3f} {row['mass_in_box']:>12.3f}")
    return 1 if any(s.error for s in scored) else 0


def cmd_geometry(args: argparse.Namespace) -> int:
    """Geometry oracle: does each image token's pixel box match what the processor fed its vision patch?

    Paints each token's claimed box a flat code, runs the checkpoint's own processor over random
    image sizes and aspect ratios, and reports the worst IoU (config and processor only, no weights).
    """
    import json

    from dashboard.attention.adapters import LayoutError, UnsupportedFamily
    from dashboard.attention.geometry import GeometryError, run_checkpoint
    from dashboard.models.processors import ProcessorLoadError

    folder = Path(args.checkpoint)
    if not folder.is_dir():
        print(f"error: checkpoint directory not found: {folder}", file=sys.stderr)
        return 2
    try:
        report = run_checkpoint(folder, cases=args.cases, seed=args.seed, low=args.min_side, high=args.max_side)
    except (UnsupportedFamily, GeometryError, ProcessorLoadError, OSError, ValueError) as exc:
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
    parser = argparse.ArgumentParser(prog="python -m dashboard", description="VLM checkpoint lab tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="build the demo run (a tiny LLaVA trained on a synthetic task)",
                          description=cmd_demo.__doc__)
    demo.add_argument("--out", required=True, help="output run directory (new, empty, or a previous demo run)")
    demo.add_argument("--seed", type=int, default=0, help="seed for data, model init and training (default 0)")
    demo.add_argument("--preset", choices=["full", "test"], default="full",
                      help="'full': the real demo (default); 'test': a fast small run for the test-suite")
    demo.add_argument("--force", action="store_true",
                      help="delete --out's contents even if it is not a previous demo run")
    demo.set_defaults(func=cmd_demo)

    ev = sub.add_parser("eval", help="score a run's checkpoints on an eval set (CIs, per task, paired tests)",
                        description=(cmd_eval.__doc__ or "")
                        + " Progress on stderr; exit 0 done, 2 bad input, 1 failure.")
    ev.add_argument("--run", required=True, help="run directory (checkpoint-N/ folders)")
    ev.add_argument("--checkpoints", help="comma-separated names or steps (default: every loadable checkpoint)")
    ev.add_argument("--eval", help="eval set JSONL/CSV (default: the first file in <run>/eval/)")
    ev.add_argument("--limit", type=int, help="only the first N examples")
    ev.add_argument("--json", action="store_true", help="print the JSON report on stdout")
    ev.add_argument("--out", help="also write the JSON report to this file")
    ev.add_argument("--batch-size", type=int, default=8, help="examples per generate batch (default 8)")
    ev.add_argument("--max-new-tokens", type=int, default=16, help="greedy decoding budget (default 16)")
    ev.add_argument("--group-by", default="task", help="categorical column for the breakdown (default task)")
    ev.set_defaults(func=cmd_eval)

    pointing = sub.add_parser("pointing", help="pointing score per checkpoint (attention peak inside the asked object)",
                              description=cmd_pointing.__doc__)
    pointing.add_argument("--run", required=True, help="run directory with checkpoints and an eval set in eval/")
    pointing.add_argument("--checkpoints", default="", help="comma-separated checkpoint names or steps (default: all)")
    pointing.add_argument("--examples", type=int, default=None, help="examples per checkpoint (default: all)")
    pointing.add_argument("--eval", default="", help="eval set file (default: the run's eval/ set)")
    pointing.add_argument("--json", action="store_true", help="print JSON: {\"checkpoints\": [...]} in step order")
    pointing.set_defaults(func=cmd_pointing)

    geometry = sub.add_parser("geometry", help="check an adapter's token-to-pixel boxes against the processor",
                              description=cmd_geometry.__doc__)
    geometry.add_argument("--checkpoint", required=True, help="checkpoint folder (config + processor files)")
    geometry.add_argument("--cases", type=int, default=200, help="random image sizes to check (default 200)")
    geometry.add_argument("--seed", type=int, default=0, help="seed for the image sizes (default 0)")
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

    args = build_parser().parse_args(argv)
    try:
        configure_logging(load_settings().log_level)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return args.func(args)
