"""A stand-in chat-template worker: the real protocol and limits (``template_worker.serve``), but the
"template" names an action run *without* the sandbox, so the cage itself is tested.

The sandbox refuses every hostile template it knows with a clear message before anything runs in
C; the process cage exists for the ones it does not know. These actions are such templates: code
that holds the GIL in C, allocates past the memory limit, burns CPU past its limit, or reports what
the worker can see.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def command() -> list[str]:
    boot = "import sys; sys.path.insert(0, sys.argv[1]); from tests.worker_stand_in import main; main()"
    return [sys.executable, "-I", "-c", boot, str(REPO_ROOT)]


def _act(action: str, context: Mapping[str, Any], timeout_s: float) -> str:
    if action == "freeze-in-c":  # ~60 s of big-integer power in one C call: the GIL is held throughout
        return str(((((99999999999 ** 64) ** 64) ** 7) ** 64).bit_length())
    if action == "allocate-1gb":
        return str(len(bytearray(2**30)))
    if action == "burn-cpu":  # re-arm the CPU limit to 1 s from now, then compute in C
        from dashboard.template_worker import _limit_cpu

        _limit_cpu(0)
        return str(((((99999999999 ** 64) ** 64) ** 7) ** 64).bit_length())
    if action == "environment":
        return json.dumps({"environ": dict(os.environ), "pid": os.getpid()})
    if action == "echo":
        return json.dumps(dict(context), sort_keys=True)
    raise ValueError(action)


def main() -> None:
    from dashboard.template_worker import serve

    serve(_act)
