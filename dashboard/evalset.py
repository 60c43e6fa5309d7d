"""Eval sets: small JSONL/CSV files of (image, prompt, reference answer) rows.

Analysts bring their own files, so loading never fails on a bad row: every problem is
recorded with its line number in :attr:`EvalSet.problems` and the row is skipped. Image
paths are resolved relative to the eval file and confined to the runs roots plus the file's
own folder, so a crafted file cannot make the app read arbitrary files on disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from dashboard.paths import PathOutsideRoots, resolve_within
from dashboard.runs.files import (
    JsonFileError,
    RunFileError,
    check_regular_file,
    excerpt,
    open_checked,
    parse_json,
    read_bytes,
)

EVAL_SUFFIXES = (".jsonl", ".csv")

# Accepted spellings of the three required columns (first match wins).
IMAGE_KEYS = ("image", "image_path", "path")
PROMPT_KEYS = ("prompt", "question")
ANSWER_KEYS = ("answer", "reference", "reference_answer")
_KNOWN = {*IMAGE_KEYS, *PROMPT_KEYS, *ANSWER_KEYS, "id", "task", "objects", "target"}


class EvalSetError(ValueError):
    """The file as a whole cannot be read as an eval set (missing, too big, wrong type)."""


@dataclass(frozen=True)
class EvalExample:
    """One validated row; ``image_path`` is absolute and confined to the allowed roots."""

    id: str
    image_path: Path
    prompt: str
    answer: str
    task: str | None = None
    objects: tuple[dict, ...] = ()
    target: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass
class EvalSet:
    """The good rows of an eval file plus a human-readable line per bad row."""

    name: str
    path: Path
    examples: list[EvalExample]
    problems: list[str] = field(default_factory=list)
    content_hash: str = ""
    """SHA-256 of the file's bytes as on disk (a BOM included): saved results are keyed by it, not by
    the (reusable) name, and exports report it as ``sha256`` — ``sha256sum FILE`` prints the same."""
    subset: str = "all"
    """Which rows of the file these are: ``all`` or ``first-N`` (see :mod:`dashboard.compare.identity`)."""

    def __len__(self) -> int:
        return len(self.examples)

    def first(self, n: int) -> EvalSet:
        """The first ``n`` usable rows, same file hash, subset ``first-n`` (the whole set when n ≥ its size)."""
        if n < 1:
            raise ValueError("a subset needs at least one row")
        if n >= len(self.examples):
            return self
        return replace(self, examples=self.examples[:n], subset=f"first-{n}")

    def by_id(self) -> dict[str, EvalExample]:
        return {ex.id: ex for ex in self.examples}


class _RowProblem(ValueError):
    """Raised inside row validation; becomes one entry in ``EvalSet.problems``."""


def find_eval_sets(run_dir: Path, roots: Iterable[str | Path] | None = None) -> list[Path]:
    """``<run>/eval/*.jsonl|csv``, sorted by name (the demo run puts ``demo.jsonl`` there).

    Only files that resolve inside ``roots`` (default: the run folder) are offered: an eval
    set symlinked from elsewhere on disk is not.
    """
    folder = Path(run_dir) / "eval"
    if not folder.is_dir():
        return []
    allowed = list(roots) if roots else [run_dir]
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in EVAL_SUFFIXES and _offered(p, allowed))


def _offered(path: Path, roots: Sequence[str | Path]) -> bool:
    try:
        resolved = resolve_within(path, roots)
        check_regular_file(resolved, "evalset")
    except (PathOutsideRoots, OSError):
        return False
    return True


def load_eval_set(path: Path, roots: Iterable[str | Path] | None = None) -> EvalSet:
    """Read and validate an eval file on disk.

    ``roots`` are the folders the file and its images may live in (normally the runs roots;
    default the file's own folder). The file is read through the run-file opener, so a link to
    ``/proc/self/environ`` or outside the roots is refused before a byte is read. Raises
    :class:`EvalSetError` only when the file as a whole is unusable; bad rows are in ``problems``.
    """
    path = Path(path)
    allowed = [*(roots or ()), path.parent]
    if path.suffix.lower() not in EVAL_SUFFIXES:
        raise EvalSetError(f"{path.name}: expected a .jsonl or .csv file")
    try:
        data = read_bytes(path, allowed, "evalset")
    except FileNotFoundError as exc:
        raise EvalSetError(f"eval set not found: {path.name}") from exc
    except OSError as exc:  # RunFileError messages name the file and never quote it
        raise EvalSetError(str(exc) if isinstance(exc, RunFileError) else
                           f"{path.name}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    base = path.parent.resolve()
    return parse_eval_set(data, name=path.stem, path=path, base_dir=base, roots=allowed,
                          fmt=path.suffix.lower().lstrip("."))


def parse_eval_set(data: bytes, *, name: str, path: Path, base_dir: Path | Sequence[Path] | None,
                   roots: Sequence[str | Path], fmt: str, max_rows: int | None = None) -> EvalSet:
    """Validate eval rows from raw bytes (also used for uploaded files, which have no folder).

    Relative image paths are taken relative to ``base_dir`` (or the first root when None); with
    several folders, the first in which the image exists (an uploaded copy of a run's own set names
    its images relative to ``<run>/eval/``, a hand-made one often relative to the run). With
    ``max_rows`` only that many rows are read (public mode), the rest reported as one problem.
    """
    if fmt not in ("jsonl", "csv"):
        raise EvalSetError(f"{name}: unsupported format {fmt!r} (use jsonl or csv)")
    if not roots:
        raise EvalSetError(f"{name}: no folder is allowed for images (configure a runs root)")
    content_hash = hashlib.sha256(data).hexdigest()  # of the bytes on disk, before the BOM is dropped
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    rows = _jsonl_rows(data) if fmt == "jsonl" else _csv_rows(data)
    examples: list[EvalExample] = []
    problems: list[str] = []
    seen: set[str] = set()
    for count, (line_no, row) in enumerate(rows):
        if max_rows is not None and count >= max_rows:
            problems.append(f"only the first {max_rows} rows are read here; the rest of the file was skipped")
            break
        try:
            if isinstance(row, _RowProblem):
                raise row
            example = _validate_row(row, line_no, base_dir, roots)
            if example.id in seen:
                raise _RowProblem(f"duplicate id {excerpt(repr(example.id))}")
        except _RowProblem as exc:
            problems.append(f"line {line_no}: {exc}")
            continue
        seen.add(example.id)
        examples.append(example)
    if not examples and not problems:
        problems.append("the file has no rows")
    return EvalSet(name=name, path=path, examples=examples, problems=problems,
                   content_hash=content_hash)


def _jsonl_rows(data: bytes) -> Iterator[tuple[int, dict | _RowProblem]]:
    for line_no, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield line_no, _RowProblem(f"not valid UTF-8 (byte {exc.start})")
            continue
        try:
            obj = parse_json(text.encode("utf-8"), f"line {line_no}")
        except JsonFileError as exc:
            yield line_no, _RowProblem(str(exc).split(": ", 1)[-1].replace("not valid JSON", "invalid JSON"))
            continue
        if not isinstance(obj, dict):
            yield line_no, _RowProblem(f"expected a JSON object, got {type(obj).__name__}")
            continue
        yield line_no, obj


def _csv_rows(data: bytes) -> Iterator[tuple[int, dict | _RowProblem]]:
    # surrogateescape keeps undecodable bytes visible per row instead of failing the file.
    text = data.decode("utf-8", errors="surrogateescape")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if any(_has_surrogates(h) for h in header if h):
        yield 1, _RowProblem("header is not valid UTF-8")
        return
    missing = [keys[0] for keys in (IMAGE_KEYS, PROMPT_KEYS, ANSWER_KEYS)
               if not any(k in {h.strip() for h in header if h} for k in keys)]
    if missing:
        names = [excerpt(h, 24) for h in header if h]
        found = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "") or "none"
        yield 1, _RowProblem(f"header is missing column(s): {', '.join(missing)} (found: {found})")
        return
    start = 2
    for row in reader:
        line_no = start
        start = reader.line_num + 1
        clean = {(k or "").strip(): v for k, v in row.items() if k is not None}
        if None in row:
            yield line_no, _RowProblem("more fields than header columns")
            continue
        if all(v in (None, "") for v in clean.values()):
            continue
        if any(isinstance(v, str) and _has_surrogates(v) for v in clean.values()):
            yield line_no, _RowProblem("not valid UTF-8")
            continue
        for key in ("objects", "extra"):
            if clean.get(key):
                try:
                    clean[key] = parse_json(clean[key].encode("utf-8", "surrogateescape"), key)
                except JsonFileError:
                    yield line_no, _RowProblem(f"column {key!r} is not valid JSON")
                    break
        else:
            yield line_no, clean


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _pick(row: dict, keys: Sequence[str]) -> Any:
    for key in keys:
        if key in row and row[key] is not None:
            return row[key]
    return None


def _validate_row(row: dict, line_no: int, base_dir: Path | Sequence[Path] | None,
                  roots: Sequence[str | Path]) -> EvalExample:
    image = _pick(row, IMAGE_KEYS)
    prompt = _pick(row, PROMPT_KEYS)
    answer = _pick(row, ANSWER_KEYS)
    missing = [keys[0] for keys, v in ((IMAGE_KEYS, image), (PROMPT_KEYS, prompt), (ANSWER_KEYS, answer))
               if v is None]
    if missing:
        raise _RowProblem(f"missing field(s): {', '.join(missing)}")
    if not isinstance(image, str) or not image.strip():
        raise _RowProblem("image path is empty")
    if not isinstance(prompt, str) or not prompt.strip():
        raise _RowProblem("prompt is empty")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        raise _RowProblem(f"answer must be text, got {type(answer).__name__}")
    answer = str(answer)
    if not answer.strip():
        raise _RowProblem("reference answer is empty")
    image_path = _resolve_image(image.strip(), base_dir, roots)
    task = row.get("task")
    if task is not None and not isinstance(task, str):
        task = str(task)
    objects = row.get("objects") or []
    if not isinstance(objects, list) or not all(isinstance(o, dict) for o in objects):
        raise _RowProblem("objects must be a list of objects")
    target = row.get("target")
    if target in ("", None):
        target = None
    else:
        try:
            target = int(target)
        except (TypeError, ValueError):
            raise _RowProblem(f"target must be an integer or null, got {excerpt(repr(target))}") from None
        if objects and not 0 <= target < len(objects):
            raise _RowProblem(f"target {target} is not an index into the {len(objects)} object(s)")
    raw_id = row.get("id")
    ex_id = str(raw_id).strip() if raw_id not in (None, "") else f"line-{line_no}"
    extra = {k: v for k, v in row.items() if k not in _KNOWN}
    return EvalExample(id=ex_id, image_path=image_path, prompt=prompt.strip(), answer=answer.strip(),
                       task=task or None, objects=tuple(objects), target=target, extra=extra)


def _resolve_image(image: str, base_dir: Path | Sequence[Path] | None, roots: Sequence[str | Path]) -> Path:
    shown = excerpt(image)
    candidate = Path(image).expanduser()
    if not candidate.is_absolute():
        bases = ([Path(roots[0]).expanduser().resolve()] if base_dir is None else
                 [base_dir] if isinstance(base_dir, Path) else list(base_dir))
        tries = [base / candidate for base in bases]
        candidate = next((t for t in tries if os.path.lexists(t)), tries[0])
    try:
        resolved = resolve_within(candidate, roots)
    except PathOutsideRoots:
        raise _RowProblem(f"image {shown!r} is outside the runs root") from None
    try:
        with open_checked(resolved, roots, "image") as handle, Image.open(handle) as img:
            img.size  # noqa: B018 - header parse is enough to catch non-images cheaply
    except FileNotFoundError:
        raise _RowProblem(f"image not found: {shown}") from None
    except RunFileError as exc:
        raise _RowProblem(f"image {shown!r}: {str(exc).split(': ', 1)[-1]}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise _RowProblem(f"image {shown!r} is unreadable ({type(exc).__name__})") from None
    return resolved
