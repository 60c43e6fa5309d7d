"""Command-line entry point: ``python -m dashboard <subcommand>``.

One ``cmd_<name>`` function per subcommand, registered in ``build_parser`` — add new
subcommands the same way.
"""

from __future__ import annotations

import argparse
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
    print(f"demo run written to {report.path}: {report.n_checkpoints} checkpoints, "
          f"eval exact match {report.first_eval_accuracy:.1%} (first) → {report.last_eval_accuracy:.1%} (last), "
          f"{report.seconds:.0f} s")
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
