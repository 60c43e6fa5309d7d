"""Planted changes: noise in exactly one part of a trained checkpoint, and drift and patch must find it.

A is the test-preset demo run's last checkpoint; B is A with large Gaussian noise (std = the
tensor's own std) in the projector, one decoder layer's MLP (layer = seed mod layers), or the
vision tower's layer. Each kind is tried with 20 noise seeds; every trial must rank the planted
part first. Patch runs on the first eval example where A and B answer differently.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dashboard.analysis.drift import compare_checkpoints
from dashboard.analysis.patching import patch_checkpoints
from dashboard.evalset import find_eval_sets, load_eval_set
from dashboard.generation import GenerationSettings
from dashboard.models.loading import load_checkpoint
from tests.analysis.conftest import PlantedRoot

SEEDS = range(20)
KINDS = ("projector", "decoder-mlp", "vision")
SETTINGS = GenerationSettings(max_new_tokens=6)  # the demo's answers are two or three tokens


@pytest.mark.parametrize("kind", KINDS)
def test_drift_ranks_the_planted_module_first(planted_root: PlantedRoot, kind: str) -> None:
    for seed in SEEDS:
        b, plant = planted_root.planted(kind, seed)
        result = compare_checkpoints(planted_root.a, b, [planted_root.root])
        ranked = result.ranked()
        assert ranked[0].module == plant.drift_module, (seed, [(m.module, m.relative_change) for m in ranked[:3]])
        assert ranked[0].relative_change is not None and ranked[0].relative_change > 0.5
        assert all(m.relative_change == 0.0 for m in ranked[1:]), seed  # nothing else was touched


@pytest.mark.parametrize("kind", KINDS)
def test_patch_ranks_the_planted_component_and_layer_first(planted_root: PlantedRoot, demo_run_dir: Path,
                                                            kind: str) -> None:
    examples = load_eval_set(find_eval_sets(demo_run_dir)[0], roots=[demo_run_dir]).examples
    a = load_checkpoint(planted_root.a, torch.device("cpu"), torch.float32, roots=[planted_root.root])
    failures = []
    for seed in SEEDS:
        path, plant = planted_root.planted(kind, seed)
        b = load_checkpoint(path, torch.device("cpu"), torch.float32, roots=[planted_root.root])
        report = patch_checkpoints(a, b, examples, [demo_run_dir], settings=SETTINGS)
        assert report.a["answer"] != report.b["answer"] or report.a["token"] != report.b["token"]
        assert report.logit_diff["a"] < report.logit_diff["b"]  # A prefers its token, B its own
        components = {c["component"]: c for c in report.components}
        assert components["LM head"]["restored"] == pytest.approx(1.0, abs=1e-4)  # B's logits are B's logits
        ranking = report.component_ranking()
        layers = report.layer_ranking()
        if ranking[0] != plant.component or (kind == "decoder-mlp" and layers[0] != plant.layer):
            failures.append((seed, ranking, layers, {k: round(v["introduced"], 3) for k, v in components.items()}))
    assert not failures, failures
