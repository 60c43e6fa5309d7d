"""The hostile-run corpus of issue 13: every finding as a run folder, built here (no binaries committed).

``build_corpus(root, outside, model_dir)`` writes one run per finding under ``root`` and the things
they point at under ``outside`` (a folder *outside* the runs root). Model folders are copies of
the session's tiny LLaVA (``save_pretrained`` of a real model + processor), then edited the way an
attacker would. ``SECRET`` is planted in the environment by the tests that read
``/proc/self/environ`` through a symlink.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tests.hostile.hostile_files import encode, sample_rgb, zero_png

SECRET = "VLMLAB_TEST_SECRET_7f3a9c_do_not_leak"
LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")
REMOTE_IMAGE = "![pixel](http://evil.example/track.png)"


def environment_secrets() -> list[str]:
    """What a leak of ``/proc/self/environ`` would show: the planted secret, if this process was
    started with it, and every long ``KEY=VALUE`` entry of the environment the process began with
    (``/proc/self/environ`` is fixed at exec; variables set later are not in it)."""
    entries = Path("/proc/self/environ").read_bytes().split(b"\0")
    found = [e.decode("utf-8", "replace") for e in entries if len(e) > 24 and b"=" in e]
    return [SECRET, *found]


def _model(model_dir: Path, target: Path) -> Path:
    shutil.copytree(model_dir, target)
    return target


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path.write_text(json.dumps(data))


def _state(run: Path, **extra) -> None:
    (run / "trainer_state.json").write_text(json.dumps({"global_step": 2, "log_history": [
        {"loss": 1.0, "step": 1}, {"loss": 0.5, "step": 2}], **extra}))


def _eval_row(image: str, **extra) -> str:
    return json.dumps({"image": image, "prompt": "What colour?", "answer": "red", **extra})


def _sparse(path: Path, size: int) -> Path:
    with path.open("wb") as handle:
        handle.truncate(size)
    return path


def build_corpus(root: Path, outside: Path, model_dir: Path) -> dict[str, Path]:
    """Write the corpus; returns run name → run folder."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Path] = {}

    def run(name: str) -> Path:
        path = root / name
        path.mkdir()
        runs[name] = path
        return path

    # Things outside the runs root that hostile runs point at.
    out_model = _model(model_dir, outside / "model")
    (outside / "pic.png").write_bytes(encode(sample_rgb(), "PNG"))
    (outside / "set.jsonl").write_text(_eval_row(str(outside / "pic.png")) + "\n")
    _state(outside, best_metric=0.1)
    (outside / "events.out.tfevents.1.host").write_bytes(b"")

    # Secrets: eval files that are links to the environment, the password file, a set outside.
    r = run("secret-links")
    _model(model_dir, r / "checkpoint-1")
    (r / "eval").mkdir()
    (r / "eval" / "environ.csv").symlink_to("/proc/self/environ")
    (r / "eval" / "environ.jsonl").symlink_to("/proc/self/environ")
    (r / "eval" / "passwd.csv").symlink_to("/etc/passwd")
    (r / "eval" / "outside.jsonl").symlink_to(outside / "set.jsonl")
    (r / "eval" / "good.jsonl").write_text(_eval_row("../pic.png") + "\n" + _eval_row(str(outside / "pic.png"))
                                           + "\n")
    (r / "pic.png").write_bytes(encode(sample_rgb(), "PNG"))

    # Reads outside the root: trainer_state, event files and a checkpoint linked out.
    r = run("linked-out")
    _model(model_dir, r / "checkpoint-1")
    (r / "checkpoint-2").symlink_to(out_model, target_is_directory=True)
    (r / "trainer_state.json").symlink_to(outside / "trainer_state.json")
    (r / "runs").mkdir()
    (r / "runs" / "events.out.tfevents.2.host").symlink_to(outside / "events.out.tfevents.1.host")

    # Shard index with absolute weight_map paths outside the root.
    r = run("shard-escape")
    ckpt = _model(model_dir, r / "checkpoint-1")
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {"a": str(out_model / "model.safetensors")}}))

    # PEFT adapter whose base model lies outside the root.
    r = run("adapter-escape")
    ckpt = r / "checkpoint-1"
    ckpt.mkdir()
    (ckpt / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                          "base_model_name_or_path": str(out_model)}))
    (ckpt / "adapter_model.safetensors").write_bytes((out_model / "model.safetensors").read_bytes())

    # eval_results is a link to a folder outside the root.
    r = run("results-link")
    _model(model_dir, r / "checkpoint-1")
    (outside / "results-target").mkdir()
    (r / "eval_results").symlink_to(outside / "results-target", target_is_directory=True)

    # Configs that allocate: 20000 layers beside small weights; a 30000 px processor.
    r = run("huge-config")
    ckpt = _model(model_dir, r / "checkpoint-1")
    _edit_json(ckpt / "config.json", **{"text_config.num_hidden_layers": 20000})
    r = run("many-layers")  # plausible count, still far more than the weights hold
    ckpt = _model(model_dir, r / "checkpoint-1")
    _edit_json(ckpt / "config.json", **{"text_config.num_hidden_layers": 200})
    r = run("processor-30000")
    ckpt = _model(model_dir, r / "checkpoint-1")
    processor = json.loads((ckpt / "processor_config.json").read_text())
    image_proc = processor.get("image_processor", processor)
    image_proc["size"] = {"shortest_edge": 30000}
    image_proc["crop_size"] = {"height": 30000, "width": 30000}
    (ckpt / "processor_config.json").write_text(json.dumps(processor))

    # Chat templates that never return, allocate, or break the sandbox.
    for name, template in {
        "template-multiply": "{% set s = 'x' * 20000000000 %}{{ s }}",
        "template-loops": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        "template-sandbox": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    }.items():
        r = run(name)
        ckpt = _model(model_dir, r / "checkpoint-1")
        (ckpt / "chat_template.jinja").write_text(template)

    # Logs that crash or exhaust on arrival.
    r = run("deep-log")
    _model(model_dir, r / "checkpoint-1")
    depth = 200_000
    (r / "trainer_state.json").write_text('{"global_step": 1, "log_history": ' + "[" * depth + "]" * depth + "}")
    r = run("sparse-state")
    _model(model_dir, r / "checkpoint-1")
    _sparse(r / "trainer_state.json", 4 * 10**9)
    r = run("sparse-events")
    _model(model_dir, r / "checkpoint-1")
    (r / "runs").mkdir()
    _sparse(r / "runs" / "events.out.tfevents.3.host", 160 * 10**6)

    # Step names: non-ASCII digits, beyond int64.
    r = run("odd-steps")
    _model(model_dir, r / "checkpoint-1")
    _model(model_dir, r / "checkpoint-٣٤٥")
    _model(model_dir, r / "checkpoint-99999999999999999999999999999")

    # Git LFS pointers (a clone without `git lfs pull`).
    r = run("lfs-pointers")
    ckpt = _model(model_dir, r / "checkpoint-1")
    (ckpt / "model.safetensors").write_bytes(LFS_POINTER)
    (r / "trainer_state.json").write_bytes(LFS_POINTER)

    # A LoRA run whose root holds adapter_config.json (no weights) beside its checkpoints.
    r = run("lora-root")
    _model(model_dir, r / "base")  # the local base the adapters name: without it they are not loadable
    for step in (1, 2):
        ckpt = r / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA",
                                                              "base_model_name_or_path": "../base"}))
        (ckpt / "adapter_model.safetensors").write_bytes((model_dir / "model.safetensors").read_bytes())
    (r / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "base_model_name_or_path": "base"}))
    (r / "README.md").write_text("LoRA run\n")

    # Windows-style best_model_checkpoint from another machine, plus a Markdown image in it.
    r = run("windows-best")
    for step in (1, 2):
        _model(model_dir, r / f"checkpoint-{step}")
    _state(r, best_model_checkpoint="D:\\runs\\exp\\checkpoint-2", best_global_step=2)
    r = run("foreign-best")
    _model(model_dir, r / "checkpoint-1")
    _model(model_dir, r / "checkpoint-2")
    _state(r, best_model_checkpoint=f"/elsewhere/{REMOTE_IMAGE}/checkpoint-9", best_global_step=1)

    # Markdown/HTML in eval rows; images too wide or too thin.
    r = run("markdown-and-images")
    _model(model_dir, r / "checkpoint-1")
    (r / "eval").mkdir()
    (r / "eval" / "ok.png").write_bytes(encode(sample_rgb(), "PNG"))
    (r / "eval" / "wide.png").write_bytes(zero_png(70_000, 20))
    (r / "eval" / "strip.png").write_bytes(zero_png(2_000_000, 20))
    (r / "eval" / "md.jsonl").write_text("\n".join([
        _eval_row("ok.png", id=REMOTE_IMAGE, prompt=f"{REMOTE_IMAGE} <img src=http://evil.example/x.png>",
                  answer=REMOTE_IMAGE),
        _eval_row("wide.png", id="wide"), _eval_row("strip.png", id="strip")]) + "\n")
    os.utime(root)
    return runs
