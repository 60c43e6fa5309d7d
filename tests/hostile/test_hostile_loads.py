"""Issue 29: every byte a checkpoint load reads passes the walls, including the files transformers opens.

Fails on main (checked 2026-12-06 by running this file against main's code, see the report of issue 29):

* ``chat_template.jinja`` → ``/proc/self/environ`` or → an outside file: main loads the checkpoint and
  ``processor.chat_template`` *is* the server's environment / the outside file (the canary appears);
  likewise every file only transformers opens (tokenizer, tokenizer_config, chat_template.json,
  generation_config, special_tokens_map, added_tokens): linked out, the canary reaches the processor
  or the model's config; sparse, it is read whole (a 3 GB sparse ``tokenizer.json`` peaked at 6.3 GB);
  huge, it is read whole; and the Home/sidebar listing calls all of them loadable.
* a *hard link* to an outside file passes main's confinement for every file type, ``config.json`` and
  the processor configs included (main only resolves symlinks).
* the folder-swap race: main opens only the last component with ``O_NOFOLLOW``, so a folder swapped for
  a symlink between the check and the open returns the outside file.

Already refused on main (kept as regression guards): ``config.json``, ``processor_config.json`` and
``preprocessor_config.json`` linked out, sparse or huge (the app read those itself through the opener).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
import torch

from dashboard.models.loading import CheckpointLoadError, load_checkpoint
from dashboard.runs.checkpoints import inspect_checkpoint as list_checkpoint
from dashboard.runs.files import RunFileError, open_checked, read_bytes
from tests.hostile.load_corpus import ATTACKS, CANARY, LOAD_FILES, build_case
from tests.hostile.walls_corpus import SECRET, environment_secrets

CPU = torch.device("cpu")
RACE_READS = 3_000


@pytest.fixture()
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("VLMLAB_PLANTED", SECRET)
    return SECRET


def _surfaces(loaded) -> list[str]:
    """Everything a loaded checkpoint shows: templates, tokens, processor and model configs."""
    processor = loaded.processor
    tokenizer = getattr(processor, "tokenizer", processor)
    return [str(getattr(processor, "chat_template", "")), str(getattr(tokenizer, "chat_template", "")),
            str(sorted(tokenizer.get_vocab())), str(tokenizer.init_kwargs), str(tokenizer.all_special_tokens),
            processor.to_json_string(), loaded.model.config.to_json_string(),
            loaded.model.generation_config.to_json_string()]


def _secrets() -> list[str]:
    return [CANARY, *environment_secrets()]


@pytest.mark.parametrize("attack", ATTACKS)
@pytest.mark.parametrize("name", LOAD_FILES)
def test_every_file_a_load_reads_is_checked(tmp_path: Path, tiny_llava_dir: Path, secret_env: str,
                                            caplog: pytest.LogCaptureFixture, name: str, attack: str) -> None:
    """Linked out, linked to the environment, sparse, huge or hard-linked: the load is refused with a
    message naming the file, the listing does not offer it, and no secret reaches a message, a log
    line or (were it loaded) any attribute of the processor or model."""
    root = tmp_path / "runs"
    ckpt = build_case(root, tmp_path / "outside", tiny_llava_dir, name, attack)
    caplog.set_level(logging.DEBUG)
    loaded, message = None, ""
    try:
        loaded = load_checkpoint(ckpt, CPU, roots=[root])
    except CheckpointLoadError as exc:
        message = str(exc)
    listed = list_checkpoint(ckpt, roots=[root])
    shown = [message, caplog.text, *listed.problems, *(_surfaces(loaded) if loaded else [])]
    leaked = [s for s in _secrets() if any(s in text for text in shown)]
    assert not leaked, f"{name} ({attack}) leaked {leaked[0][:30]!r}"
    assert loaded is None, f"{name} ({attack}) was loaded"
    assert name in message, message
    assert not listed.loadable and any(name in p for p in listed.problems), listed.problems
    if attack in ("sparse", "huge"):
        assert "sparse" in message or "limit" in message, message
    if attack == "hard-link":
        assert "hard link" in message


def test_unknown_files_are_not_staged(tmp_path: Path, tiny_llava_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the allow-listed files reach the staging folder transformers loads from: a symlink to an
    outside file under a name the load does not use (``vocab.bin``) is never seen, and the load works.
    On main there is no staging folder: transformers opened the run folder itself."""
    from dashboard.models import staging

    root = tmp_path / "runs"
    ckpt = build_case(root, tmp_path / "outside", tiny_llava_dir, "chat_template.jinja", "outside-link")
    (ckpt / "chat_template.jinja").unlink()
    (ckpt / "chat_template.jinja").write_text((tiny_llava_dir / "chat_template.jinja").read_text())
    (ckpt / "vocab.bin").symlink_to(tmp_path / "outside" / "chat_template.jinja")
    seen: list[set[str]] = []
    folders: list[Path] = []
    links: list[str] = []
    real_staged = staging.staged

    def spy(*args, **kwargs):
        manager = real_staged(*args, **kwargs)

        class Watch:
            def __enter__(self):
                stage = manager.__enter__()
                seen.append({str(p.relative_to(stage.folder)) for p in stage.folder.rglob("*")})
                folders.append(stage.folder)
                links.append(os.readlink(stage.folder / "model.safetensors"))
                return stage

            def __exit__(self, *exc):
                return manager.__exit__(*exc)

        return Watch()

    monkeypatch.setattr("dashboard.models.loading.staged", spy)
    loaded = load_checkpoint(ckpt, CPU, roots=[root])
    assert CANARY not in " ".join(_surfaces(loaded))
    assert seen and all("vocab.bin" not in names for names in seen)
    assert all(names <= set(os.listdir(tiny_llava_dir)) for names in seen), seen
    assert folders and not any(f.exists() for f in folders)  # removed after each load
    # zero-copy: the staged weights are a link to the descriptor the opener checked, not a copy
    assert links and all(link.startswith("/proc/self/fd/") for link in links), links


