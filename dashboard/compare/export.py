"""Export a comparison (outputs, diffs, timings, scores, settings, checkpoint metadata).

JSON keeps the full structure; CSV is one flat row per checkpoint (single example) or per
(example, checkpoint) (eval set), for spreadsheets. Model output is untrusted, so CSV cells
that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``…) are prefixed with ``'``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dashboard.compare.diff import diff_text, ops_as_dicts, similarity
from dashboard.compare.results import CheckpointScores, checkpoint_step
from dashboard.compare.runner import SingleOutput
from dashboard.csv_export import csv_safe as csv_safe  # re-exported: the one formula-safe cell
from dashboard.csv_export import rows_csv_bytes
from dashboard.evalset import EvalSet

EXPORT_VERSION = 2
"""2: the eval-set export carries the page's view (pair, regression pair and metric, example filter),
the eval file's sha256 and subset apart, and each checkpoint's result key."""


def checkpoint_metadata(info: Any) -> dict[str, Any]:
    """JSON-friendly facts about a checkpoint: a ``CheckpointInfo`` or just a folder path."""
    if isinstance(info, (str, Path)):
        path = Path(info)
        try:
            stat = path.stat()
            modified: str | None = datetime.fromtimestamp(stat.st_mtime, timezone.utc).isoformat()
        except OSError:
            modified = None
        return {"name": path.name, "path": str(path), "step": checkpoint_step(path.name), "modified": modified}
    modified_at = getattr(info, "modified", None)
    return {"name": info.name, "path": str(info.path), "step": info.step,
            "size_bytes": getattr(info, "size_bytes", None),
            "modified": modified_at.isoformat() if isinstance(modified_at, datetime) else None,
            "weight_format": getattr(info, "weight_format", None), "model_type": getattr(info, "model_type", None),
            "is_adapter": getattr(info, "is_adapter", None)}


def single_export(outputs: Sequence[SingleOutput], *, reference: str, prompt: str, image_name: str,
                  image_digest: str, settings: Mapping[str, Any],
                  checkpoints: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """One (image, prompt) across checkpoints, each output diffed against ``reference``."""
    ref_text = next((o.text for o in outputs if o.name == reference), "")
    return {
        "kind": "single_example", "version": EXPORT_VERSION, "exported_at": time.time(),
        "settings": dict(settings), "prompt": prompt, "image": {"name": image_name, "digest": image_digest},
        "reference_checkpoint": reference,
        "checkpoints": [dict((checkpoints or {}).get(o.name) or checkpoint_metadata(o.checkpoint)) for o in outputs],
        "outputs": [{
            "checkpoint": o.name, "step": o.step, "output": o.text, "error": o.error,
            "prompt_tokens": o.prompt_tokens, "output_tokens": o.output_tokens,
            "load_s": o.load_s, "generation_s": o.generation_s, "tokens_per_s": o.tokens_per_s, "ttft_s": o.ttft_s,
            "similarity_to_reference": similarity(ref_text, o.text) if o.ok else None,
            "diff_vs_reference": ops_as_dicts(ref_text, o.text) if o.ok else [],
            "diff_text": diff_text(ref_text, o.text) if o.ok else "",
        } for o in outputs],
    }


@dataclass(frozen=True)
class EvalView:
    """What the Comparison page shows, so its export carries exactly that (not a fixed default).

    ``pair``: the *Paired comparison* A and B; ``regression``: the *Regressions* earlier, later
    and metric; ``example_metric`` / ``example_filter``: the per-example table's score and filter.
    ``None`` means the section is not on the page (fewer than two scored checkpoints).
    """

    group_by: str | None = "task"
    pair: tuple[str, str] | None = None
    regression: tuple[str, str, str] | None = None
    example_metric: str | None = None
    example_filter: str = "All examples"

    def as_dict(self, shown: int, total: int) -> dict[str, Any]:
        return {"group_by": self.group_by, "pair": list(self.pair) if self.pair else None,
                "regression": (dict(zip(("earlier", "later", "metric"), self.regression, strict=True))
                               if self.regression else None),
                "example_metric": self.example_metric, "example_filter": self.example_filter,
                "examples_shown": shown, "examples_total": total}


def _default_view(scores: Mapping[str, CheckpointScores], metrics: Sequence[str], group_by: str | None) -> EvalView:
    """Without a page (tests, scripts): first against last scored checkpoint on the first metric, all examples."""
    names = [n for n, s in scores.items() if s.n]
    pair = (names[0], names[-1]) if len(names) >= 2 else None
    return EvalView(group_by=group_by, pair=pair,
                    regression=(pair[0], pair[1], metrics[0]) if pair and metrics else None,
                    example_metric=metrics[0] if metrics else None)


def _shown_ids(evalset: EvalSet, scores: Mapping[str, CheckpointScores], view: EvalView) -> list[str]:
    from dashboard.compare.tables import example_frame, filter_examples

    if view.example_metric is None:
        return [ex.id for ex in evalset.examples]
    frame = filter_examples(example_frame(evalset, scores, view.example_metric, with_thumbnails=False),
                            view.example_filter)
    return [str(i) for i in frame["id"]] if not frame.empty else []


def eval_export(evalset: EvalSet, scores: Mapping[str, CheckpointScores], *, metrics: Sequence[str],
                settings: Mapping[str, Any], reference: str | None = None,
                checkpoints: Mapping[str, Mapping[str, Any]] | None = None, run: str | None = None,
                group_by: str | None = "task", view: EvalView | None = None) -> dict[str, Any]:
    """An eval-set comparison as the page shows it (``view``): per-checkpoint means with 95 % CIs,
    the per-group table, all paired tests and the page's pair, the page's regression list,
    provenance (run, checkpoints with result keys, settings, eval file sha256, subset) and the
    per-example rows the page's filter shows."""
    from dashboard.compare.regressions import find_regressions
    from dashboard.compare.report import eval_report, group_table, paired, summarize

    view = view or _default_view(scores, metrics, group_by)
    group_by = view.group_by
    report = eval_report(evalset, scores, settings=settings, metrics=metrics, group_by=group_by)
    summaries = [summarize(evalset, s, metrics, group_by=group_by) for s in scores.values()]
    by_ckpt = {name: {str(r["id"]): r for r in s.rows} for name, s in scores.items()}
    shown = set(_shown_ids(evalset, scores, view))
    examples = []
    for ex in (e for e in evalset.examples if e.id in shown):
        ref_out = by_ckpt.get(reference or "", {}).get(ex.id, {}).get("output")
        outs = {}
        for name, rows in by_ckpt.items():
            row = rows.get(ex.id)
            if row is None:
                continue
            item = {"output": row.get("output", ""), "scores": {m: row.get("scores", {}).get(m) for m in metrics},
                    "latency_s": row.get("latency_s"), "output_tokens": row.get("output_tokens")}
            if row.get("error"):
                item["error"] = row["error"]
            if ref_out is not None:
                item["diff_text"] = diff_text(ref_out, item["output"])
            outs[name] = item
        examples.append({"id": ex.id, "image": str(ex.image_path), "prompt": ex.prompt, "answer": ex.answer,
                         "task": ex.task, "outputs": outs})
    return {
        "kind": "eval_set", "version": EXPORT_VERSION, "exported_at": time.time(),
        "eval_set": {**report["eval_set"], "path": str(evalset.path), "problems": list(evalset.problems)},
        "settings": dict(settings), "metrics": list(metrics), "reference_checkpoint": reference,
        "checkpoints": [dict((checkpoints or {}).get(name) or {"name": name, "step": s.step}) for name, s in
                        scores.items()],
        "summary": [{"checkpoint": name, "step": s.step, "n": s.n, "complete": s.complete,
                     **{m: s.metrics.get(m) for m in metrics},
                     **{f"{m}_ci95": ck["metrics"][m]["ci95"] for m in metrics}}
                    for (name, s), ck in zip(scores.items(), report["checkpoints"], strict=True)],
        "provenance": {"run": run, "eval_set_sha256": report["eval_set"]["sha256"],
                       "subset": report["eval_set"]["subset"],
                       "checkpoints": [{"name": n, "step": s.step, "result_key": s.identity.key}
                                       for n, s in scores.items()],
                       "settings": dict(settings), "group_by": group_by},
        "view": view.as_dict(len(examples), len(evalset.examples)),
        "by_group": group_table(summaries, metrics),
        "paired": report["paired"],
        "shown_pair": ([paired(scores[view.pair[0]], scores[view.pair[1]], m).as_dict() for m in metrics]
                       if view.pair else None),
        "regressions": ({**find_regressions(evalset, scores[view.regression[0]], scores[view.regression[1]],
                                            view.regression[2]).as_dict(),
                         "earlier": view.regression[0], "later": view.regression[1], "metric": view.regression[2]}
                        if view.regression else None),
        "examples": examples,
    }


