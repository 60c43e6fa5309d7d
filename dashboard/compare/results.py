"""Saved eval-set scores: one JSON file per result identity (:mod:`dashboard.compare.identity`).

Files live at ``<run>/eval_results/<eval_set>-<file sha256[:12]>[-first-N]/<checkpoint>-<k>.json``
(``k``: settings and scorer version, :func:`~dashboard.compare.identity.storage_key`) so the
Timeline page can plot them and a later visit does not recompute; the checkpoint's content
signature is inside the file. The key is the eval set's *content* hash, not its name: uploading
a one-row ``demo.jsonl`` must not replace the run's complete 200-row results, a subset
(``--limit 40``) never shares a file with the whole set, and a partial result (a stopped run)
never replaces a complete one. When the run folder is read-only, or its ``eval_results`` is a symlink, they go to
``<data_dir>/eval_results/<run-name>-<hash>/`` instead. Every write goes through
:func:`dashboard.runs.files.write_atomic` (temp file + ``os.replace``, no symlink followed).

Files of the older layout (``<eval_set>/<checkpoint>.json``, keyed by the set's *name* and
carrying no content hash) are never read as if they were current: :func:`migrate_legacy`
moves one under the new key when its rows are answers to exactly the current set's prompts
and images (the rule by which saved rows are reused at all), and otherwise reports it as
saved before content keys, not comparable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from dashboard.compare.identity import (
    FULL_SUBSET,
    SCORER_VERSION,
    ResultIdentity,
    storage_key,
)
from dashboard.metrics import aggregate_scores, score
from dashboard.runs.checkpoints import checkpoint_step as _folder_step
from dashboard.runs.files import RunFileError, excerpt, read_json, write_atomic

if TYPE_CHECKING:
    from dashboard.evalset import EvalExample, EvalSet

logger = logging.getLogger(__name__)

RESULTS_DIRNAME = "eval_results"
SCHEMA_VERSION = 1
SCORE_COLUMNS = ["step", "checkpoint", "eval_set", "eval_set_sha256", "subset", "settings_key", "result_key",
                 "metric", "value", "ci95_low", "ci95_high", "n"]
_STEP = re.compile(r"checkpoint-(\d+)$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+", re.ASCII)


@dataclass
class CheckpointScores:
    """The scored outputs of one checkpoint on one eval set (possibly partial after Stop)."""

    checkpoint: str
    step: int | None
    eval_set: str
    settings: dict[str, Any]
    settings_key: str
    checkpoint_signature: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "output", "scores", "prompt_tokens", "output_tokens", "latency_s", "batch_size"}`` per example.

    ``latency_s`` is the example's share of its batch's wall time (batch time ÷ ``batch_size``).
    """
    total: int = 0
    """Number of examples in the eval set; ``complete`` when every one has a row."""
    saved_at: float = 0.0
    eval_set_hash: str = ""
    """SHA-256 of the eval file's bytes (``EvalSet.content_hash``): part of the identity."""
    subset: str = FULL_SUBSET
    """``all`` or ``first-N``: part of the identity (files before subsets existed were whole sets)."""
    scorer_version: int = SCORER_VERSION

    @property
    def identity(self) -> ResultIdentity:
        return ResultIdentity(checkpoint=self.checkpoint, checkpoint_signature=self.checkpoint_signature,
                              eval_set_sha256=self.eval_set_hash, subset=self.subset,
                              settings_key=self.settings_key, scorer_version=self.scorer_version)

    @property
    def n(self) -> int:
        return len(self.rows)

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.n >= self.total

    @property
    def metrics(self) -> dict[str, float]:
        return aggregate_scores(r.get("scores", {}) for r in self.rows)

    def row_ids(self) -> set[str]:
        return {str(r["id"]) for r in self.rows}

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(n=self.n, complete=self.complete, metrics=self.metrics, schema=SCHEMA_VERSION,
                    result_key=self.identity.key)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckpointScores:
        if not isinstance(data, dict) or not isinstance(data.get("rows"), list):
            raise ValueError("not a saved-scores object (no rows list)")
        return cls(checkpoint=str(data["checkpoint"]), step=data.get("step"), eval_set=str(data["eval_set"]),
                   settings=dict(data.get("settings") or {}), settings_key=str(data.get("settings_key", "")),
                   checkpoint_signature=str(data.get("checkpoint_signature", "")),
                   rows=[r for r in data["rows"] if isinstance(r, dict) and "id" in r],
                   total=int(data.get("total") or data.get("n") or 0), saved_at=float(data.get("saved_at") or 0),
                   eval_set_hash=str(data.get("eval_set_hash") or ""),
                   subset=str(data.get("subset") or FULL_SUBSET),
                   scorer_version=int(data.get("scorer_version") or SCORER_VERSION))

    def rescored(self, answers: dict[str, str]) -> CheckpointScores:
        """Scores recomputed from the saved outputs (the reference answers may have been edited)."""
        rows = [{**r, "scores": score(str(r.get("output", "")), answers[str(r["id"])])}
                for r in self.rows if str(r["id"]) in answers]
        return CheckpointScores(**{**asdict(self), "rows": rows, "total": len(answers)})


