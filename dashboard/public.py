"""Public mode: the rules for a dashboard that strangers open (a Hugging Face Space).

On when the Space's environment says so (``SPACE_ID`` is set) or with ``VLMLAB_PUBLIC=1``;
``VLMLAB_PUBLIC=0`` turns it off (a private Space). In public mode every browser gets a
server-issued visitor identity (:mod:`dashboard.identity`, carried in a cookie), history and
uploaded-set scores are per visitor, and the limits below — applied by the one admission gate
(:mod:`dashboard.admission`) — keep one visitor from taking both cores of a small Space. No
Streamlit here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard.generation import GenerationInputError

PUBLIC_ENV = "VLMLAB_PUBLIC"
PROXY_HOPS_ENV = "VLMLAB_PROXY_HOPS"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def on_space(env: Mapping[str, str] | None = None) -> bool:
    """Whether this runs on a Hugging Face Space: every Space's environment sets ``SPACE_ID``."""
    env = os.environ if env is None else env
    return bool(env.get("SPACE_ID", "").strip())


def public_mode(env: Mapping[str, str] | None = None) -> bool:
    """``VLMLAB_PUBLIC`` if set (1/0, true/false …), else whether this runs on a Space (``SPACE_ID``)."""
    env = os.environ if env is None else env
    value = env.get(PUBLIC_ENV, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return on_space(env)


def torch_threads(env: Mapping[str, str] | None = None) -> int | None:
    """Torch threads per generation this server should set, or None to keep torch's default.

    Public mode runs several visitors' generations at once on a small machine; torch's default
    gives each one a thread per core, and on a busy 2-core machine the threads spin against each
    other: one thread each made every visitor's p95 about 4× shorter and used half the CPU
    (bench/RESULTS.md, issue 30). An operator's ``OMP_NUM_THREADS`` is left alone.
    """
    env = os.environ if env is None else env
    if env.get("OMP_NUM_THREADS", "").strip():
        return None
    return 1 if public_mode(env) else None


def proxy_hops(env: Mapping[str, str] | None = None) -> int:
    """Reverse proxies that append to ``X-Forwarded-For``: ``VLMLAB_PROXY_HOPS``, else 1 on a Space, else 0."""
    env = os.environ if env is None else env
    raw = env.get(PROXY_HOPS_ENV, "").strip()
    if raw.isdigit():
        return int(raw)
    return 1 if on_space(env) else 0


@dataclass(frozen=True)
class PublicLimits:
    """Per-visitor limits in public mode (one place; the banner, the controls and the messages quote them)."""

    max_new_tokens: int = 64
    max_beams: int = 2
    max_sweep_generations: int = 64
    """Generations per job: examples × checkpoints."""
    concurrent_generations: int = 1
    """Jobs per visitor at a time (all their tabs together)."""
    concurrent_jobs: int = 2
    """Public jobs running at once in the whole server (a small Space has two cores)."""
    concurrent_jobs_per_client: int = 1
    """Public jobs one client (network address) may have running at once: one client never holds every
    place, so a visitor from elsewhere finds one free or next to free (bench/RESULTS.md, issue 30)."""
    max_upload_pixels: int = 64_000_000
    """Decoded pixels one visitor's batch of uploads may take (counted from the files' headers: each is
    decoded once at full size)."""
    max_batch_size: int = 4
    """Examples generated together in one checkpoint turn: a turn of 8 took seconds on a loaded machine,
    and every other visitor of that checkpoint waited for it (bench/RESULTS.md, issue 30)."""
    max_map_check_pictures: int = 256
    """Pictures the model runs on for one *Check this map* (each a full forward pass of the picture and the
    prompt). Locally the check runs ~3,200 (99 random orders, 21 curve points) in batches of 32; public mode
    runs 19 random orders — the fewest with which p can reach 0.05 at all — and the most curve points that fit
    (8 on a grid of 36 cells or more: 242 pictures), in batches of ``max_batch_size``, one checkpoint turn per
    batch; the sanity check (a copy of the whole model) is left out. On the demo such a check took 0.6× the time
    of the largest sweep a visitor may run (64 answers of 64 tokens), the local one 6.6× (bench/RESULTS.md)."""
    max_image_side: int = 1024
    """An uploaded image larger than this on a side is used reduced to it (≤ 1 MP, 4 MB as Pillow holds
    RGB): a 40 MP upload then costs 4 MB, not 160 MB, in every session, cache and job holding it. 2048
    (16 MB each) kept the server over its budget under 7 uploading identities (bench/RESULTS.md, issue 30);
    the processors of the models a small Space runs resize to a few hundred pixels anyway."""
    decoded_cache_pixels: int = 32_000_000
    """Decoded uploads the process keeps for reruns and other tabs (reduced images; 128 MB as Pillow holds
    RGB at 4 bytes a pixel). Locally twice one visitor's upload budget (128 MP, 512 MB): many identities
    uploading distinct images would fill that past a small Space's memory (bench/RESULTS.md, issue 30);
    an evicted image is decoded again when asked, one decode at a time."""
    max_eval_rows: int = 1000
    """Rows of an uploaded eval set that are read."""
    max_upload_mb: int = 8
    """Size of one uploaded file (MB, as Streamlit's ``server.maxUploadSize`` counts: MiB). Streamlit keeps
    every upload in memory for as long as its uploader holds it, per session: 25 MB eval sets in 7 sessions
    of one client kept the server over its memory budget (bench/RESULTS.md, issue 30). 8 MB holds a phone
    photo and a 1000-row eval set many times over."""
    retention_days: int = 7


LIMITS = PublicLimits()


def upload_limit_mb(env: Mapping[str, str] | None = None) -> int | None:
    """Largest upload (MB) this server takes: ``LIMITS.max_upload_mb`` in public mode, else None (the
    deployment's ``server.maxUploadSize`` stands)."""
    return LIMITS.max_upload_mb if public_mode(env) else None


def shown_path(path: str | Path, roots: Iterable[Path], env: Mapping[str, str] | None = None) -> str:
    """A run or checkpoint path as a page shows it: whole locally; public: relative to its runs root.

    Strangers learn nothing of the server's folders from ``demo/checkpoint-600``.
    """
    if not public_mode(env):
        return str(path)
    resolved = Path(path).resolve()
    for root in roots:
        try:
            return resolved.relative_to(Path(root).resolve()).as_posix() or Path(path).name
        except ValueError:
            continue
    return Path(path).name


def scrub_paths(data: Any, roots: Iterable[Path], env: Mapping[str, str] | None = None) -> Any:
    """An export with every server path made relative to its runs root (public mode; unchanged locally).

    Exports carry run and checkpoint folders in many fields (provenance, checkpoint metadata,
    history rows); walking the whole structure keeps a new field from leaking a path.
    """
    if not public_mode(env):
        return data
    prefixes = sorted({str(Path(r).resolve()) for r in roots} | {str(Path(r).absolute()) for r in roots},
                      key=len, reverse=True)

    def scrub(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("/"):
            for prefix in prefixes:
                if value == prefix:
                    return "."
                if value.startswith(prefix + "/"):
                    return value[len(prefix) + 1:]
            return Path(value).name  # a path outside the roots: its name only
        if isinstance(value, Mapping):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [scrub(v) for v in value]
        return value

    return scrub(data)


VISITOR_RESULTS = "visitors"


def results_location(run_dir: Path, data_dir: Path, visitor: str | None, shared: bool) -> tuple[Path, Path | None]:
    """Where eval results are read and written, as ``(run_dir, data_dir)`` for ``dashboard.compare``.

    Local use, or a set everyone may see (public mode: the run's own eval set): the run folder
    with the data-dir fallback, as always — Timeline shows them. A visitor's uploaded set in
    public mode: ``<data_dir>/visitors/<visitor id>/<run>-<hash>``, standing in for the run folder
    with no fallback, so the scores are written nowhere another visitor's pages read. A wrapper
    around the storage location, not part of the result key (``dashboard.compare.results``).
    """
    if visitor is None or shared:
        return run_dir, data_dir
    if not re.fullmatch(r"[A-Za-z0-9_-]{8,64}", visitor):
        raise ValueError("not a server-issued visitor id")
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    return Path(data_dir) / VISITOR_RESULTS / visitor / f"{Path(run_dir).name}-{digest}", None


class VisitorLimitError(GenerationInputError):
    """A public-mode limit refused the request; the message says which and what to do."""