def summary_csv_bytes(data: Mapping[str, Any]) -> bytes:
    """CSV of an :func:`eval_export`'s statistics: one row per (checkpoint or group, metric),
    with value, 95 % CI and n, and the provenance repeated on every row so a copied file keeps it."""
    prov = data["provenance"]
    common = {"run": prov["run"], "eval_set": data["eval_set"]["name"], "eval_set_sha256": prov["eval_set_sha256"],
              "subset": prov["subset"], "group_by": prov["group_by"],
              "settings": json.dumps(prov["settings"], sort_keys=True)}
    keys = {c["name"]: c["result_key"] for c in prov["checkpoints"]}
    rows: list[dict[str, Any]] = []
    for item in data["summary"]:
        for m in data["metrics"]:
            lo, hi = item[f"{m}_ci95"]
            rows.append({"checkpoint": item["checkpoint"], "step": item["step"], "group": "(all)", "metric": m,
                         "value": item[m], "ci95_low": lo, "ci95_high": hi, "n": item["n"], **common,
                         "result_key": keys.get(item["checkpoint"])})
    steps = {c["name"]: c["step"] for c in prov["checkpoints"]}
    for item in data["by_group"]:
        for m in data["metrics"]:
            rows.append({"checkpoint": item["checkpoint"], "step": steps.get(item["checkpoint"]),
                         "group": item["group"], "metric": m, "value": item[m], "ci95_low": item[f"{m} ci95 low"],
                         "ci95_high": item[f"{m} ci95 high"], "n": item["n"], **common,
                         "result_key": keys.get(item["checkpoint"])})
    return _rows_csv(rows)