def checkpoint_step(name: str) -> int | None:
    """Global step from an HF Trainer folder name (``checkpoint-100`` → 100; ASCII digits, int64)."""
    return _folder_step(Path(str(name).replace("\\", "/")).name)


def safe_name(name: str) -> str:
    """A file-system-safe form of an eval-set or checkpoint name."""
    cleaned = _UNSAFE.sub("_", name).strip("._")
    return cleaned[:80] or "unnamed"


def result_relpath(eval_set: str, eval_set_hash: str, checkpoint: str, settings_key: str,
                   subset: str = FULL_SUBSET, scorer_version: int = SCORER_VERSION) -> Path:
    """Where one result lives below a results folder: every part of its identity but the
    checkpoint's content (recorded inside the file) is in the path.

    Every result the app makes carries its eval file's sha256; a hand-built one without it goes
    to a ``-nohash`` folder that no lookup by identity and no Timeline line ever reads.
    """
    folder = f"{safe_name(eval_set)}-{(eval_set_hash or 'nohash')[:12]}"
    if subset != FULL_SUBSET:
        folder += f"-{safe_name(subset)}"
    ident = ResultIdentity(checkpoint=checkpoint, checkpoint_signature="", eval_set_sha256=eval_set_hash,
                           subset=subset, settings_key=settings_key, scorer_version=scorer_version)
    return Path(folder) / f"{safe_name(checkpoint)}-{storage_key(ident)}.json"


def fallback_dir(run_dir: Path, data_dir: Path) -> Path:
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    return Path(data_dir) / RESULTS_DIRNAME / f"{safe_name(Path(run_dir).name)}-{digest}"


def candidate_dirs(run_dir: Path, data_dir: Path | None) -> list[Path]:
    """Where results of ``run_dir`` may be: the run's own folder first, then the fallback."""
    dirs = [Path(run_dir) / RESULTS_DIRNAME]
    if data_dir is not None:
        dirs.append(fallback_dir(run_dir, data_dir))
    return dirs


def write_json_atomic(path: Path, data: Any, base: Path | None = None) -> None:
    """Write JSON atomically below ``base`` (default: the file's folder), never through a symlink."""
    payload = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    write_atomic(path, payload, base if base is not None else path.parent)


def _prefer(a: CheckpointScores | None, b: CheckpointScores | None) -> CheckpointScores | None:
    """Of two results for one key: a complete one over a partial one, then the newer."""
    if a is None or b is None:
        return a or b
    return max((a, b), key=lambda s: (s.complete, s.saved_at))


def save_scores(run_dir: Path, scores: CheckpointScores, data_dir: Path | None = None) -> Path:
    """Save next to the run, or under ``data_dir`` when the run folder is not writable (or is a link).

    A partial result never replaces a complete one saved under the same key: the complete file
    is kept and its path returned.
    """
    scores.saved_at = time.time()
    payload = scores.to_json()
    rel = result_relpath(scores.eval_set, scores.eval_set_hash, scores.checkpoint, scores.settings_key,
                         scores.subset, scores.scorer_version)
    errors: list[str] = []
    for folder, base in _bases(run_dir, data_dir):
        target = folder / rel
        existing = _read(target, base)
        if existing is not None and existing.complete and not scores.complete:
            return target
        try:
            write_json_atomic(target, payload, base)
        except OSError as exc:
            errors.append(f"{target}: {exc.strerror or exc}")
            continue
        return target
    raise OSError("could not save scores: " + "; ".join(errors))


