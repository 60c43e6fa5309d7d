"""Checkpoint inspection/loading: refusal paths give specific, actionable errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dashboard.models.loading import (
    CheckpointLoadError,
    PickleRefusedError,
    RemoteCodeRequiredError,
    inspect_checkpoint,
    load_checkpoint,
)
from dashboard.models.pool import ModelPool

CPU = torch.device("cpu")


@pytest.fixture()
def ckpt(tiny_llava_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run" / "checkpoint-300"
    shutil.copytree(tiny_llava_dir, target)
    return target


def test_loads_eval_mode_on_cpu_fp32(ckpt):
    loaded = load_checkpoint(ckpt, CPU)
    assert loaded.model.training is False
    assert loaded.dtype == torch.float32 and loaded.device == CPU
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert all(not p.requires_grad for p in loaded.model.parameters())
    assert loaded.model_type == "llava"
    expected = sum(t.numel() * t.element_size() for t in [*loaded.model.parameters(), *loaded.model.buffers()])
    assert loaded.nbytes == expected
    # the header-based estimate used for eviction is close to the real footprint
    assert abs(inspect_checkpoint(ckpt).estimated_bytes - loaded.nbytes) / loaded.nbytes < 0.05


def test_missing_folder(tmp_path):
    with pytest.raises(CheckpointLoadError, match="does not exist"):
        inspect_checkpoint(tmp_path / "checkpoint-9")


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointLoadError, match=r"checkpoint-300: no model weights \(model.safetensors missing\)"):
        inspect_checkpoint(ckpt)


def test_missing_config(ckpt):
    (ckpt / "config.json").unlink()
    with pytest.raises(CheckpointLoadError, match=r"no config.json"):
        inspect_checkpoint(ckpt)


def test_corrupt_config(ckpt):
    (ckpt / "config.json").write_text("{not json")
    with pytest.raises(CheckpointLoadError, match=r"config.json: not valid JSON"):
        inspect_checkpoint(ckpt)


@pytest.mark.parametrize("keep", [4, 100, -1000])
def test_truncated_safetensors(ckpt, keep):
    weights = ckpt / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep])
    with pytest.raises(CheckpointLoadError, match=r"model.safetensors is truncated/corrupt"):
        inspect_checkpoint(ckpt)


def test_garbage_safetensors_header(ckpt):
    weights = ckpt / "model.safetensors"
    weights.write_bytes((20).to_bytes(8, "little") + b"\xff" * 20 + b"\0" * 100)
    with pytest.raises(CheckpointLoadError, match="truncated/corrupt"):
        inspect_checkpoint(ckpt)


def test_pickle_only_refused_then_allowed(ckpt):
    model = load_checkpoint(ckpt, CPU).model
    (ckpt / "model.safetensors").unlink()
    torch.save(model.state_dict(), ckpt / "pytorch_model.bin")  # what older Trainer versions wrote
    with pytest.raises(PickleRefusedError, match=r"pickle-only weights \(pytorch_model.bin\) are refused.*"
                                                 r"VLMLAB_ALLOW_PICKLE=1.*weights_only=True"):
        inspect_checkpoint(ckpt)
    pool = ModelPool(10**9, device="cpu", allow_pickle=True)
    with pool.acquire(ckpt) as loaded:
        reference = model.state_dict()
        for name, tensor in loaded.model.state_dict().items():
            assert torch.equal(tensor, reference[name]), name


class _CodeRunningPickle:
    """Unpickling this calls ``open(marker, "w")``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_allowed_pickle_still_refuses_code_execution(ckpt, tmp_path):
    marker = tmp_path / "pwned"
    (ckpt / "model.safetensors").unlink()
    torch.save({"evil": _CodeRunningPickle(marker)}, ckpt / "pytorch_model.bin")
    pool = ModelPool(10**9, device="cpu", allow_pickle=True)
    with pytest.raises(CheckpointLoadError, match="cannot load checkpoint-300"), pool.acquire(ckpt):
        pass
    assert not marker.exists(), "torch.load ran code from the pickle (weights_only not in effect)"
    assert pool.entries() == []


def test_remote_code_refused(ckpt):
    config = json.loads((ckpt / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageTextToText": "modeling_evil.EvilModel"}
    (ckpt / "config.json").write_text(json.dumps(config))
    with pytest.raises(RemoteCodeRequiredError, match="requires trust_remote_code"):
        inspect_checkpoint(ckpt)
    with pytest.raises(RemoteCodeRequiredError), ModelPool(10**9, device="cpu").acquire(ckpt):
        pass


def test_sharded_index_with_missing_shard(ckpt):
    (ckpt / "model.safetensors").rename(ckpt / "model-00001-of-00002.safetensors")
    index = {"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors",
                                            "b": "model-00002-of-00002.safetensors"}}
    (ckpt / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointLoadError, match=r"shard\(s\) missing: model-00002-of-00002.safetensors"):
        inspect_checkpoint(ckpt)


def _save_adapter(base: Path, out: Path) -> dict[str, torch.Tensor]:
    peft = pytest.importorskip("peft")
    model = load_checkpoint(base, CPU).model
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = peft.get_peft_model(model, config)
    peft_model.save_pretrained(out)
    merged = peft_model.merge_and_unload()
    return {k: v.clone() for k, v in merged.state_dict().items()}


def test_peft_adapter_loads_onto_local_base(ckpt, tmp_path):
    adapter = tmp_path / "run" / "checkpoint-adapter"
    expected = _save_adapter(ckpt, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(ckpt)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    plan = inspect_checkpoint(adapter)
    assert plan.is_adapter and plan.base_path == ckpt.resolve()
    loaded = load_checkpoint(adapter, CPU)
    state = loaded.model.state_dict()
    changed = [k for k in expected if "q_proj" in k and not torch.allclose(state[k], expected[k])]
    assert not changed
    base_state = load_checkpoint(ckpt, CPU).model.state_dict()
    assert any(not torch.equal(state[k], base_state[k]) for k in state if "q_proj" in k)  # adapter was applied


def test_peft_adapter_with_unavailable_base(ckpt, tmp_path):
    adapter = tmp_path / "run" / "checkpoint-adapter"
    _save_adapter(ckpt, adapter)
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "some-org/some-hub-model"
    (adapter / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointLoadError, match="base model 'some-org/some-hub-model' is not a local folder"):
        inspect_checkpoint(adapter)
