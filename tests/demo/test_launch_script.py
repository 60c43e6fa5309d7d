"""The README's launch command with another port works exactly as written (issue 37: "the README does
not say how to choose the port").

The command is read from the README's Quick start; it runs ``scripts/launch.sh`` in a checkout laid
out like a fresh clone whose ``.venv`` is this test's own environment (already satisfying
``requirements.txt``, so its ``pip install`` changes nothing). The README's port is swapped for a free
one (the README's may be taken on a shared machine); the server must answer on that port.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser.browser_kit import free_port

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
PORT_COMMAND = re.compile(r"`(bash scripts/launch\.sh --server\.port (\d+))`")
HEALTHY_S = 300


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def test_the_readme_names_the_port_option_and_its_launch_command_serves_on_that_port(tmp_path: Path):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    found = PORT_COMMAND.search(readme)
    assert found, "the README shows no `bash scripts/launch.sh --server.port N` command"
    port = free_port()
    command = found.group(1).replace(found.group(2), str(port))
    clone = tmp_path / "clone"
    (clone / "scripts").mkdir(parents=True)
    shutil.copy2(REPO_ROOT / "scripts" / "launch.sh", clone / "scripts" / "launch.sh")
    for name in ("Home.py", "pages", "dashboard", ".streamlit", "requirements.txt"):
        (clone / name).symlink_to(REPO_ROOT / name)
    (clone / ".venv").symlink_to(Path(sys.executable).parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLMLAB_")}
    log = tmp_path / "launch.log"
    with log.open("w") as out:
        process = subprocess.Popen(shlex.split(command), cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + HEALTHY_S
        while not _answers(f"http://127.0.0.1:{port}"):
            assert process.poll() is None, log.read_text(encoding="utf-8")
            assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    assert f":{port}" in log.read_text(encoding="utf-8")  # streamlit printed the URL with the chosen port
