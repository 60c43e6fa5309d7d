"""One result identity: the key, what it depends on, where results are saved, how subsets share answers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from dashboard.compare.identity import (
    SCORER_VERSION,
    ResultIdentity,
    result_identity,
    result_key,
    subset_label,
    subset_size,
)
from dashboard.compare.results import CheckpointScores, load_saved_scores, save_scores
from dashboard.compare.runner import prepare_scores
from dashboard.evalset import load_eval_set
from dashboard.generation import DEFAULT_GENERATION, GenerationSettings
from dashboard.metrics import score

REPO_ROOT = Path(__file__).resolve().parents[2]


def _ident(**changes: object) -> ResultIdentity:
    base = ResultIdentity(checkpoint="checkpoint-300", checkpoint_signature="1-2", eval_set_sha256="a" * 64,
                          subset="all", settings_key=DEFAULT_GENERATION.key())
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_key_is_equal_only_for_equal_identities() -> None:
    assert result_key(_ident()) == result_key(_ident()) == _ident().key
    assert len(_ident().key) == 64
    changed = [_ident(checkpoint="checkpoint-600"), _ident(checkpoint_signature="1-3"),
               _ident(eval_set_sha256="b" * 64), _ident(subset="first-40"),
               _ident(settings_key=GenerationSettings(max_new_tokens=16).key()),
               _ident(scorer_version=SCORER_VERSION + 1)]
    keys = {c.key for c in changed} | {_ident().key}
    assert len(keys) == len(changed) + 1  # each of the five parts alone changes the key
    assert _ident().as_dict()["key"] == _ident().key and _ident().as_dict()["subset"] == "all"


def test_subset_names() -> None:
    assert subset_size("first-40") == 40 and subset_size("all") is None
    assert subset_label("first-40") == "first 40 examples" and subset_label("all", 200) == "all 200 examples"


def test_identity_module_imports_without_streamlit_or_torch() -> None:
    """The ``watch`` command (another process, no UI) calls result_identity/result_key."""
    code = ("import sys, dashboard.compare.identity as m; "
            "assert m.result_key and m.result_identity; "
            "print(sorted(k for k in ('streamlit', 'torch', 'transformers') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _eval_file(folder: Path, n: int = 6, bom: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "red").save(folder / "red.png")
    lines = [json.dumps({"id": f"e{i}", "image": "red.png", "prompt": f"colour {i}?", "answer": "red"})
             for i in range(n)]
    path = folder / "toy.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + "\n".join(lines).encode())
    return path


def test_eval_set_hash_is_the_files_sha256_and_subsets_keep_it(tmp_path: Path) -> None:
    path = _eval_file(tmp_path / "eval", bom=True)
    evalset = load_eval_set(path)
    assert evalset.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()  # what sha256sum prints
    first = evalset.first(4)
    assert (first.subset, len(first), first.content_hash) == ("first-4", 4, evalset.content_hash)
    assert evalset.first(99) is evalset and evalset.subset == "all"
    with pytest.raises(ValueError):
        evalset.first(0)


def _checkpoint(run: Path, name: str = "checkpoint-10") -> Path:
    ckpt = run / name
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text("{}")
    return ckpt


def _row(ex_id: str, prompt: str, output: str = "red") -> dict[str, object]:
    return {"id": ex_id, "output": output, "prompt": prompt, "image": "red.png", "scores": score(output, "red")}


def test_subsets_are_saved_apart_and_share_generated_answers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    evalset = load_eval_set(_eval_file(run / "eval"))
    ckpt = _checkpoint(run)
    settings = DEFAULT_GENERATION
    subset = evalset.first(3)
    ident = result_identity(ckpt, subset, settings)
    saved = CheckpointScores(checkpoint=ckpt.name, step=10, eval_set="toy", settings={},
                             settings_key=ident.settings_key, checkpoint_signature=ident.checkpoint_signature,
                             rows=[_row(ex.id, ex.prompt) for ex in subset.examples], total=3,
                             eval_set_hash=evalset.content_hash, subset="first-3")
    path = save_scores(run, saved)
    assert path.parent.name == f"toy-{evalset.content_hash[:12]}-first-3"
    assert json.loads(path.read_text())["result_key"] == ident.key
    borrowed: dict[str, int] = {}
    whole = prepare_scores(run, [ckpt], evalset, settings, borrowed=borrowed)[ckpt.name]
    assert whole.subset == "all" and whole.n == 3 and not whole.complete  # the three answers, reused
    assert borrowed == {ckpt.name: 3} and whole.identity.key != ident.key
    again = prepare_scores(run, [ckpt], subset, settings)[ckpt.name]
    assert again.identity.key == ident.key and again.complete
    other = prepare_scores(run, [ckpt], subset, GenerationSettings(max_new_tokens=5))[ckpt.name]
    assert other.n == 0  # other settings: nothing to reuse
    table = load_saved_scores(run)
    assert set(table["subset"]) == {"first-3"} and set(table["result_key"]) == {ident.key}
    assert set(table["eval_set_sha256"]) == {evalset.content_hash}


def test_a_ray_worker_refuses_checkpoint_content_other_than_the_identity(tmp_path: Path) -> None:
    """A node with a stale copy of the checkpoint must not score it under the driver's identity."""
    pytest.importorskip("ray")
    from dashboard.compare.ray_backend import CheckpointWorker

    ckpt = _checkpoint(tmp_path / "run")
    worker = CheckpointWorker(str(ckpt), {}, DEFAULT_GENERATION, 2, 10_000, {"allow_pickle": False,
                                                                            "trust_remote_code": False},
                              expected_signature="0-0")
    with pytest.raises(RuntimeError, match="other checkpoint content"):
        worker.load()
