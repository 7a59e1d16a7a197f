"""Request traces: arrival times and token lengths to replay (../shared/reference/formats.md §2-4).

- ``azure``: CSV ``TIMESTAMP,ContextTokens,GeneratedTokens``; absolute times in either the 2023
  form (``2023-11-16 18:20:00.1234567``, 7 fraction digits, no zone: read as UTC) or the 2024
  form (``2024-05-10 00:00:01+00:00``, the fraction omitted when zero). Seven fraction digits
  are cut to six (microseconds) before ``datetime.fromisoformat``.
- ``mooncake``: JSONL ``{"timestamp": ms, "input_length", "output_length", "hash_ids": [...]}``;
  equal leading ``hash_ids`` are a shared prompt prefix of 512 tokens per block (the last block
  holds ``input_length - 512 * (len - 1)``); ``len(hash_ids)`` must be ``ceil(input_length / 512)``.
- ``burstgpt``: CSV read by header name ``Timestamp`` (s), ``Request tokens``,
  ``Response tokens`` (both the 6- and the 8-column release); rows with 0 response tokens are
  failed requests in the log and are skipped.

Times become seconds from the trace's first row. Timestamps must never decrease: a decrease is
an error naming its line (a replay cannot send back in time). Every problem with a file is a
`WorkloadError` naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from workloads.datasets import json_lines, read_text, split_source
from workloads.errors import WorkloadError

FORMATS = ("azure", "mooncake", "burstgpt")
MOONCAKE_BLOCK = 512  # tokens per hash id (Mooncake FAST'25 README)


@dataclass(frozen=True, slots=True)
class TraceRow:
    line: int
    t_s: float  # seconds from the first row
    input_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...] = ()  # Mooncake prefix blocks; () = no shared prefix known


def load_trace(source: str) -> tuple[str, list[TraceRow]]:
    """Read ``FILE[:format]``; the format is guessed from the header when not given."""
    path, fmt = split_source(source, FORMATS)
    text = read_text(path)
    fmt = fmt or _guess(path, text)
    rows = {"azure": _azure, "mooncake": _mooncake, "burstgpt": _burstgpt}[fmt](path, text)
    if not rows:
        raise WorkloadError(f"{path}: no requests in the trace ({fmt})")
    _check_monotonic(path, rows)
    t0 = rows[0].t_s
    return path, [TraceRow(r.line, r.t_s - t0, r.input_tokens, r.output_tokens, r.hash_ids) for r in rows]


def _guess(path: str, text: str) -> str:
    head = text.lstrip().split("\n", 1)[0]
    if head.startswith("{"):
        return "mooncake"
    if "ContextTokens" in head or head.startswith("TIMESTAMP"):
        return "azure"
    if "Request tokens" in head or head.startswith("Timestamp"):
        return "burstgpt"
    raise WorkloadError(f"{path}: line 1: not a known trace format (give FILE:{'|'.join(FORMATS)})")


def _check_monotonic(path: str, rows: list[TraceRow]) -> None:
    for a, b in zip(rows, rows[1:], strict=False):
        if b.t_s < a.t_s:
            raise WorkloadError(f"{path}: line {b.line}: timestamp goes back in time "
                                f"({b.t_s - a.t_s:+.6g} s after line {a.line}); a trace must be sorted by time")


def _int(where: str, value, name: str, minimum: int = 0) -> int:
    try:
        v = int(str(value).strip()) if not isinstance(value, int) or isinstance(value, bool) else value
    except ValueError:
        raise WorkloadError(f"{where}: {name} {value!r} is not a whole number") from None
    if isinstance(value, bool) or v < minimum:
        raise WorkloadError(f"{where}: {name} must be >= {minimum}, got {value!r}")
    return v


def _csv_rows(path: str, text: str, need: tuple[str, ...]):
    reader = csv.DictReader(io.StringIO(text))
    fields = [f.strip() for f in reader.fieldnames or []]
    missing = [c for c in need if c not in fields]
    if missing:
        raise WorkloadError(f"{path}: line 1: missing column(s) {', '.join(missing)} (header: {','.join(fields)})")
    reader.fieldnames = fields
    for row in reader:
        where = f"{path}: line {reader.line_num}"
        if None in row or any(row.get(c) is None for c in need):
            raise WorkloadError(f"{where}: expected {len(fields)} comma-separated fields")
        yield reader.line_num, where, row


def parse_azure_time(text: str) -> float:
    """Seconds since the epoch of an Azure trace TIMESTAMP (naive = UTC)."""
    s = text.strip()
    date, _, rest = s.partition(".")
    if rest:  # cut the fraction to 6 digits, keeping any zone after it
        digits = len(rest) - len(rest.lstrip("0123456789"))
        s = f"{date}.{rest[:min(digits, 6)]}{rest[digits:]}"
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return t.timestamp()


def _azure(path: str, text: str) -> list[TraceRow]:
    out = []
    for line, where, row in _csv_rows(path, text, ("TIMESTAMP", "ContextTokens", "GeneratedTokens")):
        try:
            t = parse_azure_time(row["TIMESTAMP"])
        except ValueError:
            raise WorkloadError(f"{where}: TIMESTAMP {row['TIMESTAMP']!r} is not a date and time") from None
        out.append(TraceRow(line, t, _int(where, row["ContextTokens"], "ContextTokens", 1),
                            max(1, _int(where, row["GeneratedTokens"], "GeneratedTokens"))))
    return out


def _burstgpt(path: str, text: str) -> list[TraceRow]:
    out = []
    for line, where, row in _csv_rows(path, text, ("Timestamp", "Request tokens", "Response tokens")):
        try:
            t = float(row["Timestamp"])
        except ValueError:
            raise WorkloadError(f"{where}: Timestamp {row['Timestamp']!r} is not a number") from None
        if not math.isfinite(t):
            raise WorkloadError(f"{where}: Timestamp {row['Timestamp']!r} is not finite")
        n_in = _int(where, row["Request tokens"], "Request tokens", 1)
        n_out = _int(where, row["Response tokens"], "Response tokens")
        if n_out > 0:  # 0 = a failed request in the log
            out.append(TraceRow(line, t, n_in, n_out))
    return out


def _mooncake(path: str, text: str) -> list[TraceRow]:
    out = []
    for line, where, obj in json_lines(path, text):
        if not isinstance(obj, dict) or any(k not in obj for k in ("timestamp", "input_length", "output_length")):
            raise WorkloadError(f"{where}: needs 'timestamp', 'input_length' and 'output_length'")
        ts = obj["timestamp"]
        if not isinstance(ts, (int, float)) or isinstance(ts, bool) or not math.isfinite(ts):
            raise WorkloadError(f"{where}: 'timestamp' must be a number of milliseconds, got {ts!r}")
        n_in = _int(where, obj["input_length"], "input_length", 1)
        ids = _hash_ids(where, obj.get("hash_ids"), n_in)
        out.append(TraceRow(line, ts / 1000.0, n_in, max(1, _int(where, obj["output_length"], "output_length")), ids))
    return out


def _hash_ids(where: str, ids, n_in: int) -> tuple[int, ...]:
    if ids is None or ids == []:
        return ()
    if not isinstance(ids, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in ids):
        raise WorkloadError(f"{where}: 'hash_ids' must be a list of integers >= 0")
    if len(ids) != math.ceil(n_in / MOONCAKE_BLOCK):
        raise WorkloadError(f"{where}: {len(ids)} hash_ids for input_length {n_in}: expected "
                            f"ceil({n_in}/{MOONCAKE_BLOCK}) = {math.ceil(n_in / MOONCAKE_BLOCK)}")
    return tuple(ids)


def parse_window(text: str) -> tuple[float, float]:
    """'60,120' -> (60.0, 120.0): seconds of trace time, start included, end excluded."""
    parts = [p.strip() for p in text.split(",")]
    try:
        start, end = float(parts[0]), float(parts[1]) if len(parts) == 2 else math.nan
    except (ValueError, IndexError):
        start = end = math.nan
    if len(parts) != 2 or not (0 <= start < end):
        raise WorkloadError(f"invalid trace window {text!r}: use START,END seconds with 0 <= START < END")
    return start, end


def window(rows: list[TraceRow], span: tuple[float, float] | None, limit: int = 0) -> list[TraceRow]:
    """The rows with start <= t < end (all rows without a window), at most `limit` (0 = all),
    re-timed from the first kept row."""
    kept = [r for r in rows if span is None or span[0] <= r.t_s < span[1]]
    if limit:
        kept = kept[:limit]
    if not kept:
        raise WorkloadError(f"the trace has no request in the window {span[0]:g}-{span[1]:g} s" if span
                            else "the trace has no request")
    t0 = kept[0].t_s
    return [TraceRow(r.line, r.t_s - t0, r.input_tokens, r.output_tokens, r.hash_ids) for r in kept]


def mean_rate(rows: list[TraceRow]) -> float:
    """Arrivals per second at speed 1: (n - 1) / (last - first), the same form as points.csv's
    achieved rate, so a faithful replay at speed s achieves s times this."""
    span = rows[-1].t_s - rows[0].t_s
    if len(rows) < 2 or span <= 0:
        raise WorkloadError("a trace replay needs at least two requests at different times")
    return (len(rows) - 1) / span
