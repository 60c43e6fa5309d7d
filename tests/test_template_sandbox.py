"""The sandbox's static checks (``dashboard/template_sandbox.py``), rendered in this process.

These run the checks directly, without the worker process, so each refusal is seen as the sandbox's
own clear message; the hostile versions through the server's API are in tests/hostile/test_hostile_templates.py.
"""

from __future__ import annotations

import pytest

from dashboard.template_sandbox import (
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    ChatTemplateError,
    check_format_spec,
    check_percent_format,
    render_checked,
)


def render(template: str, **context) -> str:
    return render_checked(template, context, 5.0)


@pytest.mark.parametrize("fmt, values", [
    ("%0999999999d", 1), ("%.999999999f", 1.0), ("%(a)0999999999s", {"a": "x"}), ("%-1000001s", "x"),
    ("%0*d", (999_999_999, 1)), ("%.*f", (10**12, 1.0)), ("ok %s then %99999999999999999999999d", ("a", 1)),
])
def test_percent_widths_over_the_limit_are_refused(fmt, values):
    with pytest.raises(ChatTemplateError, match="characters wide"):
        check_percent_format(fmt, values)


@pytest.mark.parametrize("fmt, values", [("%s: %05d", ("a", 3)), ("%%d %s", "x"), ("%*d", (8, 1)),
                                         ("100%", ()), ("%(n)s", {"n": 10**12}), ("%.2f", 1.0)])
def test_ordinary_percent_formats_pass(fmt, values):
    check_percent_format(fmt, values)


def test_format_spec_check():
    check_format_spec(f"0>{MAX_OUTPUT_CHARS}")
    with pytest.raises(ChatTemplateError, match="characters wide"):
        check_format_spec(f"0>{MAX_OUTPUT_CHARS + 1}")


@pytest.mark.parametrize("template", [
    "{{ '%0999999999d' % 1 }}", "{{ '%0*d' % (999999999, 1) }}", "{{ '%0999999999d'|format(1) }}",
    "{{ '{:0999999999d}'.format(1) }}", "{{ '{:{}}'.format(1, '999999999') }}", "{{ '{x:>999999999}'.format_map(d) }}",
])
def test_every_way_to_format_checks_the_width_first(template):
    with pytest.raises(ChatTemplateError, match="999,999,999 characters wide"):
        render(template, d={"x": 1})


@pytest.mark.parametrize("template", [
    "{{ (((99999999999 ** 64) ** 64) ** 64) ** 8 }}", "{{ 2 ** 100001 }}", "{{ (10 ** 20000) * (10 ** 20000) }}",
    "{% set n = 10 ** 3000 %}{{ n * n * n * n * n * n * n * n * n * n * n }}",
])
def test_integers_past_the_bit_limit_are_refused_before_computing(template):
    with pytest.raises(ChatTemplateError, match=f"at most {MAX_INT_BITS:,}"):
        render(template)


def test_ordinary_arithmetic_and_formatting_still_work():
    assert render("{{ 2 ** 10 }} {{ 10 ** 20 * 3 }} {{ '%03d' % 7 }} {{ '{:>4}'.format('a') }} {{ '%s'|format('b') }}"
                  "{{ 2.5 ** 2 }} {{ 'ab' * 3 }}") == f"1024 {3 * 10**20} 007    a b6.25 ababab"


def test_markup_format_keeps_escaping():
    out = render("{{ ('<b>{}</b>'|safe).format(x) }}", x="<i>")
    assert out == "<b>&lt;i&gt;</b>"
    with pytest.raises(ChatTemplateError, match="characters wide"):
        render("{{ ('{:>999999999}'|safe).format(x) }}", x="<i>")


def test_unexpected_errors_are_messages():
    with pytest.raises(ChatTemplateError, match="ZeroDivisionError"):
        render("{{ 1 // 0 }}")
    with pytest.raises(ChatTemplateError, match="TemplateError: stop"):
        render("{{ raise_exception('stop') }}")
