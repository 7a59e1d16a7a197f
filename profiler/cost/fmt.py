"""Plain-text rendering of small tables (table / markdown / csv) for the cost commands."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Sequence

Column = tuple[str, str, Callable[[object], str]]  # (key, header, formatter)


def _isnum(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def money(v: object) -> str:
    """$ with 2 significant decimals below 1, 2 decimals above: 0.0042 -> 0.0042, 12.3 -> 12.30."""
    if not _isnum(v) or not math.isfinite(float(v)):  # type: ignore[arg-type]
        return "-"
    f = float(v)  # type: ignore[arg-type]
    if f == 0:
        return "0"
    if abs(f) >= 1:
        return f"{f:,.2f}"
    return f"{f:.2g}" if abs(f) < 0.01 else f"{f:.3f}"


def num(v: object, digits: int = 1) -> str:
    if not _isnum(v) or not math.isfinite(float(v)):  # type: ignore[arg-type]
        return "-"
    return f"{float(v):,.{digits}f}"  # type: ignore[arg-type]


def big(v: object) -> str:
    """1.23e9 -> 1.23B, 4.5e6 -> 4.50M."""
    if not _isnum(v) or not math.isfinite(float(v)):  # type: ignore[arg-type]
        return "-"
    f = float(v)  # type: ignore[arg-type]
    for div, suf in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(f) >= div:
            return f"{f / div:.2f}{suf}"
    return f"{f:.0f}"


def pct(v: object) -> str:
    if not _isnum(v) or not math.isfinite(float(v)):  # type: ignore[arg-type]
        return "-"
    return f"{100 * float(v):.0f}%"  # type: ignore[arg-type]


def text(v: object) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return str(v)


def render(rows: Sequence[dict], columns: Sequence[Column], style: str = "table") -> str:
    """Rows as an aligned text table, a markdown table or CSV (raw values)."""
    if style == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([c[0] for c in columns])
        for r in rows:
            w.writerow(["" if r.get(k) is None else r.get(k) for k, _, _ in columns])
        return buf.getvalue().rstrip("\n")
    cells = [[f(r.get(k)) for k, _, f in columns] for r in rows]
    heads = [h for _, h, _ in columns]
    if style == "markdown":
        out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
        out += ["| " + " | ".join(c) + " |" for c in cells]
        return "\n".join(out)
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
    out = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    out += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(out)


def to_json(obj: object) -> str:
    """JSON with NaN/inf as null."""
    def clean(o: object) -> object:
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if hasattr(o, "item"):  # numpy scalars
            return clean(o.item())  # type: ignore[union-attr]
        return o
    return json.dumps(clean(obj), indent=2)
