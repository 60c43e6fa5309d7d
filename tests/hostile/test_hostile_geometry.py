"""Issue 34: ``python -m dashboard geometry --checkpoint DIR`` reads the processor through the load walls.

Fails on main (reasoned from main's code, and checked by running this file against it): main's
``run_checkpoint`` called ``AutoConfig.from_pretrained(folder)`` and ``load_processor(folder)`` on the
run folder itself, and transformers follows symlinks and reads whole files, so a ``chat_template.jinja``
or ``tokenizer.json`` linked outside the runs root was read (the oracle ran and exited 0, the
outside file's content inside the processor). Now the command stages the checked small files, as every
load does, and refuses the checkpoint naming the file.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dashboard.cli import main
from tests.hostile.load_corpus import CANARY, build_case
from tests.hostile.walls_corpus import SECRET, environment_secrets


@pytest.mark.parametrize("attack", ["outside-link", "environ-link", "hard-link"])
@pytest.mark.parametrize("name", ["chat_template.jinja", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json", "preprocessor_config.json"])
def test_geometry_never_reads_a_file_outside_the_run(tmp_path: Path, tiny_llava_dir: Path, name: str, attack: str,
                                                    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("VLMLAB_PLANTED", SECRET)
    caplog.set_level(logging.DEBUG)
    ckpt = build_case(tmp_path / "runs", tmp_path / "outside", tiny_llava_dir, name, attack)
    code = main(["geometry", "--checkpoint", str(ckpt), "--cases", "2", "--json"])
    out = capsys.readouterr()
    shown = [out.out, out.err, caplog.text]
    assert code == 2, out
    assert name in out.err, out.err
    leaked = [s for s in (CANARY, *environment_secrets()) if any(s in text for text in shown)]
    assert not leaked, leaked[0][:30]


def test_geometry_of_a_clean_copy_still_runs(tmp_path: Path, tiny_llava_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The same walls pass an honest checkpoint: the staged processor gives the oracle's report."""
    import shutil

    ckpt = tmp_path / "runs" / "run" / "checkpoint-1"
    shutil.copytree(tiny_llava_dir, ckpt)
    assert main(["geometry", "--checkpoint", str(ckpt), "--cases", "2"]) == 0, capsys.readouterr()
    assert "min IoU" in capsys.readouterr().out
