"""Public mode under abuse: one client with many identities beside a few normal visitors (issue 30).

Server alone (the protocol drive of ``bench/load_test.py``: sessions speak Streamlit's websocket
protocol from Python, no Chromium). The server runs in public mode behind a pretend proxy
(``VLMLAB_PROXY_HOPS=1``; each session sends the ``X-Forwarded-For`` a proxy would add). Two
phases of ``--duration`` seconds each, on one server:

1. *unloaded*: ``--normal`` visitors (one address each) press Generate on Inference over and over;
2. *loaded*: the same visitors again, plus one abusive client (one address) running
   ``--abusive`` sessions — each a fresh identity, since identities are free — in three roles
   (:data:`ROLES`): uploading twelve 6320 × 6320 PNGs and running batches on them, uploading a
   25 MB eval set and running it on Comparison, or generating like the normal visitors
   (``--no-upload``: all generate). Uploads go through ``/_stcore/upload_file`` like a browser's; the
   25 MB eval set is over the public upload limit, so the server refuses it (``refused_uploads``) and the
   session sends the largest set the limit takes. The server runs with :data:`DEPLOYED_ENV`.

Reported per phase: lost requests, the normal visitors' p50/p95 per request type (generation, the
prompt's rerun, a fresh page load), requests served per session, the abusive requests by role,
the server's peak RSS (process tree), CPU seconds and the load average. The verdict asks for 0
lost requests, every normal request type's loaded p95 at most ``--p95-target`` seconds, every
normal visitor served at least half of what it got unloaded (within 2× its unloaded share) and
the peak RSS within the memory budget.

    .venv/bin/python bench/abusive_load.py --runs-root /path/with/demo --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from bench.load_test import (  # noqa: E402
    MemorySampler,
    checkpoint_names,
    first_example_id,
    protocol_prepare,
    protocol_request,
    run_in_thread,
)
from bench.protocol_client import ProtocolSession, chose, click, segment, typed, uploaded  # noqa: E402
from dashboard.config import parse_size  # noqa: E402
from dashboard.public import LIMITS  # noqa: E402
from tests.browser.browser_kit import StreamlitServer  # noqa: E402

ABUSIVE_ADDRESS = "10.66.6.6"
ROLES = ("images", "evalset", "generate")
"""Abusive session ``j`` plays ``ROLES[j % 3]``: uploads big images and runs batches on them, uploads a
big eval set and runs it on Comparison, or presses Generate like a normal visitor."""
NORMAL_KINDS = ("generation", "rerun", "page_load")
"""A normal visitor's request types: the click on Generate, the prompt's commit rerun, and a fresh
session's first run of the Inference page from a link (websocket connect included)."""
PAGE_LOAD_EVERY = 5
"""A normal visitor opens the page afresh once every this many requests."""
IMAGE_SIDE = 6320
IMAGES_PER_UPLOAD = 12
EVAL_SET_BYTES = 25_000_000
"""Under the app's ``server.maxUploadSize`` of 25 MiB (.streamlit/config.toml), over the public limit
(``LIMITS.max_upload_mb``): refused in public mode, and the abusive session then sends the largest set
the limit lets through (:func:`cut_to_limit`)."""
DEPLOYED_ENV = {"MALLOC_ARENA_MAX": "2"}
"""The environment the Dockerfile and ``scripts/launch.sh`` start the server with (memory-relevant part):
the drive measures the server as deployed. ``--server-env MALLOC_ARENA_MAX=8`` measures without it."""