def test_folder_swapped_for_a_symlink_never_redirects_a_read(tmp_path: Path) -> None:
    """A thread swaps a checked sub-folder for a symlink to an outside folder (and back) while reads go
    through ``open_checked``: no read ever returns the outside file. On main (only the last component
    opened with ``O_NOFOLLOW``) the outside content came back 7,339 times in 15 s."""
    root = tmp_path / "runs"
    sub = root / "run" / "checkpoint-1"
    sub.mkdir(parents=True)
    (sub / "config.json").write_text('{"inside": true}')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.json").write_text(f'{{"secret": "{CANARY}"}}')
    parked, link = root / "run" / "parked", root / "run" / "link"
    link.symlink_to(outside, target_is_directory=True)
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            os.rename(sub, parked)
            os.rename(link, sub)
            os.rename(sub, link)
            os.rename(parked, sub)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    outcomes = {"inside": 0, "refused": 0}
    try:
        for _ in range(RACE_READS):
            try:
                data = read_bytes(sub / "config.json", [root], "json")
            except (RunFileError, FileNotFoundError):
                outcomes["refused"] += 1
                continue
            assert CANARY.encode() not in data, "a read followed the swapped-in symlink out of the root"
            outcomes["inside"] += 1
    finally:
        stop.set()
        swapper.join()
    assert outcomes["inside"] + outcomes["refused"] == RACE_READS


def test_hard_link_rule(tmp_path: Path) -> None:
    """A hard-linked config is refused (it may be a file from outside the root); hard-linked weights are
    read (checkpoint dedup with ``cp -al`` is common and weights never become text). Main read both."""
    root = tmp_path / "runs"
    root.mkdir()
    (tmp_path / "secret.json").write_text(f'{{"k": "{CANARY}"}}')
    os.link(tmp_path / "secret.json", root / "config.json")
    with pytest.raises(RunFileError, match="hard link") as info:
        read_bytes(root / "config.json", [root], "json")
    assert CANARY not in str(info.value)
    (tmp_path / "w.safetensors").write_bytes(b"\0" * 64)
    os.link(tmp_path / "w.safetensors", root / "model.safetensors")
    with open_checked(root / "model.safetensors", [root], "weights") as handle:
        assert len(handle.read()) == 64
