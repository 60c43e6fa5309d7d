"""Jinja's sandbox with size, time and number checks: the first line of defence for chat templates.

A chat template is code the run author wrote. transformers renders it in Jinja's sandbox, which
stops attribute escapes but not ``{% set s = 'x' * 20000000000 %}`` (allocates until the server
stops answering), nested ``range(100000)`` loops (never return), ``(10 ** 64) ** 64 …`` (huge
integers computed in C) or ``'%0999999999d' % 1`` (a 1 GB string built in C). Here the same
sandbox is extended so that

* ``*``/``**`` and every function, filter and attribute result are size-checked, and integer
  ``*``/``**`` are refused before they would build a number over :data:`MAX_INT_BITS`,
* ``%`` formatting, the ``format`` filter and ``str.format`` refuse widths and precisions over
  :data:`MAX_OUTPUT_CHARS` before formatting,
* ``range`` and every call check a deadline,
* output is streamed and cut at :data:`MAX_OUTPUT_CHARS`.

These checks give clear messages, but code running in C cannot be interrupted from Python, so this
module only runs inside the worker process of :mod:`dashboard.template_worker`, which the server
kills at the deadline (and in the in-thread bench baseline). The environment mirrors
transformers' (``trim_blocks``, ``lstrip_blocks``, ``loopcontrols``, ``raise_exception``,
``strftime_now``, ``tojson``), so output is identical for normal templates.
"""

from __future__ import annotations

import json
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import lru_cache, update_wrapper
from typing import Any

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEscapeFormatter, SandboxedFormatter
from markupsafe import Markup

MAX_OUTPUT_CHARS = 1_000_000
MAX_SECONDS = 2.0
MAX_RANGE = 100_000
MAX_INT_BITS = 100_000
"""About 30,000 decimal digits: far past any number a chat template prints (Python refuses to
print more than 4,300 digits anyway), and each operation on it takes microseconds."""

# printf-style conversion: %[(key)][flags][width][.precision][length]type
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?[diouxXeEfFgGcrsa%]")
_DIGITS = re.compile(r"\d+")


class ChatTemplateError(ValueError):
    """The chat template cannot be rendered within the limits (or is broken); safe to show."""


def _size(value: object) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict)) else 0


def _too_big(digits: str) -> bool:
    return len(digits) > len(str(MAX_OUTPUT_CHARS)) or int(digits) > MAX_OUTPUT_CHARS


def _refuse_width(width: str | int) -> None:
    raise ChatTemplateError(f"the chat template formats a value {int(width):,} characters wide; "
                            f"at most {MAX_OUTPUT_CHARS:,}")


def _ints_in(values: object) -> Iterable[int]:
    items = values if isinstance(values, tuple) else (values,)
    return (v for v in items if isinstance(v, int) and not isinstance(v, bool))


def check_percent_format(fmt: str, values: object) -> None:
    """Refuse ``fmt % values`` whose width or precision (literal or ``*``) is over the output limit."""
    star = False
    for match in _PERCENT_SPEC.finditer(fmt):
        for part in match.groups():
            if part == "*":
                star = True
            elif part and _too_big(part):
                _refuse_width(part)
    if star:
        for value in _ints_in(values):
            if abs(value) > MAX_OUTPUT_CHARS:
                _refuse_width(value)


def check_format_spec(spec: str) -> None:
    """Refuse a ``str.format`` field spec (``{:0999999999d}``) with a width or precision over the limit."""
    for digits in _DIGITS.findall(spec):
        if _too_big(digits):
            _refuse_width(digits)


def _check_int_result(operator: str, left: Any, right: Any) -> None:
    """Refuse integer ``*``/``**`` whose result would exceed :data:`MAX_INT_BITS` (computed in C, unstoppable)."""
    if not (isinstance(left, int) and isinstance(right, int)):
        return
    if operator == "**" and right > 0:
        bits = max(1, abs(left).bit_length()) * right
    elif operator == "*":
        bits = abs(left).bit_length() + abs(right).bit_length()
    else:
        return
    if bits > MAX_INT_BITS:
        raise ChatTemplateError(f"the chat template computes a number of about {bits:,} bits "
                                f"(at most {MAX_INT_BITS:,}); refused")


