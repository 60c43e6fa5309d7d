"""The README's family table says what the adapter registry, the fixtures and the geometry oracle actually give."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dashboard.attention.adapters import REGISTRY, unavailable_reason
from tests.attention import family_checkpoints as fc

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> dict[str, tuple[str, str, str]]:
    text = README.read_text(encoding="utf-8").split("## Supported model families", 1)[1].split("\n## ", 1)[0]
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| family | model_type |"))
    table = []  # the families table only: the section's other tables (faithfulness figures) are not families
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        table.append(line)
    rows = [line.strip().strip("|").split("|") for line in table if line.startswith("| ")]
    return {cells[1].strip(): (cells[2].strip(), cells[3].strip(), cells[4].strip()) for cells in rows[1:]}


def test_readme_table_matches_registry_and_fixtures(oracle_reports: dict[str, dict[str, Any]]) -> None:
    table = _table()
    assert set(table) == set(fc.BUILDERS) | set(fc.UNLOADABLE)  # every tested family is listed, and only those
    for model_type, (generates, attention, order) in table.items():
        if model_type in fc.UNLOADABLE:  # test_mistral3: the load fails, the page and geometry say why
            reason = f"no: {unavailable_reason(model_type)[1]}"
            assert (generates, attention, order) == (reason, reason, "—"), model_type
            continue
        assert generates == "yes"  # test_families.test_loads_and_generates covers each builder
        if model_type in REGISTRY:
            # "yes" only where the geometry oracle passes on this family's fixture
            assert attention == "yes", model_type
            assert oracle_reports[model_type]["min_iou"] >= 0.99, (model_type, oracle_reports[model_type]["worst"])
            # the adapter's declared order (test_families checks each layout's segments against its views)
            assert order == REGISTRY[model_type].token_order, model_type
        else:
            assert attention == f"no: {unavailable_reason(model_type)[1]}", model_type
            assert order == "—", model_type