def _read(path: Path, base: Path | None = None, *, legacy: bool = False) -> CheckpointScores | None:
    """The saved result at ``path`` of the current layout (``legacy``: of the old one), else None."""
    try:
        data = read_json(path, [base if base is not None else path.parent], "results")
        if isinstance(data, dict) and ("eval_set_hash" not in data) != legacy:
            return None  # the other layout: never mixed in (see migrate_legacy)
        return CheckpointScores.from_json(data)
    except FileNotFoundError:
        return None  # not computed yet: the normal case, nothing to log
    except (OSError, RunFileError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc.__cause__, FileNotFoundError):
            return None  # a folder on its path is not there yet (a run's first result): not computed, no log
        logger.warning("saved scores %s unreadable; treated as not computed yet", path, exc_info=True)
        return None  # a corrupt, foreign, linked-out or missing file is treated as "not computed yet"


def row_still_valid(row: dict[str, Any], by_id: dict[str, EvalExample]) -> bool:
    """A saved row answers the current example: same id, prompt and image file (answers are rescored)."""
    ex = by_id.get(str(row.get("id")))
    return ex is not None and row.get("prompt") == ex.prompt and row.get("image") == ex.image_path.name


@dataclass(frozen=True)
class LegacyResult:
    """A result file of the old name-keyed layout that could not be moved under a content key."""

    path: Path
    eval_set: str
    checkpoint: str
    reason: str

    @property
    def message(self) -> str:
        return (f"{excerpt(self.eval_set)} · {excerpt(self.checkpoint)}: saved before results were keyed by "
                f"eval-set content, not comparable ({self.reason}); its file {excerpt(self.path.name)} is left "
                "in place")


def migrate_legacy(run_dir: Path, data_dir: Path | None,
                   eval_sets: Callable[[], Iterable[EvalSet]]) -> list[LegacyResult]:
    """Move old-layout results (``<set>/<checkpoint>.json``) of ``run_dir`` under their content key.

    ``eval_sets()`` is called only once an old file is found (loading sets costs more than finding
    none). A file is moved when an eval set of its name is among them and every saved row still
    answers that set (:func:`row_still_valid`): its content hash is then the set's. A result already
    saved under the new key is kept when it has at least as many rows. Everything else is returned
    (and logged), so the pages say it is there but not comparable instead of silently dropping it.
    """
    sets: dict[str, EvalSet] | None = None
    left: list[LegacyResult] = []
    for folder, base in _bases(run_dir, data_dir):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for path in sorted(folder.glob("*/*.json")):
            old = _read(path, base, legacy=True)
            if old is None:
                continue
            if sets is None:
                sets = {s.name: s for s in eval_sets()}
            evalset = sets.get(old.eval_set)
            if evalset is None:
                reason = "this run has no eval set of that name to check it against"
            elif not all(row_still_valid(r, by_id) for by_id in [evalset.by_id()] for r in old.rows):
                reason = f"its prompts or images differ from the current {evalset.name}"
            else:
                _move_legacy(run_dir, data_dir, path, old, evalset)
                continue
            logger.warning("old-layout result %s not migrated: %s", path, reason)
            left.append(LegacyResult(path, old.eval_set, old.checkpoint, reason))
    return left


def _move_legacy(run_dir: Path, data_dir: Path | None, path: Path, old: CheckpointScores, evalset: EvalSet) -> None:
    old.eval_set_hash = evalset.content_hash
    old.total = len(evalset.examples)
    current = load_scores(run_dir, old.eval_set, old.checkpoint, data_dir, eval_set_hash=evalset.content_hash,
                          settings_key=old.settings_key, subset=FULL_SUBSET)
    if current is None or current.n < old.n:
        logger.info("old-layout result %s moved to %s", path, save_scores(run_dir, old, data_dir))
    try:
        path.unlink()
        path.parent.rmdir()  # only once the old set folder is empty
    except OSError:
        logger.debug("old-layout result %s: not removed", path, exc_info=True)


def _bases(run_dir: Path, data_dir: Path | None) -> list[tuple[Path, Path]]:
    pairs = [(Path(run_dir) / RESULTS_DIRNAME, Path(run_dir))]
    if data_dir is not None:
        pairs.append((fallback_dir(run_dir, data_dir), Path(data_dir)))
    return pairs


