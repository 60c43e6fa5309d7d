"""Render a checkpoint's chat template with a time and an output-size limit.

A chat template is code the run author wrote. transformers renders it in Jinja's sandbox, which
stops attribute escapes but not ``{% set s = 'x' * 20000000000 %}`` (allocates until the server
stops answering) or nested ``range(100000)`` loops (never returns, and keeps a core busy after
the browser closed). Here the same sandbox is extended so that

* ``*``/``**`` and every function, filter and attribute result are size-checked,
* ``range`` and every call check a deadline,
* output is streamed and cut at :data:`MAX_OUTPUT_CHARS`,
* and a render still running at the deadline is abandoned in its worker thread (which gets an
  asynchronous exception at its next bytecode),

and every failure is a :class:`ChatTemplateError` with a message, never an unhandled exception.
The environment mirrors transformers' (``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``,
``raise_exception``, ``strftime_now``, ``tojson``), so output is identical for normal templates.
"""

from __future__ import annotations

import ctypes
import json
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_OUTPUT_CHARS = 1_000_000
MAX_SECONDS = 2.0
MAX_RANGE = 100_000


class ChatTemplateError(ValueError):
    """The chat template cannot be rendered within the limits (or is broken); safe to show."""


class _Abandoned(BaseException):
    """Raised asynchronously inside a render that ran past its deadline."""


def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


class _LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus size and time checks on everything a template can call."""

    intercepted_binops = frozenset({"*", "**", "+"})
    deadline_local = threading.local()

    def _check_time(self) -> None:
        deadline = getattr(self.deadline_local, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            raise ChatTemplateError(f"the chat template ran longer than {MAX_SECONDS:.0f} s")

    def _check_size(self, value: Any) -> Any:
        if _size(value) > MAX_OUTPUT_CHARS:
            raise ChatTemplateError(f"the chat template built a value over {MAX_OUTPUT_CHARS:,} characters")
        return value

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        self._check_time()
        if operator == "*":
            count = right if isinstance(right, int) else left if isinstance(left, int) else 1
            length = _size(left) or _size(right)
            if length and isinstance(count, int) and length * count > MAX_OUTPUT_CHARS:
                raise ChatTemplateError(f"the chat template built a value over {MAX_OUTPUT_CHARS:,} characters")
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 64:
            raise ChatTemplateError("the chat template raises a number to a huge power")
        return self._check_size(super().call_binop(context, operator, left, right))

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        __self._check_time()
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT_CHARS:
                raise ChatTemplateError(f"the chat template passes {arg:,} to a function; refused")
        return __self._check_size(super().call(__context, __obj, *args, **kwargs))

    def getattr(self, obj: Any, attribute: str) -> Any:
        self._check_time()
        return self._check_size(super().getattr(obj, attribute))

    def getitem(self, obj: Any, argument: Any) -> Any:
        self._check_time()
        return self._check_size(super().getitem(obj, argument))


def _limited_range(env: _LimitedEnvironment) -> Callable[..., Any]:
    def limited_range(*args: int) -> Any:
        span = range(*args)
        if len(span) > MAX_RANGE:
            raise ChatTemplateError(f"the chat template loops over range({len(span):,}); at most {MAX_RANGE:,}")
        for item in span:
            env._check_time()
            yield item
    return limited_range


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _size_checked_filter(env: _LimitedEnvironment, func: Callable[..., Any]) -> Callable[..., Any]:
    def checked(*args: Any, **kwargs: Any) -> Any:
        env._check_time()
        for arg in (*args[1:], *kwargs.values()):
            if isinstance(arg, int) and not isinstance(arg, bool) and abs(arg) > MAX_OUTPUT_CHARS:
                raise ChatTemplateError(f"the chat template passes {arg:,} to a filter; refused")
        return env._check_size(func(*args, **kwargs))
    for marker in ("jinja_pass_arg",):
        if hasattr(func, marker):
            setattr(checked, marker, getattr(func, marker))
    return checked


@lru_cache(maxsize=32)
def _compile(template: str) -> jinja2.Template:
    env = _LimitedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters = {name: _size_checked_filter(env, f) for name, f in env.filters.items()}
    env.filters["tojson"] = _size_checked_filter(env, _tojson)
    env.globals.update(raise_exception=_raise_exception, range=_limited_range(env),
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    try:
        return env.from_string(template)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the chat template does not parse: {type(exc).__name__}: {str(exc)[:200]}") from exc


def _render_here(template: jinja2.Template, context: Mapping[str, Any], deadline: float) -> str:
    _LimitedEnvironment.deadline_local.deadline = deadline
    try:
        parts: list[str] = []
        total = 0
        for chunk in template.generate(**context):
            total += len(chunk)
            if total > MAX_OUTPUT_CHARS:
                raise ChatTemplateError(f"the chat template's output is over {MAX_OUTPUT_CHARS:,} characters")
            parts.append(chunk)
        return "".join(parts)
    finally:
        _LimitedEnvironment.deadline_local.deadline = None


def render_chat_template(template: str, context: Mapping[str, Any], timeout_s: float = MAX_SECONDS) -> str:
    """Render ``template`` with ``context`` in a worker thread; errors become ChatTemplateError."""
    compiled = _compile(template)
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["text"] = _render_here(compiled, context, time.monotonic() + timeout_s)
        except _Abandoned:
            outcome["error"] = ChatTemplateError(f"the chat template ran longer than {timeout_s:.0f} s")
        except ChatTemplateError as exc:
            outcome["error"] = exc
        except (jinja2.TemplateError, RecursionError, MemoryError, ArithmeticError, TypeError, ValueError,
                LookupError, AttributeError) as exc:  # SecurityError is a TemplateError
            outcome["error"] = ChatTemplateError(f"the chat template failed: {type(exc).__name__}: "
                                                 f"{str(exc)[:200]}")

    worker = threading.Thread(target=work, name="vlmlab-chat-template", daemon=True)
    worker.start()
    worker.join(timeout_s + 0.5)
    if worker.is_alive() and worker.ident is not None:  # stuck in a loop that calls nothing we check
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(worker.ident), ctypes.py_object(_Abandoned))
        raise ChatTemplateError(f"the chat template ran longer than {timeout_s:.0f} s; abandoned")
    if "error" in outcome:
        raise outcome["error"]
    return str(outcome.get("text", ""))
