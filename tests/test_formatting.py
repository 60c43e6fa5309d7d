"""One display format per kind of number."""

from __future__ import annotations

import math

from dashboard.formatting import (
    MISSING,
    fmt_bytes,
    fmt_fraction,
    fmt_number,
    fmt_seconds,
    fmt_value,
    markdown_safe,
    plotly_text,
)


def test_fraction_is_a_percentage_with_one_decimal() -> None:
    assert fmt_fraction(0.675) == "67.5%"
    assert fmt_fraction(1) == "100.0%"


def test_missing_values_never_read_none() -> None:
    for value in (None, math.nan, math.inf, "x"):
        assert fmt_fraction(value) == MISSING  # type: ignore[arg-type]
        assert fmt_number(value) == MISSING  # type: ignore[arg-type]


def test_losses_keep_significant_digits() -> None:
    assert fmt_number(0.0026) == "0.0026"
    assert fmt_number(0.00001234) == "1.234e-05"
    assert fmt_number(3.14159) == "3.142"


def test_seconds_and_bytes() -> None:
    assert fmt_seconds(0.07) == "70 ms"
    assert fmt_seconds(2.314) == "2.31 s"
    assert fmt_seconds(185) == "3 min 05 s"
    assert fmt_bytes(1_500_000_000) == "1.5 GB"
    assert fmt_value(0.5, "fraction") == "50.0%"


def test_plotly_text_keeps_special_tokens_visible() -> None:
    assert plotly_text("</s>") == "&lt;/s&gt;"


def test_markdown_safe_shows_text_literally():
    assert markdown_safe("**bold** <b>x</b> [a](b)") == r"\*\*bold\*\* \<b\>x\</b\> \[a\]\(b\)"
    assert markdown_safe("a\nb") == "a  \nb"  # keeps the line break


def test_display_table_never_shows_none() -> None:
    import pandas as pd

    from dashboard.formatting import display_table

    frame = pd.DataFrame({"ckpt": ["a", "b"], "output": ["yes", None], "exact_match": [0.675, None]})
    shown = display_table(frame, {"exact_match": "fraction"})
    assert list(shown["exact_match"]) == ["67.5%", MISSING] and list(shown["output"]) == ["yes", MISSING]
    assert frame["exact_match"].iloc[0] == 0.675  # the raw frame (for exports) is untouched