def big_png(side: int, rgb: tuple[int, int, int]) -> bytes:
    """A ``side``×``side`` one-colour PNG, compressed ~1000× (written row by row, never held decoded):
    what an abuser sends to make the server decode many pixels from few bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * side
    compressor = zlib.compressobj(9)
    idat = b"".join([*(compressor.compress(row) for _ in range(side)), compressor.flush()])
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def big_eval_set(run_eval_jsonl: Path, tag: str, size: int = EVAL_SET_BYTES) -> bytes:
    """The run's own rows repeated (fresh ids carrying ``tag``) up to ``size`` bytes: usable as it is,
    since relative image paths resolve against the run's eval folder, and unique per ``tag`` so no
    cache keyed by content can share it between identities."""
    rows = [json.loads(line) for line in run_eval_jsonl.read_text().splitlines() if line.strip()]
    lines: list[bytes] = []
    total = 0
    for n in itertools.count():
        row = dict(rows[n % len(rows)], id=f"{tag}-{n}")
        line = (json.dumps(row) + "\n").encode()
        if total + len(line) > size:
            break
        lines.append(line)
        total += len(line)
    return b"".join(lines)


def cut_to_limit(data: bytes, limit_bytes: int) -> bytes:
    """``data``'s whole lines that fit in ``limit_bytes``: the biggest eval set an upload limit lets through."""
    return data if len(data) <= limit_bytes else data[:data.rfind(b"\n", 0, limit_bytes) + 1]


def largest_upload_bytes() -> int:
    """The largest file a public server takes: its limit less the multipart framing, since Streamlit
    compares the whole request's ``Content-Length`` with the limit."""
    return LIMITS.max_upload_mb * 2**20 - 4096


def upload_refused(exc: BaseException) -> bool:
    """Whether an upload failed the way the server refuses an over-size file: HTTP 413, or — since the
    server answers from the ``Content-Length`` and closes while a client still sends the body — the
    connection reset under the sender."""
    if isinstance(exc, urllib.error.HTTPError):
        return exc.code == 413
    return isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, (ConnectionResetError, BrokenPipeError))


@dataclass
class Uploads:
    """What the abusive client sends: ``images[j]`` for images-session ``j``, one eval set per evalset-session."""

    images: list[list[tuple[str, bytes]]]
    eval_sets: list[bytes]

    @property
    def total_bytes(self) -> int:
        return sum(len(d) for batch in self.images for _, d in batch) + sum(map(len, self.eval_sets))


def make_uploads(runs_root: Path, abusive: int, side: int = IMAGE_SIDE, per_upload: int = IMAGES_PER_UPLOAD,
                 eval_bytes: int = EVAL_SET_BYTES) -> Uploads:
    """Built before the server starts (the drive's own CPU is not spent during the phases). Every
    image differs in colour, so no two sessions share a decoded image."""
    roles = [ROLES[j % len(ROLES)] for j in range(abusive)]
    colours = itertools.count()
    images = [[(f"big{j}-{k}.png", big_png(side, _colour(next(colours)))) for k in range(per_upload)]
              for j, role in enumerate(roles) if role == "images"]
    jsonl = runs_root / "demo" / "eval" / "demo.jsonl"
    eval_sets = [big_eval_set(jsonl, f"abuse{j}", eval_bytes) for j, role in enumerate(roles) if role == "evalset"]
    return Uploads(images, eval_sets)


def _colour(n: int) -> tuple[int, int, int]:
    return (n * 37 % 256, n * 91 % 256, 255 - n % 256)


@dataclass
class Phase:
    """One phase's measurements; ``served`` per session, normal visitors first."""

    name: str
    normal: int
    abusive: int
    served: list[int] = field(default_factory=list)
    normal_latencies_s: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in NORMAL_KINDS})
    abusive_latencies_s: dict[str, list[float]] = field(default_factory=dict)
    """Abusive requests by role, and ``upload``: files sent → the uploader's rerun finished."""
    errors: list[str] = field(default_factory=list)
    refused_uploads: int = 0
    """Uploads the server refused as over its size limit (the session then sends one within it)."""
    peak_rss_bytes: int = 0
    load_average: tuple[float, float, float] | None = None
    server_cpu_s: float = 0.0

    def normal_quantile(self, q: int, kind: str = "generation") -> float | None:
        return _quantile(self.normal_latencies_s[kind], q)

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("normal_latencies_s")
        data.pop("abusive_latencies_s")
        data["normal"] = {kind: _stats(values) for kind, values in self.normal_latencies_s.items()}
        data["abusive_requests"] = {kind: _stats(values) for kind, values in self.abusive_latencies_s.items()}
        return data