class _LimitedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        check_format_spec(format_spec)
        return super().format_field(value, format_spec)


class _LimitedEscapeFormatter(_LimitedFormatter, SandboxedEscapeFormatter):
    pass


class LimitedEnvironment(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox plus size, number and time checks on everything a template can call."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    deadline_local = threading.local()

    def _check_time(self) -> None:
        deadline = getattr(self.deadline_local, "deadline", None)
        if deadline is not None and time.monotonic() > deadline:
            seconds = getattr(self.deadline_local, "seconds", MAX_SECONDS)
            raise ChatTemplateError(f"the chat template ran longer than {seconds:g} s")

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
        if operator == "%" and isinstance(left, str):
            check_percent_format(left, right)
        _check_int_result(operator, left, right)
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

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's ``str.format`` wrapper, with a formatter that checks each field's width first."""
        if not (isinstance(value, (types.MethodType, types.BuiltinMethodType))
                and value.__name__ in ("format", "format_map") and isinstance(value.__self__, str)):
            return None
        f_self: str = value.__self__
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter = (_LimitedEscapeFormatter(self, escape=f_self.escape)
                                         if isinstance(f_self, Markup) else _LimitedFormatter(self))

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                return type(f_self)(formatter.vformat(f_self, (), args[0]))
            return type(f_self)(formatter.vformat(f_self, args, kwargs))

        return update_wrapper(wrapper, value)


def _limited_range(env: LimitedEnvironment) -> Callable[..., Any]:
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


def _size_checked_filter(env: LimitedEnvironment, func: Callable[..., Any]) -> Callable[..., Any]:
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


def _checked_format_filter(func: Callable[..., str]) -> Callable[..., str]:
    """The ``format`` filter is ``value % args``: the same width check as the ``%`` operator."""
    def format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
        if isinstance(value, str):
            check_percent_format(value, tuple(args))
        return func(value, *args, **kwargs)
    return format_filter


@lru_cache(maxsize=32)
def compile_template(template: str) -> jinja2.Template:
    """The template compiled in a :class:`LimitedEnvironment` (cached: a warm worker skips the parse)."""
    env = LimitedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["format"] = _checked_format_filter(env.filters["format"])
    env.filters = {name: _size_checked_filter(env, f) for name, f in env.filters.items()}
    env.filters["tojson"] = _size_checked_filter(env, _tojson)
    env.globals.update(raise_exception=_raise_exception, range=_limited_range(env),
                       strftime_now=lambda fmt: datetime.now().strftime(fmt))
    try:
        return env.from_string(template)
    except jinja2.TemplateError as exc:
        raise ChatTemplateError(f"the chat template does not parse: {type(exc).__name__}: {str(exc)[:200]}") from exc


def render_compiled(template: jinja2.Template, context: Mapping[str, Any], timeout_s: float) -> str:
    """Render in this thread with the deadline checks armed; output streamed and cut at the limit."""
    LimitedEnvironment.deadline_local.deadline = time.monotonic() + timeout_s
    LimitedEnvironment.deadline_local.seconds = timeout_s
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
        LimitedEnvironment.deadline_local.deadline = None


def render_checked(template: str, context: Mapping[str, Any], timeout_s: float) -> str:
    """Compile and render; every failure a template can cause becomes a :class:`ChatTemplateError`.

    MemoryError is left to the caller: after it the worker process is replaced, not reused.
    """
    try:
        return render_compiled(compile_template(template), context, timeout_s)
    except ChatTemplateError:
        raise
    except MemoryError:
        raise
    except Exception as exc:  # SecurityError/TemplateError, RecursionError, TypeError…: all template-made
        raise ChatTemplateError(f"the chat template failed: {type(exc).__name__}: {str(exc)[:200]}") from exc


__all__ = ["MAX_INT_BITS", "MAX_OUTPUT_CHARS", "MAX_RANGE", "MAX_SECONDS", "ChatTemplateError", "LimitedEnvironment",
           "check_format_spec", "check_percent_format", "compile_template", "render_checked", "render_compiled"]
