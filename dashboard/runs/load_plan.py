"""The one description of a checkpoint folder: every file a load will read, checked, before anything loads.

The sidebar, Home, the Timeline, the loader, the Ray workers and the CLI all describe a checkpoint
through :func:`plan_checkpoint`, so "which weights", "is it loadable" and "which files will
transformers read" have one answer. The plan only looks at names, sizes and small JSON files (read
through :mod:`dashboard.runs.files`); no weights are read, no torch is imported here.

What a load reads is an allow-list: the weights (``model.safetensors``, its shard index and shards,
or ``pytorch_model.bin`` / its index; ``adapter_model.*`` for a PEFT adapter) and the small files
transformers opens itself (:data:`SMALL_FILES`, plus ``additional_chat_templates/*.jinja``). Each
is probed through :func:`~dashboard.runs.files.open_checked` (confined, size-limited, no sparse,
special or hard-linked file); a refusal is a problem that makes the checkpoint unloadable. Any other
file in the folder is *not staged* for the load (:mod:`dashboard.models.staging`), so transformers
cannot be made to open it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dashboard.runs.files import (
    LFS_POINTER_MAX,
    LFS_POINTER_PREFIX,
    FileKind,
    RunFileError,
    confine,
    check_stat,
    excerpt,
    is_lfs_pointer,
    open_entry,
    open_folder,
    parse_json,
    read_limited,
)

WeightFormat = Literal["safetensors", "sharded-safetensors", "pickle", "none"]

SMALL_FILES: dict[str, FileKind] = {
    "config.json": "json",
    "generation_config.json": "json",
    "adapter_config.json": "json",
    "tokenizer.json": "tokenizer",
    "tokenizer_config.json": "json",
    "tokenizer.model": "tokenizer",
    "spiece.model": "tokenizer",
    "vocab.json": "tokenizer",
    "vocab.txt": "tokenizer",
    "merges.txt": "tokenizer",
    "special_tokens_map.json": "json",
    "added_tokens.json": "json",
    "chat_template.jinja": "text",
    "chat_template.json": "json",
    "processor_config.json": "json",
    "preprocessor_config.json": "json",
    "video_preprocessor_config.json": "json",
}
"""The small files ``from_pretrained`` / ``AutoProcessor.from_pretrained`` open on their own, and their kinds."""
TEMPLATE_DIR = "additional_chat_templates"
"""transformers also reads every ``*.jinja`` in this sub-folder as a named chat template."""
MAX_TEMPLATES = 32


@dataclass(frozen=True)
class WeightNames:
    """The weight file names of one kind of folder (a full model or a PEFT adapter)."""

    single: str
    index: str
    pickle_single: str
    pickle_index: str


MODEL_WEIGHTS = WeightNames("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                            "pytorch_model.bin.index.json")
ADAPTER_WEIGHTS = WeightNames("adapter_model.safetensors", "adapter_model.safetensors.index.json",
                              "adapter_model.bin", "adapter_model.bin.index.json")
ADAPTER_CONFIG = "adapter_config.json"


@dataclass(frozen=True)
class PlannedFile:
    """One file a load reads: its name relative to the checkpoint folder, its kind, and its size."""

    name: str
    kind: FileKind
    size: int


@dataclass(frozen=True)
class LoadPlan:
    """Everything a load of one checkpoint folder will read, and why it cannot, if it cannot."""

    path: Path
    weight_format: WeightFormat
    weight_files: tuple[PlannedFile, ...]
    """Safetensors or pickle files (shards included); a shard index is among :attr:`small_files`."""
    small_files: tuple[PlannedFile, ...]
    """Configs, tokenizer, chat templates, processor configs: read whole and staged for the load."""
    model_type: str | None
    is_adapter: bool = False
    base: LoadPlan | None = None
    """An adapter's base model folder, planned the same way."""
    remote_code: tuple[str, ...] = ()
    """``auto_map`` entries of ``config.json`` (custom code, needs ``trust_remote_code``)."""
    problems: tuple[str, ...] = ()
    """Why the folder cannot be loaded (empty when it can)."""
    missing_files: tuple[str, ...] = ()
    """Files the folder promises (shards listed in an index) but lacks or cannot use."""
    code_files: tuple[PlannedFile, ...] = ()
    """Top-level ``*.py`` files of a folder whose config maps to custom code; staged only with
    ``trust_remote_code`` on."""
    not_staged: tuple[str, ...] = ()
    """Other entries of the folder: never handed to transformers."""

    @property
    def weights_bytes(self) -> int:
        return sum(f.size for f in self.weight_files)

    @property
    def loadable(self) -> bool:
        """Weights present and complete, every file a load reads passes the walls, a config to build from.

        ``pickle`` counts as loadable here; whether pickles are allowed is the load options' decision.
        """
        return (self.weight_format != "none" and not self.problems and not self.missing_files
                and (self.model_type is not None or (self.is_adapter and self.base is not None
                                                     and self.base.loadable)))

    def file(self, name: str) -> Path:
        return self.path / name


