"""Hostile checkpoints for issue 29: every file a load reads, linked out, sparse, huge or hard-linked.

``build_case(root, outside, model_dir, name, attack)`` copies the tiny LLaVA (``save_pretrained`` of a
real model + processor) to ``root/run/checkpoint-1`` and replaces (or adds) the file ``name`` by:

* ``outside-link`` — a symlink to a *poisoned* copy outside the runs root: the same kind of file, valid,
  carrying :data:`CANARY` where the loaded processor or model would show it (a chat template's text,
  an added token, a config key);
* ``environ-link`` — a symlink to ``/proc/self/environ``;
* ``sparse`` — a 3 GB sparse file (no blocks on disk);
* ``huge`` — a dense file 1 MB over the size limit of its kind;
* ``hard-link`` — a hard link to the poisoned copy outside the root.

:data:`LOAD_FILES` lists the files transformers opens itself when loading a processor and a model
(``/work/shared/README.md``, "Who opens what") beside the ones the app reads first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from dashboard.runs.files import MB, SIZE_LIMITS

CANARY = "VLMLAB_OUTSIDE_CANARY_51e0b2"
"""Written only into files *outside* the runs root: it must never reach a processor, message or log."""
SPARSE_SIZE = 3 * 10**9
LOAD_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "chat_template.jinja", "chat_template.json", "processor_config.json", "preprocessor_config.json",
              "video_preprocessor_config.json", "special_tokens_map.json", "added_tokens.json")
ATTACKS = ("outside-link", "environ-link", "sparse", "huge", "hard-link")


def poisoned(name: str, original: bytes | None) -> bytes:
    """A valid file of ``name``'s type that carries :data:`CANARY` into what a load builds from it."""
    if name.endswith(".jinja"):
        return (original or b"") + f"{CANARY}".encode()
    data = json.loads(original) if original else {}
    if name == "tokenizer.json":
        next_id = max([t["id"] for t in data["added_tokens"]] + list(data["model"]["vocab"].values())) + 1
        data["added_tokens"].append({"id": next_id, "content": CANARY, "single_word": False, "lstrip": False,
                                     "rstrip": False, "normalized": False, "special": True})
    elif name == "added_tokens.json":
        data = {CANARY: 10_000}
    elif name == "special_tokens_map.json":
        data = {"additional_special_tokens": [CANARY]}
    elif name == "chat_template.json":
        data = {"chat_template": CANARY}
    elif name == "tokenizer_config.json":
        data["chat_template"] = CANARY
        data["canary_note"] = CANARY
    else:
        data["canary_note"] = CANARY
    return json.dumps(data).encode()


def build_case(root: Path, outside: Path, model_dir: Path, name: str, attack: str) -> Path:
    """The checkpoint folder of one case (see the module docstring); ``root`` is the runs root."""
    ckpt = root / "run" / "checkpoint-1"
    shutil.copytree(model_dir, ckpt)
    outside.mkdir(parents=True, exist_ok=True)
    target = ckpt / name
    original = target.read_bytes() if target.exists() else None
    if target.exists():
        target.unlink()
    if attack in ("outside-link", "hard-link"):
        source = outside / name
        source.write_bytes(poisoned(name, original))
        if attack == "outside-link":
            target.symlink_to(source)
        else:
            os.link(source, target)
    elif attack == "environ-link":
        target.symlink_to("/proc/self/environ")
    elif attack == "sparse":
        with target.open("wb") as handle:
            handle.truncate(SPARSE_SIZE)
    elif attack == "huge":
        limit = SIZE_LIMITS.get("tokenizer", 64 * MB) if name == "tokenizer.json" else SIZE_LIMITS["json"]
        size = limit + MB
        with target.open("wb") as handle:
            chunk = b" " * MB
            for _ in range(size // MB):
                handle.write(chunk)
    else:
        raise ValueError(attack)
    return ckpt
