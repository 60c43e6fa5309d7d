"""Export provenance: run, checkpoint, step, settings, eval-set content hash, app version."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from dashboard import __version__
from dashboard.provenance import provenance, with_provenance
from dashboard.runs.files import OutsideRootsError

REPO = Path(__file__).resolve().parents[1]


def test_app_version_matches_the_project() -> None:
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M)
    assert declared and __version__ == declared.group(1)


def test_block_and_csv_columns(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "eval").mkdir(parents=True)
    evalset = run / "eval" / "demo.jsonl"
    evalset.write_text('{"image": "a.png", "prompt": "p", "answer": "a"}\n')
    block = provenance(run=run, checkpoint=run / "checkpoint-900", settings={"max_new_tokens": 16},
                       eval_set=evalset, roots=[tmp_path])
    assert block["run"] == "run" and block["checkpoint"] == "checkpoint-900" and block["step"] == 900
    assert block["eval_set"]["sha256"] == hashlib.sha256(evalset.read_bytes()).hexdigest()
    assert block["app_version"] == __version__
    rows = with_provenance([{"output": "x"}], block)
    assert rows == [{"output": "x", "run": "run", "checkpoint": "checkpoint-900", "step": 900,
                     "settings": '{"max_new_tokens": 16}', "eval_set": "demo",
                     "eval_set_sha256": block["eval_set"]["sha256"], "app_version": __version__}]


def test_eval_set_outside_the_roots_is_not_hashed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jsonl"
    outside.write_text("{}\n")
    (tmp_path / "root").mkdir()
    with pytest.raises(OutsideRootsError):
        provenance(run=None, checkpoint=tmp_path / "root" / "c", settings={}, eval_set=outside,
                   roots=[tmp_path / "root"])
