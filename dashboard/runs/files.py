"""The one way to open a file that belongs to a run (or an upload kept by the app).

Every reader of run data — trainer_state, event files, eval sets and their images, checkpoint
configs, shard indexes, adapter configs, saved results — goes through :func:`open_checked`
(or the ``read_*`` helpers built on it), so confinement, size limits per kind of file and
Git-LFS-pointer detection live in one place:

* the path is resolved (symlinks, ``..``) and must lie inside one of the allowed roots;
* only regular files are read: no ``/proc`` files, devices, FIFOs or sockets;
* each kind of file has a size limit, and a *sparse* file (far fewer blocks on disk than its
  apparent size — a cheap way to make a "4 GB" file) is refused before a byte is read;
* a file other than weights with more than one hard link is refused (see ``HARD_LINKS_ALLOWED``);
* the resolved path is opened one folder at a time with directory descriptors and
  ``O_NOFOLLOW``, so a folder swapped for a symlink after the check cannot redirect the read;
* a Git LFS pointer (a fresh ``git clone`` without ``git lfs pull``) is recognised and named;
* JSON is parsed with orjson, which bounds nesting depth (no ``RecursionError``).

Every refusal is a :class:`RunFileError` subclass whose message names the file (relative to its
root where possible) and never quotes the file's content.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, Literal

import orjson

from dashboard.paths import PathOutsideRoots, resolve_within

FileKind = Literal["json", "trainer_state", "events", "evalset", "image", "weights", "text", "tokenizer",
                   "results"]

MB = 1_000_000
SIZE_LIMITS: dict[str, int] = {
    "json": 16 * MB,             # config.json, processor/tokenizer configs, shard indexes, adapter configs
    "trainer_state": 512 * MB,   # pre-training runs log hundreds of thousands of entries
    "events": 2_000 * MB,        # streamed record by record, never read whole
    "evalset": 256 * MB,
    "image": 64 * MB,
    "weights": 1_000_000 * MB,   # header-only reads; weights are mmapped by safetensors
    "text": 16 * MB,             # chat templates, merges.txt
    "tokenizer": 64 * MB,        # tokenizer.json / tokenizer.model (Gemma's is 33 MB)
    "results": 256 * MB,
}
HARD_LINKS_ALLOWED: frozenset[str] = frozenset({"weights"})
"""Kinds that may have more than one hard link. A hard link to a file outside the root is
indistinguishable from the file itself, and confinement (which resolves *symlinks*) cannot see it:
configs, tokenizers, templates, logs and eval sets are small, shown as text or parsed into the
page, so one with ``st_nlink > 1`` is refused. Weights are exempt: deduplicating checkpoints
with hard links (``cp -al``, ``rsync --link-dest``) is common for multi-GB files, and weight bytes
only become tensors, never text on a page."""
SPARSE_MIN_SIZE = 1 * MB
"""Files smaller than this are never judged sparse (filesystems round blocks)."""

LFS_POINTER_PREFIX = b"version https://git-lfs.github.com/spec/"
LFS_POINTER_MAX = 1024


class RunFileError(OSError):
    """A run file cannot be opened safely; the message is safe to show to the user."""


class OutsideRootsError(RunFileError, PermissionError):
    """The path (after resolving symlinks) lies outside the runs root(s)."""


class SpecialFileError(RunFileError):
    """Not a regular file: a device, FIFO, socket, directory or a ``/proc`` pseudo-file."""


class FileTooLargeError(RunFileError):
    """Over the size limit for its kind, or sparse (apparent size far above what is on disk)."""


class LfsPointerError(RunFileError):
    """The file is a Git LFS pointer, not the content it stands for."""


class HardLinkError(RunFileError):
    """A file that is not weights has more than one hard link (it may be a file from outside the root)."""


class JsonFileError(RunFileError, ValueError):
    """Not valid JSON (including nesting deeper than the parser allows)."""


def excerpt(text: object, limit: int = 40) -> str:
    """A short, single-line excerpt of text that came from a file, safe to put in a message.

    Control characters are replaced and the result is cut at ``limit`` characters, so a
    message can never carry a whole file (an environment, a password file) to the page.
    """
    flat = "".join(ch if ch.isprintable() else " " for ch in str(text))
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _shown(path: Path, roots: Iterable[Path]) -> str:
    for root in roots:
        try:
            return str(path.relative_to(root))
        except ValueError:
            continue
    return path.name


def confine(path: str | Path, roots: Iterable[str | Path]) -> Path:
    """:func:`dashboard.paths.resolve_within`, failing as a :class:`RunFileError` like every run-file check.

    One resolution rule for the whole app; the message names the file only, as run-file errors always have.
    """
    try:
        return resolve_within(path, roots, name_roots=False)
    except PathOutsideRoots as exc:
        raise OutsideRootsError(str(exc)) from None
    except OSError as exc:  # a component swapped between lstat and readlink (EINVAL): a race, refused
        raise RunFileError(f"{Path(path).name}: a folder on its path changed while resolving "
                           f"({exc.strerror or type(exc).__name__}); refused") from None


def check_stat(info: os.stat_result, kind: FileKind, shown: str) -> None:
    """Refuse a special, oversized, sparse or (outside weights) hard-linked file of ``kind``."""
    if not stat.S_ISREG(info.st_mode):
        raise SpecialFileError(f"{shown}: not a regular file")
    limit = SIZE_LIMITS[kind]
    if info.st_size > limit:
        raise FileTooLargeError(f"{shown}: {info.st_size / MB:,.0f} MB is over the {limit / MB:,.0f} MB limit "
                                f"for {kind.replace('_', ' ')} files")
    blocks = getattr(info, "st_blocks", None)
    if blocks is not None and info.st_size >= SPARSE_MIN_SIZE and blocks * 512 < info.st_size // 8:
        raise FileTooLargeError(f"{shown}: sparse file ({info.st_size / MB:,.0f} MB apparent, "
                                f"{blocks * 512 / MB:,.1f} MB on disk) refused")
    if info.st_nlink > 1 and kind not in HARD_LINKS_ALLOWED:
        raise HardLinkError(f"{shown}: has {info.st_nlink} hard links; a {kind.replace('_', ' ')} file must "
                            "have one (a hard link can be a file from outside the runs root), copy it instead")


def check_regular_file(path: Path, kind: FileKind, shown: str | None = None) -> os.stat_result:
    """``stat`` a resolved path and refuse special, oversized, sparse or hard-linked files of ``kind``.

    A first look only (listing what can be offered); :func:`open_checked` checks the opened
    descriptor again, which is what a read relies on.
    """
    shown = shown or path.name
    if str(path).startswith(("/proc/", "/sys/", "/dev/")):
        raise SpecialFileError(f"{shown}: not a regular file")
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RunFileError(f"{shown}: cannot be read ({exc.strerror or type(exc).__name__})") from exc
    check_stat(info, kind, shown)
    return info


def is_lfs_pointer(head: bytes) -> bool:
    """True for the small text files Git LFS leaves in place of the real content."""
    return head.startswith(LFS_POINTER_PREFIX)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def open_walked(resolved: Path, root: Path, shown: str) -> int:
    """A descriptor of ``resolved`` (inside ``root``), opened one component at a time from ``root``.

    Each folder is opened with ``O_DIRECTORY | O_NOFOLLOW`` relative to its parent's descriptor and
    the file with ``O_NOFOLLOW``: a folder swapped for a symlink after the path was resolved and
    confined makes the open fail (``ELOOP``/``ENOTDIR``) instead of following the link elsewhere.
    """
    parts = resolved.relative_to(root).parts
    if not parts:
        raise SpecialFileError(f"{shown}: not a regular file")
    try:
        dir_fd = os.open(root, _DIR_FLAGS)
    except OSError as exc:
        raise RunFileError(f"{shown}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    try:
        for part in parts[:-1]:
            try:
                next_fd = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise RunFileError(f"{shown}: a folder on its path changed while opening "
                                   f"({exc.strerror or type(exc).__name__}); refused") from exc
            os.close(dir_fd)
            dir_fd = next_fd
        try:
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RunFileError(f"{shown}: cannot read ({exc.strerror or type(exc).__name__})") from exc
    finally:
        os.close(dir_fd)


def open_folder(path: str | Path, roots: Iterable[str | Path]) -> int:
    """A descriptor of a confined folder, opened by the same walk as :func:`open_checked`.

    For listings that stat many entries of one folder (``os.stat(name, dir_fd=…,
    follow_symlinks=False)``): entries that are links still go through :func:`open_checked`.
    """
    root_list = [Path(r).expanduser().resolve() for r in roots]
    resolved = confine(path, root_list)
    shown = _shown(resolved, root_list)
    root = _root_of(resolved, root_list)
    fd = os.open(root, _DIR_FLAGS) if resolved == root else open_walked(resolved, root, shown)
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpecialFileError(f"{shown}: not a folder")
    return fd


def _root_of(resolved: Path, roots: Iterable[Path]) -> Path:
    """The deepest root holding ``resolved`` (where the descriptor walk starts)."""
    holding = [r for r in roots if resolved == r or resolved.is_relative_to(r)]
    return max(holding, key=lambda r: len(r.parts))


@contextmanager
def open_checked(path: str | Path, roots: Iterable[str | Path], kind: FileKind) -> Iterator[BinaryIO]:
    """Open a run file for binary reading after every check above.

    The path is resolved and confined (so a relative symlink that stays inside the root still
    works), then the *resolved* path is walked from its root with directory descriptors and
    ``O_NOFOLLOW`` (:func:`open_walked`), and every check is made on the opened descriptor
    (``fstat``): nothing swapped in after the check can redirect or enlarge the read.
    """
    root_list = [Path(r).expanduser().resolve() for r in roots]
    resolved = confine(path, root_list)
    shown = _shown(resolved, root_list)
    if str(resolved).startswith(("/proc/", "/sys/", "/dev/")):
        raise SpecialFileError(f"{shown}: not a regular file")
    fd = open_walked(resolved, _root_of(resolved, root_list), shown)
    with _checked(fd, kind, shown) as handle:
        yield handle


@contextmanager
def _checked(fd: int, kind: FileKind, shown: str) -> Iterator[BinaryIO]:
    """The checks every read makes, on the opened descriptor (``fstat``), then the handle."""
    handle = os.fdopen(fd, "rb")
    try:
        info = os.fstat(fd)
        check_stat(info, kind, shown)
        if kind != "weights" and info.st_size <= LFS_POINTER_MAX:
            head = handle.read(len(LFS_POINTER_PREFIX))
            if is_lfs_pointer(head):
                raise LfsPointerError(f"{shown}: Git LFS pointer — run `git lfs pull`")
            handle.seek(0)
        yield handle
    finally:
        handle.close()


@contextmanager
def open_entry(folder: Path, name: str, roots: Iterable[str | Path], kind: FileKind,
               dir_fd: int) -> Iterator[BinaryIO]:
    """:func:`open_checked` for an entry of a folder already opened by :func:`open_folder`.

    A plain entry is opened relative to the folder's descriptor with ``O_NOFOLLOW`` (no second
    walk from the root: listing many checkpoints stays cheap); an entry that is a symlink is
    resolved and confined by :func:`open_checked`. The same checks run on the opened descriptor.
    """
    if "/" not in name and not stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise RunFileError(f"{name}: cannot read ({exc.strerror or type(exc).__name__})") from exc
        with _checked(fd, kind, name) as handle:
            yield handle
        return
    with open_checked(folder / name, roots, kind) as handle:
        yield handle


def read_limited(handle: BinaryIO, kind: FileKind, shown: str) -> bytes:
    """Read a checked handle whole, within the size limit of ``kind`` (a file may grow after ``fstat``)."""
    limit = SIZE_LIMITS[kind]
    data = handle.read(limit + 1)
    if len(data) > limit:
        raise FileTooLargeError(f"{shown}: over the {limit / MB:,.0f} MB limit for {kind} files")
    return data


def read_bytes(path: str | Path, roots: Iterable[str | Path], kind: FileKind) -> bytes:
    """The whole file, within the size limit of ``kind``."""
    with open_checked(path, roots, kind) as handle:
        return read_limited(handle, kind, Path(path).name)


def read_text(path: str | Path, roots: Iterable[str | Path], kind: FileKind = "text") -> str:
    """The file decoded as UTF-8 (undecodable bytes replaced, never raised)."""
    return read_bytes(path, roots, kind).decode("utf-8", errors="replace")


def parse_json(data: bytes, shown: str) -> Any:
    """Parse JSON bytes; errors (syntax, depth) become :class:`JsonFileError`.

    orjson bounds nesting depth; it refuses the ``NaN``/``Infinity`` literals that Python's
    ``json`` (and so HF ``Trainer``) writes, so such files fall back to ``json`` with the
    ``RecursionError`` of a too-deep document caught.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        if "depth" in str(exc).lower():
            raise JsonFileError(f"{shown}: nested too deeply") from exc
        if not any(word in data for word in (b"NaN", b"Infinity")):
            raise JsonFileError(f"{shown}: not valid JSON") from exc
    try:
        return json.loads(data)
    except RecursionError as exc:
        raise JsonFileError(f"{shown}: nested too deeply") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonFileError(f"{shown}: not valid JSON") from exc


