"""Hand transformers a private folder holding only checked bytes.

``from_pretrained`` and ``AutoProcessor.from_pretrained`` open the tokenizer, chat template,
processor and generation configs themselves, following symlinks and reading whole files, so
checking the run folder is not enough: what they open must be what was checked. A load therefore
reads through a *staging folder* (a fresh ``mkdtemp``, mode 0700, removed when the load ends):

* every small file of the :class:`~dashboard.runs.load_plan.LoadPlan` is read through
  :func:`~dashboard.runs.files.read_bytes` (confined, size-limited, no sparse/special/hard-linked
  file, folder-swap-proof descriptor walk) and the bytes are *written* into the staging folder;
* every weight file is opened through :func:`~dashboard.runs.files.open_checked` and the staging
  folder gets a symlink to that open descriptor (``/proc/self/fd/N``): zero-copy, and whatever
  replaces the path in the run folder afterwards, the load maps the file that was checked;
* nothing else of the checkpoint folder is staged, so no other file can be opened by transformers.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from dashboard.runs.files import open_checked, read_bytes
from dashboard.runs.load_plan import LoadPlan

_FD_DIR = Path("/proc/self/fd")


@dataclass(frozen=True)
class StagedCheckpoint:
    """Where transformers loads from: the staged checkpoint and, for an adapter, its staged base."""

    folder: Path
    base: Path | None = None

    @property
    def model_folder(self) -> Path:
        """The folder whose config and weights build the model (the base of an adapter)."""
        return self.base or self.folder


def _target(folder: Path, name: str) -> Path:
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return target


def _stage_one(plan: LoadPlan, folder: Path, roots: Sequence[Path], stack: ExitStack, code: bool) -> Path:
    folder.mkdir(mode=0o700)
    for small in (*plan.small_files, *(plan.code_files if code else ())):
        data = read_bytes(plan.file(small.name), roots, small.kind)
        with open(_target(folder, small.name), "xb") as out:
            out.write(data)
    for weight in plan.weight_files:
        handle = stack.enter_context(open_checked(plan.file(weight.name), roots, "weights"))
        source = _FD_DIR / str(handle.fileno())
        os.symlink(source if _FD_DIR.is_dir() else plan.file(weight.name).resolve(), _target(folder, weight.name))
    return folder


@contextmanager
def staged(plan: LoadPlan, roots: Sequence[Path], *, code: bool = False,
           parent: Path | None = None) -> Iterator[StagedCheckpoint]:
    """Stage ``plan`` (and an adapter's base) for the duration of the ``with`` block.

    ``code``: also stage the folder's ``*.py`` files (only when ``trust_remote_code`` is on).
    The weight descriptors stay open until the block ends; a model loaded inside keeps its
    memory maps after they close.
    """
    with ExitStack() as stack:
        tmp = Path(tempfile.mkdtemp(prefix="vlmlab-stage-", dir=parent))
        stack.callback(shutil.rmtree, tmp, True)
        folder = _stage_one(plan, tmp / "checkpoint", roots, stack, code)
        base = _stage_one(plan.base, tmp / "base", roots, stack, code) if plan.base is not None else None
        yield StagedCheckpoint(folder, base)