def _probe(folder: Path, name: str, kind: FileKind, roots: list[Path], dir_fd: int) -> int:
    """Size of ``folder/name`` after every check a read makes (confinement, walk, fstat); nothing is read."""
    with open_entry(folder, name, roots, kind, dir_fd) as handle:
        return os.fstat(handle.fileno()).st_size


def _json(folder: Path, name: str, roots: list[Path], dir_fd: int) -> object:
    """A small JSON file of the folder, read through the opener."""
    with open_entry(folder, name, roots, "json", dir_fd) as handle:
        return parse_json(read_limited(handle, "json", name), name)


def _small_file(folder: Path, name: str, kind: FileKind, roots: list[Path],
                problems: list[str], dir_fd: int, entries: frozenset[str]) -> PlannedFile | None:
    """A planned small file, or None when absent; a refusal is recorded as a problem."""
    if not _present(folder, name, entries):
        return None
    try:
        return PlannedFile(name, kind, _probe(folder, name, kind, roots, dir_fd))
    except FileNotFoundError:  # a dangling symlink: nothing transformers could read either
        problems.append(f"{name}: broken link")
    except RunFileError as exc:
        problems.append(f"{name}: {str(exc).split(': ', 1)[-1]}" if ": " in str(exc) else str(exc))
    except OSError as exc:
        problems.append(f"{name}: cannot read ({exc.strerror or type(exc).__name__})")
    return None


def _present(folder: Path, name: str, entries: frozenset[str]) -> bool:
    """Whether the folder has an entry ``name`` (links included); ``entries`` is its listing."""
    return name in entries if "/" not in name else os.path.lexists(folder / name)


def _templates(folder: Path, roots: list[Path], problems: list[str], dir_fd: int,
               entries: frozenset[str]) -> list[PlannedFile]:
    """``additional_chat_templates/*.jinja``: a real folder inside the checkpoint, each file checked."""
    sub = folder / TEMPLATE_DIR
    if TEMPLATE_DIR not in entries:
        return []
    if sub.is_symlink() or not sub.is_dir():
        problems.append(f"{TEMPLATE_DIR}: not a plain folder (a link is not followed)")
        return []
    names = sorted(p.name for p in sub.iterdir() if p.name.endswith(".jinja"))
    if len(names) > MAX_TEMPLATES:
        problems.append(f"{TEMPLATE_DIR}: {len(names)} templates, more than {MAX_TEMPLATES}")
        return []
    planned = [_small_file(folder, f"{TEMPLATE_DIR}/{n}", "text", roots, problems, dir_fd, entries) for n in names]
    return [p for p in planned if p is not None]


