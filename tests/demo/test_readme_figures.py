"""README's demo figures for the ``--preset test`` build are the build's own numbers (the build is deterministic)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboard.demo.build import MARKER

README = Path(__file__).resolve().parents[2] / "README.md"
# The same seed and code give different figures on different CPUs (the kernels a CPU picks round floats
# differently: the previous demo's last checkpoint logged 56.25 % on one and 50.0 % on another, two of its 32
# examples), so README's figures (a number or a range) are checked to within two examples.
TOLERANCE = 100 * 2 / 32 + 0.05
SENTENCE = re.compile(r"`--preset test`\s+build\s+\(seed\s+0\):\s+\*\*(\d+)\s+checkpoints\*\*,\s+exact\s+match\s+"
                      r"\*\*([\d.]+)\s+%\*\*\s+at\s+the\s+first\s+→\s+\*\*([\d.]+)(?:–([\d.]+))?\s+%\*\*\s+at\s+the\s+last")


def test_readme_test_preset_figures_match_the_build(demo_run_dir: Path) -> None:
    match = SENTENCE.search(README.read_text(encoding="utf-8"))
    assert match, "README's demo section lost its `--preset test` sentence"
    n, first, last_low = int(match[1]), float(match[2]), float(match[3])
    last_high = float(match[4] or match[3])
    marker = json.loads((demo_run_dir / MARKER).read_text(encoding="utf-8"))
    assert marker["preset"] == "test" and marker["seed"] == 0
    assert n == marker["n_checkpoints"]
    assert first == pytest.approx(100 * marker["first_eval_accuracy"], abs=TOLERANCE), (
        f"the build's first exact match {100 * marker['first_eval_accuracy']:.2f} % is not the README's {first} %")
    assert last_low - TOLERANCE <= 100 * marker["last_eval_accuracy"] <= last_high + TOLERANCE, (
        f"the build's last exact match {100 * marker['last_eval_accuracy']:.2f} % is outside the README's "
        f"{last_low}–{last_high} %")
