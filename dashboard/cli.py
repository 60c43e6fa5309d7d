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