def _weight_file(folder: Path, name: str, roots: list[Path], dir_fd: int,
                 entries: frozenset[str]) -> tuple[PlannedFile | None, str | None]:
    """A weight file (or shard) the folder names, or why it is unusable."""
    if Path(name).is_absolute() or ".." in Path(name).parts:
        try:
            confine(folder / name, roots)
        except RunFileError:
            return None, "outside the runs root"
        return None, "not inside the checkpoint folder"
    if not _present(folder, name, entries):
        return None, "missing"
    try:
        with open_entry(folder, name, roots, "weights", dir_fd) as handle:
            size = os.fstat(handle.fileno()).st_size
            if size <= LFS_POINTER_MAX and is_lfs_pointer(handle.read(len(LFS_POINTER_PREFIX))):
                return None, "Git LFS pointer — run `git lfs pull`"
    except FileNotFoundError:
        return None, "missing"
    except RunFileError as exc:
        message = str(exc)
        return None, "outside the runs root" if "outside the runs root" in message else message.split(": ", 1)[-1]
    return PlannedFile(name, "weights", size), None


def _weights(folder: Path, names: WeightNames, roots: list[Path], problems: list[str],
             small: list[PlannedFile], dir_fd: int,
             entries: frozenset[str]) -> tuple[WeightFormat, tuple[PlannedFile, ...], tuple[str, ...]]:
    """Which weights a load reads: a safetensors index (and its shards), a single file, or pickles."""
    for index_name in (names.index, names.pickle_index):
        index = _small_file(folder, index_name, "json", roots, problems, dir_fd, entries)
        if index is None:
            if index_name in entries:
                return ("sharded-safetensors" if index_name == names.index else "pickle"), (), (index_name,)
            continue
        small.append(index)
        fmt: WeightFormat = "sharded-safetensors" if index_name == names.index else "pickle"
        try:
            data = _json(folder, index_name, roots, dir_fd)
        except RunFileError as exc:
            problems.append(str(exc))
            return fmt, (), (index_name,)
        weight_map = data.get("weight_map") if isinstance(data, dict) else None
        if not isinstance(weight_map, dict):
            problems.append(f"{index_name}: no 'weight_map' object")
            return fmt, (), (index_name,)
        shards = sorted({str(v) for v in weight_map.values()})
        found: list[PlannedFile] = []
        bad: dict[str, str] = {}
        for shard in shards:
            planned, why = _weight_file(folder, shard, roots, dir_fd, entries)
            if why:
                bad[shard] = why
            elif planned:
                found.append(planned)
        if not shards:
            problems.append(f"{index_name}: names no shards")
        for why in sorted(set(bad.values())):
            listed = [s for s, w in bad.items() if w == why]
            problems.append(f"{index_name}: {len(listed)} of {len(shards)} shard(s) {why}: "
                            + ", ".join(excerpt(s) for s in listed[:3]) + ("…" if len(listed) > 3 else ""))
        return fmt, tuple(found), tuple(bad)
    for single, fmt in ((names.single, "safetensors"), (names.pickle_single, "pickle")):
        if single not in entries:
            continue
        planned, why = _weight_file(folder, single, roots, dir_fd, entries)
        if why:
            problems.append(f"{single}: {why}")
            return "none", (), ()
        assert planned is not None
        return fmt, (planned,), ()  # type: ignore[return-value]
    others = sorted(e for e in entries if e.endswith(".safetensors"))[:3]
    hint = f"; {', '.join(excerpt(o) for o in others)} is not a name transformers loads" if others else ""
    problems.append(f"no model weights ({names.single} missing){hint}")
    return "none", (), ()


def _config(folder: Path, roots: list[Path], problems: list[str], dir_fd: int) -> tuple[str | None, tuple[str, ...]]:
    """``model_type`` and ``auto_map`` entries of ``config.json`` (already probed)."""
    try:
        config = _json(folder, "config.json", roots, dir_fd)
    except RunFileError as exc:
        problems.append(str(exc))
        return None, ()
    if not isinstance(config, dict):
        problems.append(f"config.json: expected a JSON object, got {type(config).__name__}")
        return None, ()
    auto_map = config.get("auto_map")
    remote = tuple(sorted(str(k) for k in auto_map)) if isinstance(auto_map, dict) and auto_map else ()
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        problems.append("config.json: no 'model_type'")
        return None, remote
    return model_type, remote


