"""Every ``python -m dashboard …`` command the README shows runs as written, from a fresh clone's root.

The commands are read from the README itself (fenced ``bash`` blocks and inline code spans), run in
a subprocess whose working directory is a checkout laid out as the README's launch leaves it
(:func:`tests.conftest.readme_clone`: the demo run in ``./runs/demo``, no ``VLMLAB_*`` variable, so
the default relative runs root), with relative paths exactly as the README writes them.

Short forms (the only changes made to a command, so the suite stays minutes, not hours):

- ``--limit N`` / ``--examples N`` larger than 4 become 4;
- a ``checkpoint-N`` the small test run does not have (the README names the full demo's
  ``checkpoint-2700``), in ``--checkpoints`` or a ``--checkpoint`` path, becomes the test run's last
  checkpoint;
- ``demo`` gets ``--preset test`` (the 2-minute build instead of the 5–10-minute one);
- a span that is only ``python -m dashboard <command>`` with no option is a mention in prose, not
  a command, and is not run.

On the main branch before issue 36 the README's ``pointing --run runs/demo …`` exited 2: relative
paths were re-rooted under the run (``runs/demo/runs/demo/eval/demo.jsonl``), so this test failed.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHORT = 4
# Every fence, whatever its language and indent (a list item's ```python block must not pair its closing
# fence with the next block's opening one, which hid the commands after it); shell blocks are then kept.
_FENCE = re.compile(r"^[ \t]*```([\w-]*)[ \t]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_SHELL = ("", "bash", "sh", "shell")
_INLINE = re.compile(r"`(python -m dashboard[^`]*)`")


def readme_commands(text: str) -> list[str]:
    """``python -m dashboard`` commands of the README, in order, each as one line."""
    found: list[str] = []
    for language, block in _FENCE.findall(text):
        if language not in _SHELL:
            continue
        joined = block.replace("\\\n", " ")
        found += [line.strip() for line in joined.splitlines() if line.strip().startswith("python -m dashboard")]
    prose = _FENCE.sub("", text)
    found += [" ".join(span.split()) for span in _INLINE.findall(prose)]
    commands = [" ".join(c.split()) for c in found if len(shlex.split(c)) > 4]  # more than "python -m dashboard X"
    return list(dict.fromkeys(commands))


def short_form(command: str, checkpoints: list[str]) -> list[str]:
    """The command as argv, with the documented short forms applied."""
    argv = shlex.split(command)
    out: list[str] = []
    for i, arg in enumerate(argv):
        if i and argv[i - 1] in ("--limit", "--examples") and arg.isdigit():
            arg = str(min(int(arg), SHORT))
        if i and argv[i - 1] == "--checkpoints":
            arg = ",".join(name if name in checkpoints else checkpoints[-1] for name in arg.split(","))
        if i and argv[i - 1] == "--checkpoint" and Path(arg).name not in checkpoints:
            arg = str(Path(arg).parent / checkpoints[-1])
        out.append(arg)
    if argv[3] == "demo":
        out += ["--preset", "test"]
    return [sys.executable, *out[1:]]


README_COMMANDS = readme_commands((REPO_ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_the_commands_this_test_runs() -> None:
    subcommands = {shlex.split(c)[3] for c in README_COMMANDS}
    assert {"eval", "pointing", "demo"} <= subcommands, README_COMMANDS
    assert readme_commands("`python -m dashboard eval` in prose\n```bash\npython -m dashboard eval --run x \\\n"
                           "  --limit 80\n```\n") == ["python -m dashboard eval --run x --limit 80"]
    # a fenced non-shell block (indented in a list) before a command block does not hide the command
    assert readme_commands("- item\n  ```python\n  x = 1\n  ```\n\n```bash\npython -m dashboard eval --run x "
                           "--limit 1\n```\n") == ["python -m dashboard eval --run x --limit 1"]
    assert {"geometry", "faithfulness"} <= subcommands, README_COMMANDS


@pytest.mark.parametrize("command", README_COMMANDS,
                         ids=[f"{shlex.split(c)[3]}-{i}" for i, c in enumerate(README_COMMANDS)])
def test_readme_command_runs_as_written_from_the_clone_root(command: str, readme_clone: Path) -> None:
    run = readme_clone / "runs" / "demo"
    checkpoints = sorted((p.name for p in run.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))
    argv = short_form(command, checkpoints)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMLAB_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(readme_clone))
    done = subprocess.run(argv, cwd=readme_clone, env=env, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, f"{' '.join(argv[1:])} exited {done.returncode}:\n{done.stderr[-3000:]}"
    if "--json" in argv:
        if argv[3] == "watch":  # one JSON line per scored checkpoint
            lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
            assert lines and {line["checkpoint"] for line in lines} <= set(checkpoints), lines
        else:
            report = json.loads(done.stdout)
            key = {"patch": "components", "geometry": "min_iou", "faithfulness": "examples"}.get(argv[3], "checkpoints")
            assert report[key], report
    if argv[1:3] == ["-m", "dashboard"] and argv[3] == "demo":
        assert (run / "trainer_state.json").is_file()