def _quantile(values: list[float], q: int) -> float | None:
    if len(values) < 2:
        return values[0] if values else None
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "p50_s": _quantile(values, 50), "p95_s": _quantile(values, 95),
            "max_s": max(values, default=None)}


async def _page_load(url: str, session: ProtocolSession, address: str) -> float:
    """A fresh session (a new tab from a link: new websocket, new identity) running Inference; seconds."""
    started = time.perf_counter()
    async with ProtocolSession(url, session.query_string, headers={"X-Forwarded-For": address}) as fresh:
        fresh.page_hash = session.page_hash
        run = await fresh.rerun()
    if run.errors() or run.status != "FINISHED_SUCCESSFULLY":
        raise RuntimeError(f"page load: {run.status} {run.errors()[:1]}")
    return time.perf_counter() - started


async def _normal_request(url: str, session: ProtocolSession, run, phase: Phase, index: int, n: int, address: str):
    """One normal request (every ``PAGE_LOAD_EVERY``-th also a fresh page load): prompt commit + Generate."""
    if n % PAGE_LOAD_EVERY == 0:
        phase.normal_latencies_s["page_load"].append(await _page_load(url, session, address))
    timings: dict[str, float] = {}
    latency, run = await protocol_request(session, run, "inference", f"{phase.name}{index}r{n}", timings)
    phase.normal_latencies_s["rerun"].append(timings["commit_s"])
    phase.normal_latencies_s["generation"].append(latency)
    return run


async def _prepare_images(session: ProtocolSession, checkpoint: str, files: list[tuple[str, bytes]],
                          phase: Phase):
    """Inference in batch mode with the big images uploaded: the budget keeps what fits, skips the rest."""
    session.query_string = f"run=demo&ckpt={checkpoint}"
    run = await session.open("Inference")
    run = await session.rerun(segment(run.widget("button_group", "Mode"), "Batch"))
    run = await session.rerun(segment(run.widget("button_group", "Images"), "Upload"))
    started = time.perf_counter()
    infos = await session.upload(files)
    run = await session.rerun(uploaded(run.widget("file_uploader", "Images"), infos))
    phase.abusive_latencies_s.setdefault("upload", []).append(time.perf_counter() - started)
    if "image(s) ready" not in run.text() or run.errors():
        raise RuntimeError(f"images upload not taken: {run.errors()[:1]}")
    return await session.rerun(typed(run.widget("text_area", "Prompt"), "what colour is the square ?"))


async def _prepare_evalset(session: ProtocolSession, checkpoint: str, data: bytes, tag: str, phase: Phase):
    """Comparison's eval-set mode with the big set uploaded (parsed up to the public row cap)."""
    session.query_string = f"run=demo&ckpt={checkpoint}&mode=eval"
    run = await session.open("Comparison")
    run = await session.rerun(chose(run.widget("radio", "Eval set source"), "Upload JSONL/CSV"))
    started = time.perf_counter()
    try:
        infos = await session.upload([(f"{tag}.jsonl", data)])
    except urllib.error.URLError as exc:  # over the server's limit: send the most it takes
        if not (upload_refused(exc) and len(data) > LIMITS.max_upload_mb * 2**20):
            raise
        phase.refused_uploads += 1
        started = time.perf_counter()
        infos = await session.upload([(f"{tag}.jsonl", cut_to_limit(data, largest_upload_bytes()))])
    run = await session.rerun(uploaded(run.widget("file_uploader", "Eval set"), infos))
    phase.abusive_latencies_s.setdefault("upload", []).append(time.perf_counter() - started)
    if "usable examples" not in run.text() or run.errors():
        raise RuntimeError(f"eval set upload not taken: {run.errors()[:1]}")
    return run


async def _abusive_request(session: ProtocolSession, run, role: str, marker: str):
    """One abusive request of ``role``; (seconds of the click's run, run)."""
    if role == "generate":
        return await protocol_request(session, run, "inference", marker)
    button = "Run batch" if role == "images" else "Run eval set"
    run = await session.rerun(click(run.widget("button", button)))
    if run.errors():
        raise RuntimeError(run.errors()[0][:300])
    return run.seconds, run


