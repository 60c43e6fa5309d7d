"""What one scored result *is*: the single identity shared by page, CLI, exports, Timeline and workers.

A scored result is identified by five things, and only by them:

1. **checkpoint content** — the checkpoint folder's name and its content signature
   (:func:`checkpoint_signature`: newest mtime and total size of its files; re-saving a
   checkpoint changes it, copying a run with its timestamps does not);
2. **eval-set content** — the SHA-256 of the eval file's bytes as they are on disk
   (:attr:`dashboard.evalset.EvalSet.content_hash`; a file keeps its name when its rows change);
3. **the subset of rows** — ``"all"`` or ``"first-N"`` (``python -m dashboard eval --limit N``, the
   page's *First N examples*); two subsets are two results, never one line on a chart;
4. **generation settings** — :meth:`dashboard.generation.GenerationSettings.key`;
5. **scorer version** — :data:`SCORER_VERSION`, bumped whenever :mod:`dashboard.metrics` scores
   the same output differently.

:func:`result_identity` builds it and :func:`result_key` turns it into one hex string. Every
caller uses these two (the Comparison page, ``python -m dashboard eval``, the exports, the
Timeline's saved-score lines, the Ray backend and the ``watch`` command); nothing else hashes
an eval file or a settings object for this purpose.

Importable without Streamlit or torch, so a watcher process can call it::

    from dashboard.compare.identity import result_identity, result_key
    ident = result_identity(checkpoint_dir, evalset.first(80), GenerationSettings())
    key = result_key(ident)   # the same string the page and the CLI compute for that result
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dashboard.evalset import EvalSet
    from dashboard.generation import GenerationSettings

SCORER_VERSION = 1
"""Version of :func:`dashboard.metrics.score`; results of another version are other results."""
FULL_SUBSET = "all"
_FIRST = re.compile(r"first-(\d+)$")


def first_subset(n: int) -> str:
    """The subset name of the first ``n`` usable rows."""
    return f"first-{int(n)}"


def subset_size(subset: str) -> int | None:
    """N of ``first-N``; None for the whole set."""
    match = _FIRST.match(subset)
    return int(match.group(1)) if match else None


def subset_label(subset: str, n: int | None = None) -> str:
    """How people read a subset: ``all 200 examples`` / ``first 40 examples``."""
    size = subset_size(subset)
    if size is None:
        return f"all {n} examples" if n is not None else "all examples"
    return f"first {size} examples"


def checkpoint_signature(path: str | Path) -> str:
    """Cheap content signature of a checkpoint folder: newest mtime and total size of its files."""
    newest, total = 0, 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(Path(path)):
            if entry.is_file():
                st = entry.stat()
                newest, total = max(newest, st.st_mtime_ns), total + st.st_size
    return f"{newest}-{total}"


@dataclass(frozen=True)
class ResultIdentity:
    """The five parts of a scored result's identity (see the module docstring)."""

    checkpoint: str
    checkpoint_signature: str
    eval_set_sha256: str
    subset: str
    settings_key: str
    scorer_version: int = SCORER_VERSION

    @property
    def key(self) -> str:
        return result_key(self)

    def with_subset(self, subset: str) -> ResultIdentity:
        return replace(self, subset=subset)

    def as_dict(self) -> dict[str, Any]:
        """JSON form for reports and exports (with the key, so a reader can compare one string)."""
        return {**asdict(self), "key": self.key}


def result_key(identity: ResultIdentity) -> str:
    """SHA-256 (hex) of the identity's canonical JSON: equal keys ⇔ the same scored result."""
    text = json.dumps(asdict(identity), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def result_identity(checkpoint: str | Path, evalset: EvalSet, settings: GenerationSettings) -> ResultIdentity:
    """The identity of ``checkpoint`` scored on ``evalset`` (its file hash and subset) with ``settings``."""
    path = Path(checkpoint)
    return ResultIdentity(checkpoint=path.name, checkpoint_signature=checkpoint_signature(path),
                          eval_set_sha256=evalset.content_hash, subset=evalset.subset,
                          settings_key=settings.key())


def storage_key(identity: ResultIdentity) -> str:
    """The part of the identity that names a result *file*: everything but the checkpoint's content.

    A re-saved checkpoint replaces its old result in place (the signature inside the file says
    which content it scored; a mismatch is "not computed yet") instead of piling up stale files.
    """
    text = identity.settings_key if identity.scorer_version == 1 else \
        json.dumps([identity.settings_key, identity.scorer_version], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]  # scorer 1: the file names saved before identities