def to_json_bytes(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str).encode("utf-8")


def _rows_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    return rows_csv_bytes(rows)


def to_csv_bytes(data: Mapping[str, Any]) -> bytes:
    """Flat CSV of an export made by :func:`single_export` or :func:`eval_export`."""
    settings = json.dumps(data.get("settings", {}), sort_keys=True)
    rows: list[dict[str, Any]] = []
    if data["kind"] == "single_example":
        for out in data["outputs"]:
            rows.append({"checkpoint": out["checkpoint"], "step": out["step"], "prompt": data["prompt"],
                         "image": data["image"]["name"], "reference_checkpoint": data["reference_checkpoint"],
                         "output": out["output"], "error": out["error"] or "", "diff_vs_reference": out["diff_text"],
                         "similarity_to_reference": out["similarity_to_reference"],
                         "prompt_tokens": out["prompt_tokens"], "output_tokens": out["output_tokens"],
                         "load_s": out["load_s"], "generation_s": out["generation_s"],
                         "tokens_per_s": out["tokens_per_s"], "settings": settings})
    else:
        metrics = data["metrics"]
        for ex in data["examples"]:
            for name, out in ex["outputs"].items():
                rows.append({"id": ex["id"], "image": ex["image"], "prompt": ex["prompt"], "answer": ex["answer"],
                             "task": ex["task"], "checkpoint": name, "output": out["output"],
                             **{m: out["scores"].get(m) for m in metrics},
                             "diff_vs_reference": out.get("diff_text", ""), "error": out.get("error", ""),
                             "latency_s": out.get("latency_s"), "eval_set": data["eval_set"]["name"],
                             "eval_set_sha256": data["eval_set"]["sha256"], "subset": data["eval_set"]["subset"],
                             "filter": data["view"]["example_filter"], "settings": settings})
    return _rows_csv(rows)
