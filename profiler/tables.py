"""Print a table as a rich table, JSON, CSV or Markdown (the `--format` of every command)."""

from __future__ import annotations

import json
import math
import sys

import pandas as pd
from rich.console import Console
from rich.table import Table

FORMATS = ("table", "json", "csv", "markdown")

# (column, header, format) for the per-point summary; columns missing from a run are skipped.
SUMMARY = [
    ("point", "pt", "{:.0f}"), ("load", "load", "{:g}"), ("req_per_s", "req/s", "{:.2f}"),
    ("output_tok_per_s", "out tok/s", "{:.0f}"), ("ttft_p50_ms", "TTFT p50 ms", "{:.1f}"),
    ("ttft_p99_ms", "TTFT p99 ms", "{:.1f}"), ("itl_p50_ms", "ITL p50 ms", "{:.2f}"),
    ("itl_p99_ms", "ITL p99 ms", "{:.2f}"), ("tpot_p50_ms", "TPOT p50 ms", "{:.2f}"),
    ("e2e_p50_ms", "E2E p50 ms", "{:.0f}"), ("tokens_per_chunk_mean", "tok/chunk", "{:.2f}"),
    ("errors", "err", "{:.0f}"), ("goodput_req_per_s", "goodput/s", "{:.2f}"), ("slo_met", "SLO", "{}"),
    ("power_mean_w", "W", "{:.0f}"), ("j_per_output_token", "J/tok", "{:.3f}"),
    ("usd_per_1m_output", "$/1M out", "{:.3f}"), ("trusted", "trusted", "{}"),
]


def _fmt(value, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (bool,)) or spec == "{}":
        return str(value)
    try:
        return spec.format(value)
    except (ValueError, TypeError):
        return str(value)


def to_records(df: pd.DataFrame) -> list[dict]:
    """JSON-safe rows (NaN → None)."""
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append({k: (None if isinstance(v, float) and math.isnan(v) else (v.item() if hasattr(v, "item") else v))
                     for k, v in rec.items()})
    return rows


def print_table(df: pd.DataFrame, fmt: str = "table", columns=None, title: str = "",
                console: Console | None = None, file=None) -> None:
    file = file or sys.stdout
    columns = columns or [(c, c, "{:.4g}") for c in df.columns]
    present = [(c, h, f) for c, h, f in columns if c in df.columns and not _all_empty(df[c])]
    if fmt == "json":
        file.write(json.dumps(to_records(df[[c for c, _, _ in present]]), indent=2) + "\n")
    elif fmt == "csv":
        df[[c for c, _, _ in present]].to_csv(file, index=False, float_format="%.6g")
    elif fmt == "markdown":
        file.write("| " + " | ".join(h for _, h, _ in present) + " |\n")
        file.write("|" + "---|" * len(present) + "\n")
        for _, row in df.iterrows():
            file.write("| " + " | ".join(_fmt(row[c], f) for c, _, f in present) + " |\n")
    else:
        table = Table(title=title or None)
        for _, h, _ in present:
            table.add_column(h, justify="right")
        for _, row in df.iterrows():
            style = "" if row.get("trusted", True) in (True, "True", "") else "yellow"
            table.add_row(*(_fmt(row[c], f) for c, _, f in present), style=style)
        (console or Console(file=file)).print(table)
        if "trusted" in df.columns:
            for _, row in df.iterrows():
                if row.get("trust_reason"):
                    (console or Console(file=file)).print(
                        f"[yellow]point {row['point']:.0f} untrustworthy:[/] {row['trust_reason']}")


def _all_empty(s: pd.Series) -> bool:
    return bool(s.isna().all()) or bool((s.astype(str) == "").all())