def read_json(path: str | Path, roots: Iterable[str | Path], kind: FileKind = "json") -> Any:
    """Parse a run's JSON file (``kind`` picks the size limit)."""
    data = read_bytes(path, roots, kind)
    return parse_json(data, Path(path).name)


def _no_symlink_components(path: Path, base: Path) -> None:
    """Refuse a write target whose folders below ``base`` include a symlink."""
    current = base
    for part in path.relative_to(base).parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise OutsideRootsError(f"{current.name}: is a symlink; refusing to write through it")


def write_target(path: Path, base: Path) -> Path:
    """Where a write of ``path`` (inside ``base``) may go, or a refusal: the one write wall.

    ``path`` (absolute, or relative to ``base``) must stay inside ``base`` after resolving, no
    folder between ``base`` and it may be a symlink, and the target itself must be absent or a
    regular file — never a symlink, FIFO or device. :func:`write_atomic` and the history database
    (which SQLite writes itself) both check here first.
    """
    given = base.expanduser()
    base = given.resolve()
    try:
        rel = path.relative_to(given) if path.is_absolute() else path
    except ValueError:
        try:
            rel = path.relative_to(base)
        except ValueError:
            raise OutsideRootsError(f"{path.name}: is outside the writable folder") from None
    target = base / rel
    if not target.resolve().is_relative_to(base) and not target.parent.resolve().is_relative_to(base):
        raise OutsideRootsError(f"{target.name}: is outside the writable folder")
    _no_symlink_components(target, base)
    if target.is_symlink():
        raise OutsideRootsError(f"{target.name}: is a symlink; refusing to write through it")
    with suppress(FileNotFoundError):
        if not stat.S_ISREG(target.lstat().st_mode):
            raise SpecialFileError(f"{target.name}: not a regular file; refusing to write to it")
    return target


def write_atomic(path: Path, data: bytes, base: Path) -> Path:
    """Write ``data`` to ``path`` (inside ``base``) atomically, never following a symlink.

    The file is written to a temporary file in the same folder and renamed over the target, so
    readers see the old or the new content, never a mix; a symlink at the target or in any
    folder between ``base`` and the target is refused rather than followed (:func:`write_target`).
    """
    target = write_target(path, base)
    target.parent.mkdir(parents=True, exist_ok=True)
    target = write_target(target, base)  # a folder made by someone else meanwhile is checked again
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp_name)
        raise
    return target
