"""CSV, one row at a time straight to a file: memory does not grow with rows."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(v: Any) -> Any:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, str) and v[:1] in _FORMULA:
        # Spreadsheet formula injection: a text cell never starts a formula.
        return "'" + v
    return "" if v is None else v


def write_csv(path: Path, cols: tuple[str, ...], rows: Iterable[dict[str, Any]]) -> int:
    n = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([_cell(r.get(c)) for c in cols])
            n += 1
    return n
