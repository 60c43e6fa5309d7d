"""Public mode under abuse: one client with many identities beside a few normal visitors (issue 30).

Server alone (the protocol drive of ``bench/load_test.py``: sessions speak Streamlit's websocket
protocol from Python, no Chromium). The server runs in public mode behind a pretend proxy
(``VLMLAB_PROXY_HOPS=1``; each session sends the ``X-Forwarded-For`` a proxy would add). Two
phases of ``--duration`` seconds each, on one server:

1. *unloaded*: ``--normal`` visitors (one address each) press Generate on Inference over and over;
2. *loaded*: the same visitors again, plus one abusive client (one address) running
   ``--abusive`` sessions — each a fresh identity, since identities are free — doing the same.

Reported: lost requests per group, the normal visitors' p50/p95 latency (click → answer sent) and
requests served per visitor in both phases, the abusive sessions' total, and the server's peak
RSS next to the pool budget. The verdict asks for 0 lost requests, a loaded normal p95 of at most
``--p95-target`` seconds and every normal visitor served at least half of what it got unloaded
(within 2× its unloaded share).

    .venv/bin/python bench/abusive_load.py --runs-root /path/with/demo --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
from bench.protocol_client import ProtocolSession  # noqa: E402
from dashboard.config import parse_size  # noqa: E402
from tests.browser.browser_kit import StreamlitServer  # noqa: E402

ABUSIVE_ADDRESS = "10.66.6.6"


@dataclass
class Phase:
    """One phase's measurements; ``served`` per session, normal visitors first."""

    name: str
    normal: int
    abusive: int
    served: list[int] = field(default_factory=list)
    normal_latencies_s: list[float] = field(default_factory=list)
    abusive_latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def normal_quantile(self, q: int) -> float | None:
        values = self.normal_latencies_s
        if len(values) < 2:
            return values[0] if values else None
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]

    def summary(self) -> dict:
        data = asdict(self)
        data.pop("normal_latencies_s")
        data.pop("abusive_latencies_s")
        data.update(normal_p50_s=self.normal_quantile(50), normal_p95_s=self.normal_quantile(95),
                    normal_requests=len(self.normal_latencies_s), abusive_requests=len(self.abusive_latencies_s))
        return data


async def _visitor(url: str, index: int, address: str, checkpoint: str, example_id: str, phase: Phase,
                   clock: dict, barrier: asyncio.Barrier, abusive: bool) -> None:
    served = 0
    try:
        async with ProtocolSession(url, headers={"X-Forwarded-For": address}) as session:
            try:
                run = await protocol_prepare(session, checkpoint, example_id, "inference")
                _, run = await protocol_request(session, run, "inference", f"{phase.name}{index}w")  # warm-up
            except Exception as exc:
                phase.errors.append(f"session {index} setup: {type(exc).__name__}: {str(exc)[:200]}")
                await barrier.wait()
                return
            await barrier.wait()
            clock.setdefault("deadline", time.monotonic() + clock["duration"])
            n = 0
            while time.monotonic() < clock["deadline"]:
                n += 1
                try:
                    latency, run = await protocol_request(session, run, "inference", f"{phase.name}{index}r{n}")
                except Exception as exc:
                    phase.errors.append(f"session {index} request {n}: {type(exc).__name__}: {str(exc)[:200]}")
                    run = await protocol_prepare(session, checkpoint, example_id, "inference")
                    continue
                (phase.abusive_latencies_s if abusive else phase.normal_latencies_s).append(latency)
                served += 1
    except Exception as exc:
        phase.errors.append(f"session {index}: {type(exc).__name__}: {str(exc)[:200]}")
    finally:
        phase.served[index] = served


async def _phase(url: str, phase: Phase, checkpoints: list[str], example_id: str, duration_s: float) -> None:
    total = phase.normal + phase.abusive
    phase.served = [0] * total
    barrier = asyncio.Barrier(total)
    clock: dict = {"duration": duration_s}
    await asyncio.gather(*(
        _visitor(url, i, f"10.0.0.{i + 1}" if i < phase.normal else ABUSIVE_ADDRESS,
                 checkpoints[i % len(checkpoints)], example_id, phase, clock, barrier, abusive=i >= phase.normal)
        for i in range(total)))


def run(runs_root: Path, normal: int, abusive: int, duration_s: float, budget: str = "1GB") -> dict:
    names = checkpoint_names(runs_root)
    checkpoints = names[::-1][:2]
    example_id = first_example_id(runs_root)
    data_dir = Path(tempfile.mkdtemp(prefix="vlmlab-abuse-"))
    server = StreamlitServer(runs_root, data_dir, data_dir / "streamlit.log",
                             extra_env={"VLMLAB_MEMORY_BUDGET": budget, "VLMLAB_PUBLIC": "1",
                                        "VLMLAB_PROXY_HOPS": "1"})
    sampler = MemorySampler(server.process.pid)
    baseline = sampler.rss()
    sampler.start()
    phases = [Phase("unloaded", normal, 0), Phase("loaded", normal, abusive)]
    try:
        for phase in phases:
            run_in_thread(_phase(server.url, phase, checkpoints, example_id, duration_s))
    finally:
        peak = sampler.stop()
        server.stop()
    return {"phases": [p.summary() for p in phases], "budget_bytes": parse_size(budget), "baseline_rss_bytes": baseline,
            "peak_rss_bytes": peak, "load_average": os.getloadavg(), "duration_s": duration_s,
            "_phases": phases}


def verdict(result: dict, p95_target_s: float) -> list[str]:
    unloaded, loaded = result["_phases"]
    problems = []
    for phase in (unloaded, loaded):
        if phase.errors:
            problems.append(f"{phase.name}: {len(phase.errors)} lost request(s) or failed session(s)")
    p95 = loaded.normal_quantile(95)
    if p95 is None or p95 > p95_target_s:
        problems.append(f"loaded normal p95 {p95} s is over {p95_target_s} s")
    for i in range(loaded.normal):
        if loaded.served[i] * 2 < unloaded.served[i]:
            problems.append(f"normal visitor {i}: served {loaded.served[i]} loaded vs {unloaded.served[i]} unloaded "
                            "(less than half)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-root", type=Path, required=True, help="folder holding the demo run ('demo/')")
    parser.add_argument("--normal", type=int, default=4, help="normal visitors, one address each")
    parser.add_argument("--abusive", type=int, default=20, help="sessions (identities) of the one abusive client")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per phase")
    parser.add_argument("--budget", default="1GB", help="VLMLAB_MEMORY_BUDGET for the server")
    parser.add_argument("--p95-target", type=float, default=1.0, help="loaded normal p95 limit in seconds")
    parser.add_argument("--json", type=Path, help="also write the summary as JSON here")
    args = parser.parse_args(argv)
    result = run(args.runs_root, args.normal, args.abusive, args.duration, args.budget)
    problems = verdict(result, args.p95_target)
    summary = {k: v for k, v in result.items() if not k.startswith("_")}
    print(json.dumps({**summary, "verdict": problems}, indent=1))
    if args.json:
        args.json.write_text(json.dumps({**summary, "verdict": problems}, indent=1))
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