async def _visitor(url: str, index: int, address: str, checkpoint: str, example_id: str, phase: Phase,
                   clock: dict, barrier: asyncio.Barrier, role: str | None, uploads: Uploads | None) -> None:
    """Normal visitor (``role`` None) or abusive session playing ``role``, until the phase's deadline."""
    served = 0
    nth = index - phase.normal  # abusive sessions' own numbering

    async def prepare(session: ProtocolSession):
        if role == "images" and uploads is not None:
            return await _prepare_images(session, checkpoint, uploads.images[nth // len(ROLES)], phase)
        if role == "evalset" and uploads is not None:
            return await _prepare_evalset(session, checkpoint, uploads.eval_sets[nth // len(ROLES)],
                                          f"abuse{nth}", phase)
        run = await protocol_prepare(session, checkpoint, example_id, "inference")
        _, run = await protocol_request(session, run, "inference", f"{phase.name}{index}w")  # warm-up
        return run

    try:
        async with ProtocolSession(url, headers={"X-Forwarded-For": address}) as session:
            try:
                run = await prepare(session)
            except Exception as exc:
                phase.errors.append(f"session {index} ({role or 'normal'}) setup: {type(exc).__name__}: "
                                    f"{str(exc)[:200]}")
                await barrier.wait()
                return
            await barrier.wait()
            clock.setdefault("deadline", time.monotonic() + clock["duration"])
            n = 0
            while time.monotonic() < clock["deadline"]:
                n += 1
                try:
                    if role is None:
                        run = await _normal_request(url, session, run, phase, index, n, address)
                    else:
                        latency, run = await _abusive_request(session, run, role, f"{phase.name}{index}r{n}")
                        phase.abusive_latencies_s.setdefault(role, []).append(latency)
                except Exception as exc:
                    phase.errors.append(f"session {index} request {n}: {type(exc).__name__}: {str(exc)[:200]}")
                    run = await prepare(session)
                    continue
                served += 1
    except Exception as exc:
        phase.errors.append(f"session {index}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        phase.served[index] = served


async def _phase(url: str, phase: Phase, checkpoints: list[str], example_id: str, duration_s: float,
                 uploads: Uploads | None) -> None:
    total = phase.normal + phase.abusive
    phase.served = [0] * total
    barrier = asyncio.Barrier(total)
    clock: dict = {"duration": duration_s}
    await asyncio.gather(*(
        _visitor(url, i, f"10.0.0.{i + 1}" if i < phase.normal else ABUSIVE_ADDRESS,
                 checkpoints[i % len(checkpoints)], example_id, phase, clock, barrier,
                 None if i < phase.normal else ROLES[(i - phase.normal) % len(ROLES)], uploads)
        for i in range(total)))


def _tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of the server and its children so far."""
    process = psutil.Process(pid)
    total = 0.0
    for p in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            times = p.cpu_times()
            total += times.user + times.system
    return total


def run(runs_root: Path, normal: int, abusive: int, duration_s: float, budget: str = "1GB",
        upload: bool = True, uploads: Uploads | None = None, profile_dir: Path | None = None,
        server_env: dict[str, str] | None = None) -> dict:
    """Both phases on one server, back to back; ``upload=False`` makes every abusive session generate only.

    ``profile_dir``: record the server with py-spy during the loaded phase (``loaded.speedscope.json``).
    """
    names = checkpoint_names(runs_root)
    checkpoints = names[::-1][:2]
    example_id = first_example_id(runs_root)
    if upload and uploads is None:
        uploads = make_uploads(runs_root, abusive)
    data_dir = Path(tempfile.mkdtemp(prefix="vlmlab-abuse-"))
    server = StreamlitServer(runs_root, data_dir, data_dir / "streamlit.log",
                             extra_env={"VLMLAB_MEMORY_BUDGET": budget, "VLMLAB_PUBLIC": "1",
                                        "VLMLAB_PROXY_HOPS": "1", **DEPLOYED_ENV, **(server_env or {})})
    sampler = MemorySampler(server.process.pid)
    baseline = sampler.rss()
    sampler.start()
    phases = [Phase("unloaded", normal, 0), Phase("loaded", normal, abusive)]
    try:
        for phase in phases:
            spy = _py_spy(server.process.pid, profile_dir, phase.name) if phase.abusive else None
            cpu = _tree_cpu_s(server.process.pid)
            sampler.peak = 0
            run_in_thread(_phase(server.url, phase, checkpoints, example_id, duration_s,
                                 uploads if upload else None))
            phase.peak_rss_bytes = sampler.peak
            phase.server_cpu_s = _tree_cpu_s(server.process.pid) - cpu
            phase.load_average = os.getloadavg()
            if spy is not None:  # py-spy writes its profile when interrupted
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=120)
    finally:
        peak = max(sampler.stop(), *(p.peak_rss_bytes for p in phases))
        server.stop()
    return {"phases": [p.summary() for p in phases], "server_env": {**DEPLOYED_ENV, **(server_env or {})},
            "budget_bytes": parse_size(budget), "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak, "load_average": os.getloadavg(), "duration_s": duration_s,
            "uploads": None if not upload or uploads is None else {
                "image_files": sum(map(len, uploads.images)), "image_side": IMAGE_SIDE,
                "eval_sets": len(uploads.eval_sets), "eval_set_bytes": max(map(len, uploads.eval_sets), default=0),
                "total_bytes": uploads.total_bytes},
            "_phases": phases}


def _py_spy(pid: int, out_dir: Path | None, name: str):
    """``py-spy record`` of the server (idle threads excluded) until interrupted, or None without py-spy."""
    if out_dir is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    output = out_dir / f"{name}.speedscope.json"
    with open(out_dir / f"{name}.py-spy.log", "w") as log:  # the child keeps its own descriptor
        return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "50", "--format", "speedscope",
                                 "--output", str(output)], stdout=subprocess.DEVNULL, stderr=log)


def verdict(result: dict, p95_target_s: float) -> list[str]:
    """Why the run fails (empty: it passed): a lost request in either phase, a normal request type whose
    loaded p95 is over the target, a normal visitor served less than half its unloaded count, or the
    server's RSS (whole process tree) over the memory budget."""
    unloaded, loaded = result["_phases"]
    problems = []
    for phase in (unloaded, loaded):
        if phase.errors:
            problems.append(f"{phase.name}: {len(phase.errors)} lost request(s) or failed session(s)")
    for kind in NORMAL_KINDS:
        p95 = loaded.normal_quantile(95, kind)
        if p95 is None or p95 > p95_target_s:
            problems.append(f"loaded normal {kind} p95 {p95} s is over {p95_target_s} s")
    for i in range(loaded.normal):
        if loaded.served[i] * 2 < unloaded.served[i]:
            problems.append(f"normal visitor {i}: served {loaded.served[i]} loaded vs {unloaded.served[i]} unloaded "
                            "(less than half)")
    if result["peak_rss_bytes"] > result["budget_bytes"]:
        problems.append(f"server RSS peaked at {result['peak_rss_bytes'] / 2**20:.0f} MiB, over the "
                        f"{result['budget_bytes'] / 2**20:.0f} MiB budget")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True, help="folder holding the demo run ('demo/')")
    parser.add_argument("--normal", type=int, default=4, help="normal visitors, one address each")
    parser.add_argument("--abusive", type=int, default=20, help="sessions (identities) of the one abusive client")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--budget", default="1GB", help="VLMLAB_MEMORY_BUDGET for the server")
    parser.add_argument("--p95-target", type=float, default=1.0, help="loaded normal p95 limit in seconds")
    parser.add_argument("--no-upload", action="store_true",
                        help="every abusive session only generates (the drive before uploads were added)")
    parser.add_argument("--profile", type=Path, help="py-spy record the server's loaded phase into this folder")
    parser.add_argument("--server-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the server (repeatable), e.g. OMP_NUM_THREADS=1")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    result = run(args.runs_root, args.normal, args.abusive, args.duration, args.budget, upload=not args.no_upload,
                 profile_dir=args.profile, server_env=dict(item.split("=", 1) for item in args.server_env))
    problems = verdict(result, args.p95_target)
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    print(json.dumps({**summary, "verdict": problems}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**summary, "verdict": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