def load_scores(run_dir: Path, eval_set: str, checkpoint: str, data_dir: Path | None = None, *,
                eval_set_hash: str | None = None, settings_key: str | None = None,
                subset: str | None = None) -> CheckpointScores | None:
    """The best readable saved result for (eval set, checkpoint), or None.

    With ``eval_set_hash``/``settings_key``/``subset`` only results of that content, those
    settings and that subset count; a complete result is preferred over a partial one, then the
    newest. Results of another scorer version never count.
    """
    best: CheckpointScores | None = None
    for folder, base in _bases(run_dir, data_dir):
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{safe_name(eval_set)}-*/{safe_name(checkpoint)}-*.json"):
            found = _read(path, base)
            if found is None or found.eval_set != eval_set or found.checkpoint != checkpoint:
                continue
            if eval_set_hash is not None and found.eval_set_hash != eval_set_hash:
                continue
            if settings_key is not None and found.settings_key != settings_key:
                continue
            if (subset is not None and found.subset != subset) or found.scorer_version != SCORER_VERSION:
                continue
            best = _prefer(best, found)
    return best


def rows_of_other_subsets(run_dir: Path, eval_set: str, identity: ResultIdentity,
                          data_dir: Path | None = None) -> dict[str, dict[str, Any]]:
    """Saved rows (by id) of results that differ from ``identity`` only in the subset.

    The same checkpoint content, eval file, settings and scorer give the same answer to a row
    whichever subset it was scored in, so ``eval --limit 80`` and the page's whole-set run
    share their generated rows; the results themselves stay apart (one file per subset).
    """
    rows: dict[str, dict[str, Any]] = {}
    for folder, base in _bases(run_dir, data_dir):
        if not folder.is_dir():
            continue
        pattern = f"{safe_name(eval_set)}-{identity.eval_set_sha256[:12]}*/{safe_name(identity.checkpoint)}-*.json"
        for path in sorted(folder.glob(pattern)):
            found = _read(path, base)
            if found is None or found.eval_set != eval_set or found.subset == identity.subset:
                continue
            if found.identity.with_subset(identity.subset) != identity:
                continue
            for row in found.rows:
                rows.setdefault(str(row["id"]), row)
    return rows


def iter_saved(run_dir: Path, data_dir: Path | None = None) -> Iterable[CheckpointScores]:
    """Every readable saved result of the run, the best copy per (eval set content, checkpoint, settings)."""
    best: dict[tuple[str, ...], CheckpointScores] = {}
    for folder, base in _bases(run_dir, data_dir):
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*/*.json")):
            scores = _read(path, base)
            if scores is None:
                continue
            key = (scores.eval_set, scores.eval_set_hash, scores.subset, scores.checkpoint, scores.settings_key,
                   str(scores.scorer_version))
            chosen = _prefer(best.get(key), scores)
            if chosen is not None:
                best[key] = chosen
    return list(best.values())


def load_saved_scores(run_dir: Path, data_dir: Path | None = None) -> pd.DataFrame:
    """Long table of saved, complete eval results for the Timeline page.

    One row per (result, metric): ``step`` (nullable Int64), ``checkpoint``, ``eval_set`` and
    the rest of the result's identity (``eval_set_sha256``, ``subset``, ``settings_key``,
    ``result_key``), ``metric``, ``value``, its 95 % interval ``ci95_low`` / ``ci95_high`` (the
    Comparison page's, :func:`dashboard.compare.report.estimate`) and ``n``. Partial results
    (stopped runs) and results saved without the eval file's hash (before identities) are left
    out, so a curve never mixes subsets.
    """
    from dashboard.compare.report import estimate

    records = []
    for s in iter_saved(run_dir, data_dir):
        if not s.complete or not s.eval_set_hash:
            continue
        key = s.identity.key
        for metric, value in s.metrics.items():
            est = estimate(s.rows, metric)
            records.append({"step": s.step if s.step is not None else checkpoint_step(s.checkpoint),
                            "checkpoint": s.checkpoint, "eval_set": s.eval_set, "eval_set_sha256": s.eval_set_hash,
                            "subset": s.subset, "settings_key": s.settings_key, "result_key": key,
                            "metric": metric, "value": value, "ci95_low": est.ci95[0], "ci95_high": est.ci95[1],
                            "n": s.n})
    frame = pd.DataFrame.from_records(records, columns=SCORE_COLUMNS)
    frame["step"] = frame["step"].astype("Int64")
    frame["n"] = frame["n"].astype("Int64")
    for column in ("value", "ci95_low", "ci95_high"):
        frame[column] = frame[column].astype(float)
    return frame.sort_values(["eval_set", "subset", "settings_key", "metric", "step", "checkpoint"],
                             ignore_index=True)
