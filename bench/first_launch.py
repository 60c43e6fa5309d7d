"""A new user's first launch: ``bash scripts/launch.sh`` in a fresh clone, timed to the first page and beyond.

Starts the README's launch in ``--clone`` (a fresh ``git clone``; its ``.venv`` may already hold the
installed requirements, then pip only checks them), opens the app in Debian's Chromium once the
server answers, and records, from the moment the script was started:

- ``health_s``: the server answers ``/_stcore/health``;
- ``first_page_s``: Home has rendered in the browser (and shows the demo build's progress);
- ``first_checkpoint_s``: the demo's first checkpoint is complete on disk (listed by the app);
- ``first_score_s``: the live watcher saved its first complete result for it;
- ``complete_s``: ``demo_run.json`` says ``"complete": true``.

Usage: ``python bench/first_launch.py --clone /tmp/fresh [--until complete] [--preset test]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tests" / "browser"))

from browser_kit import CHROMIUM, CHROMIUM_ARGS, free_port, wait_for_app, wait_healthy  # noqa: E402

STAGES = ("health", "first_page", "first_checkpoint", "first_score", "complete")


def _first_checkpoint(demo: Path) -> bool:
    return any((p / "trainer_state.json").is_file() for p in demo.glob("checkpoint-*"))


def _first_score(demo: Path) -> bool:
    for path in (demo / "eval_results").glob("*/*.json"):
        try:
            if json.loads(path.read_text()).get("complete"):
                return True
        except (OSError, ValueError):
            continue
    return False


def _complete(demo: Path) -> bool:
    try:
        return json.loads((demo / "demo_run.json").read_text()).get("complete") is True
    except (OSError, ValueError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clone", type=Path, required=True, help="a fresh clone of the repository")
    parser.add_argument("--until", choices=STAGES, default="first_score")
    parser.add_argument("--preset", choices=["full", "test"], default="full")
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMLAB_")}
    if args.preset != "full":
        env["VLMLAB_DEMO_PRESET"] = args.preset
    log = open(args.clone / "first-launch-server.log", "w")  # noqa: SIM115 — open for the server's lifetime
    started = time.monotonic()
    server = subprocess.Popen(["bash", "scripts/launch.sh", "--server.port", str(port), "--server.headless", "true"],
                              cwd=args.clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    times: dict[str, float] = {}
    demo = args.clone / "runs" / "demo"
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, server, timeout=args.timeout)
        times["health"] = time.monotonic() - started
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.goto(url)
            wait_for_app(page)
            page.wait_for_selector('h1:has-text("VLM checkpoint lab")')
            times["first_page"] = time.monotonic() - started
            checks = {"first_checkpoint": _first_checkpoint, "first_score": _first_score, "complete": _complete}
            deadline = started + args.timeout
            for stage in STAGES[2:STAGES.index(args.until) + 1]:
                while not checks[stage](demo):
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise TimeoutError(f"no {stage} within {args.timeout:.0f} s")
                    time.sleep(0.5)
                times[stage] = time.monotonic() - started
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
        log.close()
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(json.dumps({"seconds": {k: round(v, 1) for k, v in times.items()}, "preset": args.preset,
                      "load_average_after": load, "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
