"""One display format per kind of number, used by every page, chart hover, table and export header.

Why one module: the same value must read the same everywhere (Home, Timeline, Comparison,
Attention). Fractions in [0, 1] (accuracy, exact match, pointing) are shown as percentages with
one decimal; losses and other unbounded metrics with four significant digits; sizes in decimal
units; durations in seconds or milliseconds. Missing values are an em dash, never "None"/"nan".
Plotly ``hovertemplate`` / ``texttemplate`` strings come from here too, so a chart rounds exactly
like its table.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import pandas as pd

ValueKind = Literal["fraction", "loss", "number", "seconds", "bytes", "count", "rate"]

MISSING = "—"
FRACTION_DECIMALS = 1


def _missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return not math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True


def fmt_fraction(value: float | None) -> str:
    """0.675 → ``67.5%``: accuracy-like metrics, everywhere."""
    return MISSING if _missing(value) else f"{float(value) * 100:.{FRACTION_DECIMALS}f}%"  # type: ignore[arg-type]


def fmt_number(value: float | None, significant: int = 4) -> str:
    """Losses, learning rates, grad norms: significant digits, scientific when tiny or huge."""
    if _missing(value):
        return MISSING
    number = float(value)  # type: ignore[arg-type]
    if number == 0:
        return "0"
    if 1e-3 <= abs(number) < 1e6:
        return f"{number:.{significant}g}"
    return f"{number:.{significant - 1}e}"


def fmt_seconds(value: float | None) -> str:
    """Durations: ``850 ms`` below a second, ``2.31 s`` above, ``3 min 05 s`` past a minute."""
    if _missing(value):
        return MISSING
    seconds = float(value)  # type: ignore[arg-type]
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def fmt_bytes(value: float | None) -> str:
    """Decimal sizes: ``1.5 GB``."""
    if _missing(value):
        return MISSING
    n = float(value)  # type: ignore[arg-type]
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def fmt_count(value: float | None) -> str:
    return MISSING if _missing(value) else f"{int(value):,}"  # type: ignore[arg-type]


def fmt_rate(value: float | None, unit: str = "tok/s") -> str:
    return MISSING if _missing(value) else f"{float(value):.1f} {unit}"  # type: ignore[arg-type]


def fmt_value(value: float | None, kind: ValueKind) -> str:
    """Format by kind (the metric registry says which kind a metric is)."""
    return {
        "fraction": fmt_fraction, "loss": fmt_number, "number": fmt_number, "seconds": fmt_seconds,
        "bytes": fmt_bytes, "count": fmt_count, "rate": fmt_rate,
    }[kind](value)


def plotly_format(kind: ValueKind) -> str:
    """d3-format spec matching :func:`fmt_value` for hover/text templates (``%{y:.1%}``)."""
    return {"fraction": f".{FRACTION_DECIMALS}%", "loss": ".4~g", "number": ".4~g", "seconds": ".3~s",
            "bytes": ".3~s", "count": ",d", "rate": ".1f"}[kind]


_MD_PUNCTUATION = set("\\`*_{}[]()<>#+-.!|~=:$&\"'")
# ``:name:`` in a text node is still replaced after escapes are resolved (Streamlit's ``:streamlit:`` logo,
# emoji and ``:material/…:`` icons work on the parsed text); a zero-width non-joiner after the colon breaks
# the pattern without changing what the reader sees.
_SHORTCODE = re.compile(r":(?=[\w+-][\w+/-]*:)")
# GFM autolink literals (``http://…``, ``www.…``, ``a@b.c``) are also found in the parsed text, after escapes:
# a ZWNJ inside the scheme, after ``www`` and after ``@`` keeps a URL in run text from becoming a link.
_AUTOLINK = re.compile(r"(?i)(?<=https)(?=:)|(?<=http)(?=:)|(?<=mailto)(?=:)|(?<=xmpp)(?=:)|(?<=www)(?=\.)|(?<=@)")
_ZWNJ = "\u200c"


def markdown_safe(text: object) -> str:
    """Run-derived or untrusted text (run, checkpoint, file, eval-row and metric names, model output, error
    messages) as Markdown that renders as exactly that text: the one escaper for *every* Streamlit argument
    that renders Markdown — bodies, captions, alerts, headings, widget labels, ``help`` tooltips, button,
    expander, tab and radio/pills option labels, image captions, spinner/progress/toast text.

    Every Markdown punctuation character is backslash-escaped (no image, link, HTML, code span, emphasis,
    math or ``:directive[…]`` can form), ``:shortcode:`` patterns and URL/e-mail autolink literals are broken
    with an invisible ZWNJ (both are matched on the parsed text, after escapes are resolved), a
    line's leading blanks become character references (no indented code block) and newlines become hard
    line breaks. Works per streamed chunk. Do not put the result inside a code span (backslashes show there):
    run text is never wrapped in backticks. Selectbox/multiselect options are plain text and need no escaping.
    """
    plain = _SHORTCODE.sub(":" + _ZWNJ, str(text).replace("\r\n", "\n").replace("\r", "\n"))
    plain = _AUTOLINK.sub(_ZWNJ, plain)
    escaped = "".join(f"\\{c}" if c in _MD_PUNCTUATION else c for c in plain)
    return "  \n".join(_LEADING_BLANKS.sub(_blank_references, line) for line in escaped.split("\n"))


_LEADING_BLANKS = re.compile(r"^[ \t]+")


def _blank_references(match: re.Match[str]) -> str:
    return "".join("&#9;" if c == "\t" else "&#32;" for c in match.group(0))


def plotly_text(text: object) -> str:
    """Escape text for Plotly labels, which interpret a subset of HTML (``</s>`` would vanish)."""
    return html.escape(str(text), quote=False)


def display_table(frame: pd.DataFrame, kinds: Mapping[str, ValueKind]) -> pd.DataFrame:
    """A copy of ``frame`` for showing: the ``kinds`` columns as formatted text, every other empty cell as
    :data:`MISSING` (never "None"). Exports keep the raw numbers; only what people read is rounded."""
    shown = frame.copy()
    for column, kind in kinds.items():
        if column in shown:
            shown[column] = [fmt_value(v, kind) for v in shown[column]]
    import pandas as pd

    for column in shown.columns:
        if column in kinds or pd.api.types.is_numeric_dtype(shown[column]) or pd.api.types.is_bool_dtype(shown[column]):
            continue
        if shown[column].isna().any():
            shown[column] = [MISSING if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v
                             for v in shown[column].astype(object)]
    return shown
