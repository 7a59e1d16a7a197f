"""report.html: one self-contained page (inline CSS, PNGs as data URIs, no JavaScript, nothing
fetched from the network). Every value that comes from a run folder passes through `esc`."""

from __future__ import annotations

import base64
import html
import math
import shlex
from pathlib import Path

import pandas as pd

from profiler.report.headline import Headline, PointRef
from profiler.runread import flag, numeric

NOT_MEASURED = "not measured"

CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#1d232a;line-height:1.4;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 10px;border-bottom:1px solid #d8dee4;padding-bottom:4px}
.sub{color:#57606a;margin:0 0 18px;font-size:14px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 300px;border:1px solid #d0d7de;border-radius:8px;padding:12px 14px;background:#f6f8fa}
.card .k{font-size:13px;color:#57606a;text-transform:uppercase;letter-spacing:.03em}
.card .v{font-size:26px;font-weight:600;margin:4px 0}
.card .d{font-size:13px;color:#333}
.warn{border:1px solid #d4a72c;background:#fff8c5;border-radius:8px;padding:10px 14px}
.warn li{margin:2px 0}
table{border-collapse:collapse;font-size:13px;width:100%}
.tw{overflow-x:auto}
th,td{border:1px solid #d0d7de;padding:4px 6px;text-align:right;white-space:nowrap}
th{background:#f6f8fa;white-space:normal;vertical-align:bottom}td.l,th.l{text-align:left;white-space:normal}
tr.untrusted td{background:#fff8c5}
.plots{display:flex;flex-wrap:wrap;gap:14px}
figure{margin:0;flex:1 1 520px;max-width:calc(50% - 7px)}figure.wide{flex-basis:100%;max-width:100%}
@media (max-width:900px){figure{max-width:100%}}figure img{max-width:100%;height:auto;border:1px solid #eaeef2}
figcaption{font-size:13px;color:#57606a}
.nm{color:#8c959f;font-style:italic}
dl{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;font-size:13px}dt{font-weight:600}dd{margin:0}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:12px;word-break:break-all}
"""


def esc(v: object) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def is_num(v: object) -> bool:
    try:
        return math.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def fmt_num(v: object, spec: str = "{:,.0f}") -> str:
    """Formatted number, or "not measured" for NaN/missing (escaped, ready for HTML)."""
    if isinstance(v, bool) or not is_num(v):
        return f'<span class="nm">{NOT_MEASURED}</span>'
    return esc(spec.format(float(v)))


def fmt_tput(v: object) -> str:
    return fmt_num(v, "{:,.0f}")


def fmt_usd(v: object) -> str:
    if not is_num(v):
        return fmt_num(v)
    f = float(v)
    return esc(f"${f:,.2f}" if f >= 1 else f"${f:.4g}")


def load_phrase(ref: PointRef) -> str:
    return f"{'rate' if ref.mode == 'rate' else 'concurrency'} {ref.load:g}" + (" req/s" if ref.mode == "rate" else "")


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _card(key: str, value: str, detail: str) -> str:
    return f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{value}</div><div class="d">{detail}</div></div>'


def headline_cards(h: Headline) -> str:
    cards = []
    if h.max_throughput is None:
        cards.append(_card("Max output throughput", fmt_num(None), "no point measured output tokens"))
    else:
        r = h.max_throughput
        note = "" if r.trusted else f" — <b>untrusted</b>: {esc(r.trust_reason)}"
        cards.append(_card("Max output throughput", f'<span id="max-tput">{fmt_tput(r.output_tok_per_s)}</span> tok/s',
                           f"at {esc(load_phrase(r))} (point {r.point}){note}"))
    if not h.slo_text:
        cards.append(_card("Highest load meeting the SLOs", '<span class="nm">no SLO given</span>',
                           "run the sweep with --slo, e.g. ttft_p99=500ms"))
    elif h.best_slo is None:
        cards.append(_card("Highest load meeting the SLOs", "none", f"no point met {esc(h.slo_text)}"))
    else:
        r = h.best_slo
        cost = fmt_usd(r.usd_per_1m_output)
        if h.hosted:
            lo = min(x.usd_per_1m_output for x in h.hosted)
            hi = max(x.usd_per_1m_output for x in h.hosted)
            rng = fmt_usd(lo) if lo == hi else f"{fmt_usd(lo)}–{fmt_usd(hi)}"
            hosted = f"hosted APIs for the same model: {rng} per 1M output tokens ({esc(h.hosted_as_of)})"
        else:
            hosted = 'hosted price: <span class="nm">unknown for this model</span>'
        cards.append(_card("Highest load meeting the SLOs", f'<span id="slo-load">{esc(load_phrase(r))}</span>',
                           f"{esc(h.slo_text)}: <b>{fmt_tput(r.output_tok_per_s)}</b> output tok/s, "
                           f"<b>{cost}</b> per 1M output tokens; {hosted}"))
    j = [r for r in (h.best_slo, h.max_throughput) if r is not None]
    if j and is_num(j[0].j_per_output_token):
        cards.append(_card("Energy", f"{fmt_num(j[0].j_per_output_token, '{:.3g}')} J/output token",
                           f"at {esc(load_phrase(j[0]))}"))
    else:
        cards.append(_card("Energy", fmt_num(None), "J per output token needs GPU power telemetry"))
    return f'<div class="cards">{"".join(cards)}</div>'


TABLE_COLUMNS = [
    ("point", "pt", "{:.0f}"), ("load", "load", "{:g}"), ("requests", "req", "{:.0f}"),
    ("req_per_s", "req/s", "{:.2f}"), ("output_tok_per_s", "out tok/s", "{:,.0f}"),
    ("goodput_tok_per_s", "goodput tok/s", "{:,.0f}"),
    ("ttft_p50_ms", "TTFT p50 ms", "{:.1f}"), ("ttft_p99_ms", "TTFT p99 ms", "{:.1f}"),
    ("itl_p50_ms", "ITL p50 ms", "{:.2f}"), ("itl_p99_ms", "ITL p99 ms", "{:.2f}"),
    ("tpot_p50_ms", "TPOT p50 ms", "{:.2f}"), ("e2e_p99_ms", "E2E p99 ms", "{:,.0f}"),
    ("errors", "err", "{:.0f}"), ("slo_met", "SLO met", "{}"),
    ("power_mean_w", "power W", "{:.0f}"), ("j_per_output_token", "J/out tok", "{:.3g}"),
    ("gpu_util_mean", "GPU util", "{:.0%}"), ("kv_cache_usage_max", "KV max", "{:.0%}"),
    ("usd_per_1m_output", "$/1M out", "{:.4g}"), ("trusted", "trusted", "{}"),
]


def _cell(v: object, spec: str) -> str:
    if spec == "{}":
        return esc("" if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    if not is_num(v):
        return ""
    try:
        return esc(spec.format(float(v)))
    except (ValueError, TypeError):
        return esc(v)


def points_table(points: pd.DataFrame) -> str:
    if not len(points):
        return f'<p class="nm">{NOT_MEASURED}: the run has no finished point</p>'
    cols = [(c, h, f) for c, h, f in TABLE_COLUMNS if c in points.columns
            and not (points[c].isna().all() or (points[c].astype(str).str.strip() == "").all())]
    missing = [h for c, h, _ in TABLE_COLUMNS if (c, h) not in {(x, y) for x, y, _ in cols}]
    head = "".join(f"<th>{esc(h)}</th>" for _, h, _ in cols)
    body = []
    for (_, row), trusted in zip(points.iterrows(), flag(points, "trusted", True), strict=True):
        cells = "".join(f"<td>{_cell(row[c], f)}</td>" for c, _, f in cols)
        body.append(f'<tr{"" if trusted else " class=untrusted"}>{cells}</tr>')
    note = (f'<p class="nm">{NOT_MEASURED}: {esc(", ".join(missing))}</p>' if missing else "")
    return f"<div class=tw><table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>{note}"


def trust_warnings(points: pd.DataFrame) -> str:
    if "trusted" not in points.columns:
        return ""
    bad = points[~flag(points, "trusted", True)]
    if not len(bad):
        return '<p>Every point passed the trust checks (client CPU, timestamp lag, open-loop rate).</p>'
    items = []
    for _, r in bad.iterrows():
        reason = r.get("trust_reason", "")
        load = f"{float(r['load']):g}" if is_num(r.get("load")) else str(r.get("load", ""))
        items.append(f"<li>point {esc(r['point'])} ({esc(r.get('mode', ''))} {esc(load)}): "
                     f"{esc(reason if pd.notna(reason) else '')}</li>")
    items = "".join(items)
    return (f'<div class="warn"><b>{len(bad)} of {len(points)} points are untrusted</b> — the load generator, '
            f"not the server, may have limited what they measured:<ul>{items}</ul></div>")


PLOT_CAPTIONS = [
    ("ttft_vs_throughput", "TTFT p50/p99 vs output throughput"),
    ("itl_vs_throughput", "ITL (per chunk) p50/p99 vs output throughput"),
    ("throughput_vs_load", "Throughput and goodput vs load"),
    ("cost_vs_load", "$ per 1M output tokens vs load (hosted API prices dotted)"),
    ("telemetry", "GPU power, utilisation and KV-cache usage over time"),
    ("ttft_distribution", "TTFT distribution per point"),
]


WIDE_PLOTS = ("telemetry",)


def plots_section(pngs: dict[str, bytes], captions=PLOT_CAPTIONS) -> str:
    out, missing = [], []
    for name, caption in captions:
        if name in pngs:
            wide = " class=wide" if name in WIDE_PLOTS else ""
            out.append(f'<figure{wide}><img alt="{esc(caption)}" src="{data_uri(pngs[name])}">'
                       f"<figcaption>{esc(caption)}</figcaption></figure>")
        else:
            missing.append(caption)
    note = (f'<p class="nm">{NOT_MEASURED}: {esc("; ".join(missing))}</p>' if missing else "")
    return f'<div class="plots">{"".join(out)}</div>{note}'


def _kv(d: dict) -> str:
    return ", ".join(f"{esc(k)}={esc(v)}" for k, v in d.items() if v not in (None, "", [], {}))


def what_ran(manifest: dict, hosted_as_of: str = "") -> str:
    ep = manifest.get("endpoint") or {}
    rows = [("run", esc(manifest.get("run_id", ""))),
            ("started", esc(manifest.get("started_at", ""))), ("finished", esc(manifest.get("finished_at", "")))]
    rows.append(("endpoint", _kv({k: ep.get(k) for k in ("url", "backend", "api")})))
    rows.append(("model", esc(ep.get("model", "")) or '<span class="nm">unknown</span>'))
    gpus = manifest.get("gpus") or []
    gpu_txt = "; ".join(esc(g.get("name", g)) if isinstance(g, dict) else esc(g) for g in gpus)
    rows.append(("GPU(s)", gpu_txt or f'<span class="nm">{NOT_MEASURED}</span>'))
    if manifest.get("server"):
        rows.append(("server", _kv(manifest["server"]) if isinstance(manifest["server"], dict) else esc(manifest["server"])))
    rows.append(("versions", _kv(manifest.get("versions") or {})))
    rows.append(("host", _kv(manifest.get("host") or {})))
    spec = manifest.get("spec") or {}
    rows.append(("sweep", _kv({k: v for k, v in spec.items() if k != "slos"})))
    rows.append(("SLOs", _kv(manifest.get("slos") or {}) or "none"))
    pricing = manifest.get("pricing") or {}
    if pricing:
        keep = ("gpu", "provider", "pricing", "usd_per_gpu_hour", "energy_usd_per_kwh", "pue", "source", "as_of")
        rows.append(("prices used", _kv({k: pricing.get(k) for k in keep})))
    else:
        rows.append(("prices used", '<span class="nm">none (no cost columns)</span>'))
    if hosted_as_of:
        rows.append(("hosted prices", esc(f"snapshot {hosted_as_of}")))
    cmd = manifest.get("command")
    cmd_txt = shlex.join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd or "")
    rows.append(("command", f"<code>{esc(cmd_txt)}</code>"))
    for n in manifest.get("notices") or []:
        rows.append(("notice", esc(n)))
    return "<dl>" + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def page(title: str, subtitle: str, body: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"sub\">{subtitle}</p>{body}</body></html>\n")


def render_report(manifest: dict, points: pd.DataFrame, h: Headline, pngs: dict[str, bytes],
                  search_html: str = "", nodes_html: str = "") -> str:
    """The whole report page (pure)."""
    ep = manifest.get("endpoint") or {}
    gpus = manifest.get("gpus") or []
    gpu = gpus[0].get("name", "") if gpus and isinstance(gpus[0], dict) else ""
    sub = " · ".join(esc(x) for x in (ep.get("model", ""), gpu and f"{len(gpus)}× {gpu}", ep.get("url", ""),
                                      manifest.get("started_at", "")) if x)
    n_pts = len(points)
    mode = str(points["mode"].iloc[0]) if n_pts and "mode" in points.columns else ""
    loads = ", ".join(f"{x:g}" for x in numeric(points, "load").dropna()) if n_pts else ""
    body = [
        *(["<h2>Capacity search</h2>", search_html] if search_html else []),
        "<h2>Answers</h2>", headline_cards(h),
        f"<h2>Per point</h2><p class=\"sub\">{n_pts} points, {esc(mode)} {esc(loads)}; latencies over each point's "
        "steady window; untrusted points highlighted</p>", points_table(points),
        "<h2>Trust</h2>", trust_warnings(points),
        *(["<h2>Load per node</h2>", nodes_html] if nodes_html else []),
        *_quality(manifest, points),
        "<h2>Plots</h2>", plots_section(pngs),
        "<h2>What ran</h2>", what_ran(manifest, h.hosted_as_of),
    ]
    return page(f"inferprof report — {manifest.get('run_id', '')}", sub, "".join(body))


def _quality(manifest: dict, points: pd.DataFrame) -> list[str]:
    from profiler.quality.report import quality_section

    return quality_section(manifest, points)


def write_html(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