def _adapter_base(folder: Path, roots: list[Path], problems: list[str], depth: int,
                  dir_fd: int) -> LoadPlan | None:
    """The local base model an adapter names (``base_model_name_or_path``), planned; never a hub id."""
    try:
        adapter = _json(folder, ADAPTER_CONFIG, roots, dir_fd)
    except RunFileError as exc:
        problems.append(str(exc))
        return None
    base_name = adapter.get("base_model_name_or_path") if isinstance(adapter, dict) else None
    if not base_name or not isinstance(base_name, str):
        problems.append(f"{ADAPTER_CONFIG} names no base_model_name_or_path")
        return None
    candidates = [Path(base_name).expanduser(), folder / base_name, folder.parent / base_name]
    found = next((c for c in candidates if (c / "config.json").is_file()), None)
    if found is None:
        problems.append(f"a PEFT adapter whose base model {excerpt(base_name, 80)!r} is not a local folder; models "
                        "are never downloaded here, so place the base checkpoint locally and point "
                        "base_model_name_or_path at it")
        return None
    try:
        base = confine(found, roots)
    except RunFileError:
        problems.append(f"the adapter's base model {Path(base_name).name!r} is outside the runs root")
        return None
    if depth > 0:
        problems.append("the adapter's base model is itself an adapter")
        return None
    return plan_checkpoint(base, roots, _depth=depth + 1)


def plan_checkpoint(path: str | Path, roots: list[Path] | tuple[Path, ...] | None = None,
                    _depth: int = 0) -> LoadPlan:
    """Describe one checkpoint folder; every problem is recorded, nothing raises for bad contents.

    ``roots`` confine every file read (default: the folder's parent, i.e. its run).
    """
    folder = Path(path)
    root_list = [Path(r).expanduser().resolve() for r in roots] if roots else [folder.resolve().parent]
    problems: list[str] = []
    try:
        confine(folder, root_list)
    except RunFileError:
        return LoadPlan(folder, "none", (), (), None, problems=("links outside the runs root; not read",))
    try:
        if not stat.S_ISDIR(folder.stat().st_mode):
            return LoadPlan(folder, "none", (), (), None, problems=("not a folder",))
    except OSError:
        return LoadPlan(folder, "none", (), (), None, problems=("does not exist",))
    try:
        dir_fd = open_folder(folder, root_list)
    except (RunFileError, OSError):
        return LoadPlan(folder, "none", (), (), None, problems=("changed while being read; not read",))
    try:
        return _plan(folder, root_list, problems, dir_fd, _depth)
    finally:
        os.close(dir_fd)


def _plan(folder: Path, root_list: list[Path], problems: list[str], dir_fd: int, depth: int) -> LoadPlan:
    entries = frozenset(os.listdir(dir_fd))
    is_adapter = ADAPTER_CONFIG in entries
    small = [f for name, kind in SMALL_FILES.items()
             if (f := _small_file(folder, name, kind, root_list, problems, dir_fd, entries)) is not None]
    small += _templates(folder, root_list, problems, dir_fd, entries)
    names = {f.name for f in small}
    model_type, remote = _config(folder, root_list, problems, dir_fd) if "config.json" in names else (None, ())
    if "config.json" not in names and not is_adapter and "config.json" not in entries:
        problems.append("no config.json, so it is not a transformers model folder")
    fmt, weights, missing = _weights(folder, ADAPTER_WEIGHTS if is_adapter else MODEL_WEIGHTS, root_list,
                                     problems, small, dir_fd, entries)
    names = {f.name for f in small}  # a shard index joined them
    base = _adapter_base(folder, root_list, problems, depth, dir_fd) if ADAPTER_CONFIG in names else None
    code: list[PlannedFile] = []
    if remote:
        code = [f for name in sorted(e for e in entries if e.endswith(".py"))
                if (f := _small_file(folder, name, "text", root_list, problems, dir_fd, entries)) is not None]
    read = names | {w.name for w in weights} | {c.name for c in code} | {TEMPLATE_DIR}
    not_staged = tuple(sorted(entries - read))
    return LoadPlan(folder, fmt, weights, tuple(small), model_type, is_adapter=is_adapter, base=base,
                    remote_code=remote, problems=tuple(problems), missing_files=missing, code_files=tuple(code),
                    not_staged=not_staged)
