"""A run whose every name and text carries Markdown payloads (issue 29 item 4), and the checks for them.

The payloads point at ``host`` (a local listener in the browser test): if any of them is rendered as
Markdown, the browser fetches ``http://<host>/<marker>.png``. Each payload carries a marker word, so a
check can find where run text landed in the page and ask whether it is still live Markdown there.

Written with the real writers where there is one (``SummaryWriter`` for TensorBoard scalars and text);
the demo run (trained with ``transformers.Trainer``) provides checkpoints, trainer_state.json and its
eval set, whose rows and file name are rewritten.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

# Live Markdown in a source string: image, link destination, HTML, code span, :directive[…], icon.
LIVE_MARKDOWN = re.compile(r"(?<!\\)!(?<!\\)\[|(?<!\\)\]\(|(?<!\\)<[A-Za-z/!?]|(?<!\\)`"
                           r"|(?<!\\):[a-z][a-z0-9-]*(?<!\\)\[|(?<!\\):material/|:(?:streamlit|smile):")
MARKERS = ("fimg", "eimg", "idimg", "pimg", "aimg", "timg", "mimg", "tbimg", "txtimg", "bimg", "simg")


def _payload(marker: str, host: str) -> str:
    """One string with every construct the issue names, all carrying ``marker``."""
    url = f"http://{host}/{marker}.png"
    return f"![{marker}]({url}) `{marker}-code` <b>{marker}-html</b> :red[{marker}-red] :smile: *{marker}*"


def folder_payload(marker: str, host: str) -> str:
    """A payload usable as a file or folder name: no ``/`` (CommonMark decodes ``&#47;`` in a URL)."""
    return _payload(marker, host).replace("/", "&#47;")


def build_markdown_run(demo_run: Path, root: Path, host: str) -> Path:
    """Copy the demo run under a hostile folder name and fill every run-derived string with payloads."""
    run = root / f"md {folder_payload('fimg', host)}"
    shutil.copytree(demo_run, run)
    eval_dir = run / "eval"
    rows = [json.loads(line) for line in (eval_dir / "demo.jsonl").read_text().splitlines() if line.strip()]
    (eval_dir / "demo.jsonl").unlink()
    hostile_rows = []
    for index, row in enumerate(rows[:16]):  # image paths stay relative to the eval folder
        hostile_rows.append({**row, "id": f"{index} {_payload('idimg', host)}",
                             "prompt": f"{row['prompt']} {_payload('pimg', host)}",
                             "answer": f"{row['answer']} {_payload('aimg', host)}",
                             "task": _payload("timg", host)})
    (eval_dir / f"{folder_payload('eimg', host)}.jsonl").write_text(
        "\n".join(json.dumps(r) for r in hostile_rows) + "\n")

    state_path = run / "trainer_state.json"
    state = json.loads(state_path.read_text())
    tag = f"eval_{_payload('mimg', host)}"
    for entry in state["log_history"]:
        if "eval_loss" in entry:
            entry[tag] = entry["eval_loss"] / 2
    state["best_model_checkpoint"] = f"/train/out/{_payload('bimg', host)}"
    state_path.write_text(json.dumps(state))

    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(run / "runs" / "hostile")) as writer:
        for step in (1, 2, 3):
            writer.add_scalar(f"train/{_payload('tbimg', host)}", 0.5 / step, step)
            writer.add_text(_payload("simg", host), f"sample {step}: {_payload('txtimg', host)}", step)
    return run


def live_markdown_with_marker(text: str) -> str | None:
    """The first live Markdown construct in ``text`` if it carries run text (a marker), else None."""
    if not any(m in text for m in MARKERS):
        return None
    found = LIVE_MARKDOWN.search(text)
    return None if found is None else text[max(0, found.start() - 40):found.end() + 40]
