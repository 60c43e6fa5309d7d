"""Weight drift: grouping names into modules, sharded checkpoints, confinement, --against."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dashboard.analysis.drift import DriftError, compare_checkpoints, drift_over_checkpoints
from dashboard.analysis.modules import NameScheme, module_of


@pytest.mark.parametrize(("model_type", "name", "module"), [
    # transformers 5 writes LLaVA's files with the legacy names; the loaded model uses the new ones
    ("llava", "language_model.model.layers.3.self_attn.q_proj.weight", "decoder.layers.3.attention"),
    ("llava", "model.language_model.layers.3.mlp.down_proj.weight", "decoder.layers.3.mlp"),
    ("llava", "language_model.model.layers.0.input_layernorm.weight", "decoder.layers.0.norms"),
    ("llava", "language_model.model.embed_tokens.weight", "embeddings"),
    ("llava", "language_model.model.norm.weight", "final_norm"),
    ("llava", "language_model.lm_head.weight", "lm_head"),
    ("llava", "vision_tower.encoder.layers.1.mlp.fc1.weight", "vision_tower.layers.1"),
    ("llava", "model.vision_tower.vision_model.encoder.layers.1.self_attn.q_proj.bias", "vision_tower.layers.1"),
    ("llava", "vision_tower.embeddings.patch_embedding.weight", "vision_tower.other"),
    ("llava", "multi_modal_projector.linear_1.weight", "projector"),
    # a PEFT adapter's own tensors
    ("llava", "base_model.model.model.language_model.layers.2.self_attn.v_proj.lora_A.weight",
     "decoder.layers.2.attention"),
    # families whose adapters declare other names
    ("qwen2_vl", "visual.merger.mlp.0.weight", "projector"),
    ("qwen2_vl", "visual.blocks.4.attn.qkv.weight", "vision_tower.layers.4"),
    ("qwen2_vl", "model.layers.1.mlp.up_proj.weight", "decoder.layers.1.mlp"),
    ("idefics3", "model.connector.modality_projection.proj.weight", "projector"),
    ("idefics3", "model.vision_model.encoder.layers.0.mlp.fc2.weight", "vision_tower.layers.0"),
    ("idefics3", "model.text_model.layers.5.self_attn.o_proj.weight", "decoder.layers.5.attention"),
    # no adapter: the generic aliases
    ("some_new_vlm", "vision_encoder.blocks.2.ffn.w1", "vision_tower.layers.2"),
    ("some_new_vlm", "mm_projector.0.weight", "projector"),
    ("some_new_vlm", "transformer.h.7.attn.c_attn.weight", "decoder.layers.7.attention"),
])
def test_names_group_into_declared_modules(model_type: str, name: str, module: str) -> None:
    scheme, _declared = NameScheme.for_model_type(model_type)
    assert module_of(name, scheme) == module


def _plant(src: Path, dst: Path, prefix: str, scale: float = 0.5) -> Path:
    shutil.copytree(src, dst)
    tensors = load_file(str(src / "model.safetensors"))
    for name in tensors:
        if name.startswith(prefix):
            tensors[name] = tensors[name] * (1 + scale)
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _shard(folder: Path) -> None:
    """Rewrite ``model.safetensors`` as two shards plus the index transformers writes."""
    tensors = load_file(str(folder / "model.safetensors"))
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for file, part in halves.items():
        save_file({n: tensors[n] for n in part}, str(folder / file), metadata={"format": "pt"})
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {n: f for f, part in halves.items() for n in part}}))


def test_scaling_one_module_gives_exactly_that_relative_change(tiny_llava_dir: Path, tmp_path: Path) -> None:
    a = shutil.copytree(tiny_llava_dir, tmp_path / "run" / "checkpoint-1")
    b = _plant(a, tmp_path / "run" / "checkpoint-2", "multi_modal_projector.", scale=0.5)
    result = compare_checkpoints(a, b, [tmp_path / "run"])
    changes = {m.module: m.relative_change for m in result.modules}
    assert changes["projector"] == pytest.approx(0.5, rel=1e-6)  # ‖1.5θ − θ‖ / ‖θ‖
    assert all(v == 0.0 for k, v in changes.items() if k != "projector")
    assert result.weights == "full" and not result.unmatched and not result.generic_grouping


def test_sharded_checkpoint_reads_like_the_single_file(tiny_llava_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    a = shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    b = _plant(a, run / "checkpoint-2", "language_model.model.layers.1.mlp.", scale=0.25)
    single = compare_checkpoints(a, b, [run])
    _shard(b)
    sharded = compare_checkpoints(a, b, [run])
    assert [(m.module, m.relative_change) for m in sharded.modules] == \
        [(m.module, m.relative_change) for m in single.modules]
    assert sharded.ranked()[0].module == "decoder.layers.1.mlp"


def test_weights_outside_the_runs_root_are_refused(tiny_llava_dir: Path, tmp_path: Path) -> None:
    """A shard index naming a file outside the run must not be read (the loader's confinement)."""
    run = tmp_path / "run"
    a = shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    b = shutil.copytree(tiny_llava_dir, run / "checkpoint-2")
    outside = shutil.copytree(tiny_llava_dir, tmp_path / "elsewhere")
    (b / "model.safetensors").unlink()
    (b / "model.safetensors").symlink_to(outside / "model.safetensors")
    with pytest.raises(DriftError, match="outside the runs root"):
        compare_checkpoints(a, b, [run])


def test_against_previous_and_first(demo_run_dir: Path) -> None:
    checkpoints = sorted(demo_run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    previous = drift_over_checkpoints(checkpoints, [demo_run_dir], "previous")
    first = drift_over_checkpoints(checkpoints, [demo_run_dir], "first")
    assert [r.against for r in previous] == [c.name for c in checkpoints[:-1]]
    assert [r.against for r in first] == [checkpoints[0].name] * (len(checkpoints) - 1)
    assert [(m.module, m.relative_change) for m in previous[0].modules] == \
        [(m.module, m.relative_change) for m in first[0].modules]  # the second checkpoint: same reference
    # real training moves the language model: every decoder layer's attention and MLP changed
    assert all(m.relative_change and m.relative_change > 0 for m in first[-1].modules if m.module.startswith("decoder"))
    with pytest.raises(DriftError, match="at least two"):
        drift_over_checkpoints(checkpoints[:1], [demo_run_dir])


def test_cli_drift_json_from_a_relative_path(demo_run_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture) -> None:
    from dashboard.cli import main

    steps = sorted(int(p.name.split("-")[1]) for p in demo_run_dir.glob("checkpoint-*"))
    monkeypatch.chdir(demo_run_dir.parent)
    assert main(["drift", "--run", demo_run_dir.name, "--checkpoints", f"{steps[0]},{steps[-1]}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (entry,) = out["checkpoints"]
    assert (entry["checkpoint"], entry["step"], entry["against"]) == \
        (f"checkpoint-{steps[-1]}", steps[-1], f"checkpoint-{steps[0]}")
    assert {"module", "relative_change"} <= set(entry["modules"][0])
    assert main(["drift", "--run", demo_run_dir.name, "--checkpoints", str(steps[0])]) == 2


def test_tensors_only_in_one_checkpoint_are_listed(tiny_llava_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    a = shutil.copytree(tiny_llava_dir, run / "checkpoint-1")
    b = shutil.copytree(tiny_llava_dir, run / "checkpoint-2")
    tensors = load_file(str(b / "model.safetensors"))
    tensors["extra.weight"] = torch.ones(3)
    save_file(tensors, str(b / "model.safetensors"), metadata={"format": "pt"})
    assert compare_checkpoints(a, b, [run]).unmatched == ["extra.weight"]


def test_adapter_checkpoints_compare_the_adapters_own_tensors(tiny_llava_dir: Path, tmp_path: Path) -> None:
    """Two PEFT LoRA checkpoints (real ``save_pretrained``) on one base: only the adapter is compared."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText

    run = tmp_path / "run"
    base = shutil.copytree(tiny_llava_dir, run / "base")
    model = AutoModelForImageTextToText.from_pretrained(base)
    peft_model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(run / "checkpoint-1")
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "language_model.layers.1.self_attn.v_proj.lora_B" in name:
                param.mul_(3.0)
    peft_model.save_pretrained(run / "checkpoint-2")
    for step in (1, 2):  # point the adapters at the local base, as a training run inside the runs root would
        config_path = run / f"checkpoint-{step}" / "adapter_config.json"
        config = json.loads(config_path.read_text())
        config["base_model_name_or_path"] = str(base)
        config_path.write_text(json.dumps(config))
    result = compare_checkpoints(run / "checkpoint-1", run / "checkpoint-2", [run])
    assert result.weights == "adapter"
    ranked = result.ranked()
    assert ranked[0].module == "decoder.layers.1.attention" and ranked[0].relative_change > 0
    assert all(m.relative_change == 0.0 for m in ranked[1:])
    adapter_numel = sum(t.numel() for t in load_file(str(run / "checkpoint-2" / "adapter_model.safetensors")).values())
    assert sum(m.parameters for m in result.modules) == adapter_numel  # the base weights are not read
