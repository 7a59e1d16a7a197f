"""The GPU check's summary: per-point figures, pass/fail checks, summary.json and summary.md."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

# (points column, markdown header); the cost report's points hold points.csv plus cost and SoL columns
POINT_FIGURES = [
    ("load", "concurrency"), ("ok", "ok"), ("errors", "err"), ("output_tok_per_s", "out tok/s"),
    ("ttft_p50_ms", "TTFT p50 ms"), ("tpot_p50_ms", "TPOT p50 ms"), ("power_mean_w", "power W"),
    ("energy_j", "energy J"), ("energy_source", "energy from"), ("j_per_output_token", "J/out tok"),
    ("gpu_util_mean", "GPU util"), ("mem_used_peak_mib", "mem peak MiB"), ("kv_cache_usage_mean", "KV use"),
    ("queue_depth_mean", "queue"), ("usd_per_gpu_hour", "$/GPU-h"), ("usd_per_1m_output", "$/1M out"),
    ("sol_output_tok_per_s", "SoL tok/s"), ("sol_fraction", "of SoL"),
]


def _num(v: object) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan
    return f


def _finite(v: object) -> bool:
    return math.isfinite(_num(v))


def points_table(cost: dict) -> list[dict]:
    """One row per sweep point with POINT_FIGURES' columns (None where the run has no value)."""
    rows = []
    for p in cost.get("points", []):
        row = {}
        for key, _ in POINT_FIGURES:
            v = p.get(key)
            row[key] = None if isinstance(v, float) and math.isnan(v) else v
        rows.append(row)
    return rows


def server_checks(summary: dict, points: list[dict], report: Path) -> list[dict]:
    """What the server stage must show; GPU figures are required only where a GPU was measured."""
    srv = summary.get("server") or {}
    wanted = len((srv.get("concurrencies") or "").split(",")) if srv.get("concurrencies") else None
    checks = [
        {"name": "points_written", "ok": bool(points) and (wanted is None or len(points) == wanted),
         "detail": f"{len(points)} points"},
        {"name": "every_point_served", "ok": bool(points) and all(_num(p["ok"]) > 0 and _num(p["errors"]) == 0
                                                                  for p in points),
         "detail": ", ".join(f"{p['ok']} ok/{p['errors']} err" for p in points)},
        {"name": "report_html", "ok": report.is_file(), "detail": str(report)},
    ]
    priced = summary["mode"] == "gpu" or summary.get("assumed_gpu")
    if priced:
        checks.append({"name": "usd_per_1m_output", "ok": bool(points) and all(_finite(p["usd_per_1m_output"])
                                                                               for p in points),
                       "detail": ", ".join(f"{_num(p['usd_per_1m_output']):.2f}" for p in points)})
        checks.append({"name": "sol_fraction_in_0..1", "ok": bool(points) and all(0 < _num(p["sol_fraction"]) < 1
                                                                                  for p in points),
                       "detail": ", ".join(f"{_num(p['sol_fraction']):.3g}" for p in points)})
    if summary["mode"] == "gpu":
        for key in ("power_mean_w", "j_per_output_token", "gpu_util_mean"):
            checks.append({"name": key, "ok": bool(points) and all(_finite(p[key]) for p in points),
                           "detail": ", ".join(f"{_num(p[key]):.4g}" for p in points)})
    return checks


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def markdown(summary: dict) -> str:
    """summary.md: what ran, the telemetry figures, the per-point table, every check."""
    lines = [f"# inferprof GPU check ({summary['mode']} mode)", "",
             f"started {summary['started_at']}, wall {summary.get('wall_s')} s; exit {summary.get('exit')}", ""]
    if summary.get("assumed_gpu"):
        lines += [f"Cost and speed-of-light figures ASSUME a {summary['assumed_gpu']} (CPU run).", ""]
    tel = summary.get("telemetry") or {}
    lines += ["## Telemetry truth", ""]
    if tel.get("phases"):
        g = tel["gpu"]
        lines += [f"GPU: {g['name']} (driver {g['driver']}) -> `{g['canonical']}`, "
                  f"${g['usd_per_gpu_hour']}/GPU-hour ({g['price_source']}), spec {g['spec']}", "",
                  "| phase | s | busy | power W | util | mem MiB | SM MHz | mem MHz | temp C | reasons | TFLOP/s |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in tel["phases"]:
            lines.append("| " + " | ".join(_fmt(r.get(k)) for k in (
                "phase", "seconds", "busy_frac", "power_mean_w", "gpu_util_mean", "mem_used_mib_mean",
                "sm_clock_mhz_mean", "mem_clock_mhz_mean", "temp_c_mean", "clock_event_reasons", "tflops")) + " |")
        e = tel["energy"]
        lines += ["", f"Energy over {e['seconds']:.1f} s: counter {_fmt(e['counter_j'])} J, integral of sampled "
                  f"power {_fmt(e['integral_j'])} J, relative difference {_fmt(e['relative_difference'])}", ""]
    else:
        lines += [f"skipped: {tel.get('skipped') or tel.get('error')} ({tel.get('notice', '')})", ""]
    srv = summary.get("server") or {}
    lines += ["## Server end to end", "", f"stack: {json.dumps(srv.get('stack'))}", "",
              f"model: {json.dumps(srv.get('model'))}; server healthy after {srv.get('server_start_s')} s", ""]
    pts = summary.get("points") or []
    if pts:
        lines += ["| " + " | ".join(h for _, h in POINT_FIGURES) + " |", "|" + "---|" * len(POINT_FIGURES)]
        lines += ["| " + " | ".join(_fmt(p[k]) for k, _ in POINT_FIGURES) + " |" for p in pts]
    lines += ["", "## Checks", ""]
    lines += [f"- {'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}" for c in summary.get("checks", [])]
    lines += [f"- ERROR {e}" for e in summary.get("errors", [])]
    return "\n".join(lines) + "\n"


def _clean(v: object) -> object:
    """JSON without NaN (strict readers reject it)."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_clean(x) for x in v]
    return v


def finish(summary: dict, out: Path, log: Callable[[str], None], bundle: Callable[[Path, str | None], None]) -> int:
    """Checks, summary.json/.md, copies and bundle; the exit code (0 ok, 3 a check failed, 1 broke)."""
    srv = summary.get("server") or {}
    summary["points"] = points_table(srv.get("cost") or {})
    run_dir = srv.get("run_dir")
    checks = list((summary.get("telemetry") or {}).get("checks") or [])
    if run_dir:
        checks += server_checks(summary, summary["points"], Path(run_dir) / "report.html")
    summary["checks"] = checks
    summary["exit"] = 1 if summary["errors"] else (3 if any(not c["ok"] for c in checks) else 0)
    if srv.get("cost"):
        srv["cost"] = {k: v for k, v in srv["cost"].items() if k != "points"}  # the table holds them
    (out / "summary.json").write_text(json.dumps(_clean(summary), indent=2, default=str) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    bundle(out, run_dir)
    for c in checks:
        log(f"{'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
    for e in summary["errors"]:
        log(f"ERROR {e}")
    log(f"summary: {out / 'summary.md'} (exit {summary['exit']})")
    return summary["exit"]
