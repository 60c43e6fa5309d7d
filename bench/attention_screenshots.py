"""The Attention page on a run, first vs last checkpoint, as a person sees it: real server, real Chromium.

Usage: .venv/bin/python bench/attention_screenshots.py --run runs/demo [--example 00003]
Opens ``?run=<run>&ckpt=<checkpoint>`` then the Attention page for the run's first and last checkpoint, picks the eval
example, clicks *Generate and capture* and saves ``test-artifacts/attention-<run>-<checkpoint>.png``
(the overlay of the first generated token, mean over layers and heads, with its colour bar); prints
the caption under each heatmap and where the asked object's box is.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from the repo root

from dashboard.runs.checkpoints import discover_checkpoints
from tests.browser.browser_kit import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    StreamlitServer,
    click_button,
    click_example,
    goto,
    open_page,
    selected_value,
    settle,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=Path("runs/demo"))
    parser.add_argument("--example", default="", help="eval example id (default: the first)")
    args = parser.parse_args()
    run = args.run.resolve()
    rows = [json.loads(line) for line in (run / "eval" / "demo.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["id"] == args.example) if args.example else rows[0]
    target = row["objects"][row["target"]]
    print(f"example {row['id']}: {row['prompt']!r} → {row['answer']!r}; target {target}")
    checkpoints = discover_checkpoints(run)
    ARTIFACTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        server = StreamlitServer(run.parent, Path(data_dir), ARTIFACTS / "attention-screenshots-server.log")
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                for info in (checkpoints[0], checkpoints[-1]):
                    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                    page.set_default_timeout(120_000)
                    goto(page, server, f"?run={run.name}&ckpt={info.path.name}")
                    open_page(page, "Attention")
                    chosen = selected_value(page, "Checkpoint", scope='[data-testid="stSidebar"]')
                    if not chosen.startswith(info.path.name):
                        raise RuntimeError(f"the sidebar shows {chosen!r}, not {info.path.name}")
                    click_example(page, row["id"])
                    click_button(page, "Generate and capture")
                    page.get_by_text("Generated token").first.wait_for()
                    settle(page)
                    caption = page.locator('[data-testid="stImage"]').filter(has_text="colour bar").first
                    caption.scroll_into_view_if_needed()
                    settle(page)
                    page.wait_for_timeout(500)  # let the widgets above the map finish painting
                    path = ARTIFACTS / f"attention-{run.name}-{info.path.name}.png"
                    page.screenshot(path=str(path))
                    print(f"{info.path.name}: {caption.inner_text().strip()!r} → {path}")
                    page.context.close()
                browser.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
