"""The report's figures (matplotlib, Agg). Every `fig_*` function is pure: it takes tables and
returns a Figure, or None when the run has nothing to draw for it (the HTML then says
"not measured"). `write_plots` saves the ones that exist as PNG files in RUN_DIR/plots/.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from profiler.report.samples import PointSamples  # noqa: E402
from profiler.runread import numeric  # noqa: E402

DPI = 100
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
TELEMETRY_PANELS = (("power_w", "GPU power (W)", 1.0), ("gpu_util", "GPU utilisation (%)", 100.0),
                    ("kv_cache_usage", "KV-cache usage (%)", 100.0))


@dataclass(frozen=True)
class HostedLine:
    """A hosted API's list price per 1M output tokens, drawn as a horizontal line."""

    label: str
    usd_per_1m_output: float


def load_label(mode: object) -> str:
    return "request rate (req/s)" if str(mode) == "rate" else "concurrency"


def _mode(points: pd.DataFrame) -> str:
    return str(points["mode"].iloc[0]) if "mode" in points.columns and len(points) else "concurrency"


def _figure(w: float = 8.0, h: float = 4.8) -> Figure:
    # Figure() instead of plt.figure(): no global pyplot state, nothing to close
    return Figure(figsize=(w, h), dpi=DPI, layout="constrained")


def _annotate_loads(ax, x: pd.Series, y: pd.Series, loads: pd.Series) -> None:
    for xi, yi, li in zip(x, y, loads, strict=True):
        if math.isfinite(xi) and math.isfinite(yi):
            ax.annotate(f"{li:g}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)


def fig_serving_curve(points: pd.DataFrame, metric: str) -> Figure | None:
    """`metric` ("ttft" or "itl") p50 and p99 against output tokens/s, one marker per point,
    labelled with its load: the classic latency-throughput curve."""
    x = numeric(points, "output_tok_per_s")
    fig = _figure()
    ax = fig.add_subplot()
    drawn = 0
    order = np.argsort(numeric(points, "load").to_numpy())
    for stat, color in (("p50", COLORS[0]), ("p99", COLORS[1])):
        y = numeric(points, f"{metric}_{stat}_ms")
        ok = (x.notna() & y.notna()).to_numpy()[order]
        idx = points.index[order][ok]
        if not len(idx):
            continue
        ax.plot(x[idx], y[idx], marker="o", color=color, label=f"{metric.upper()} {stat}")
        _annotate_loads(ax, x[idx], y[idx], numeric(points, "load")[idx])
        drawn += 1
    if not drawn:
        return None
    ax.set_xlabel("output throughput (tokens/s)")
    ax.set_ylabel(f"{metric.upper()} (ms)")
    ax.set_title(f"{metric.upper()} vs throughput (labels: {load_label(_mode(points))})")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def fig_throughput(points: pd.DataFrame) -> Figure | None:
    """Output tokens/s and goodput tokens/s (left), requests/s and goodput requests/s (right) vs load."""
    load = numeric(points, "load")
    series = [("output_tok_per_s", "output tokens/s", 0), ("goodput_tok_per_s", "goodput tokens/s", 0),
              ("req_per_s", "requests/s", 1), ("goodput_req_per_s", "goodput requests/s", 1)]
    present = [(c, lbl, k) for c, lbl, k in series if numeric(points, c).notna().any()]
    if not present or not load.notna().any():
        return None
    fig = _figure(10, 4.5)
    axes = fig.subplots(1, 2)
    order = np.argsort(load.to_numpy())
    for i, (c, lbl, k) in enumerate(present):
        y = numeric(points, c).to_numpy()[order]
        ok = np.isfinite(y)
        axes[k].plot(load.to_numpy()[order][ok], y[ok], marker="o", label=lbl, color=COLORS[i % len(COLORS)],
                     linestyle="--" if c.startswith("goodput") else "-")
    for k, ylabel in ((0, "tokens/s"), (1, "requests/s")):
        axes[k].set_xlabel(load_label(_mode(points)))
        axes[k].set_ylabel(ylabel)
        axes[k].grid(alpha=0.3)
        if axes[k].lines:
            axes[k].legend()
        else:
            axes[k].text(0.5, 0.5, "not measured", ha="center", va="center", transform=axes[k].transAxes)
    fig.suptitle("Throughput and goodput vs load")
    return fig


def fig_cost(points: pd.DataFrame, hosted: list[HostedLine]) -> Figure | None:
    """$/1M output tokens vs load, hosted API prices as horizontal lines. None without cost columns."""
    y = numeric(points, "usd_per_1m_output")
    load = numeric(points, "load")
    ok = (y.notna() & load.notna()).to_numpy()
    if not ok.any():
        return None
    fig = _figure()
    ax = fig.add_subplot()
    order = np.argsort(load.to_numpy()[ok])
    ax.plot(load.to_numpy()[ok][order], y.to_numpy()[ok][order], marker="o", color=COLORS[0],
            label="self-hosted (GPU time)")
    for i, h in enumerate(hosted):
        ax.axhline(h.usd_per_1m_output, color=COLORS[(i + 1) % len(COLORS)], linestyle=":", label=h.label)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"${v:g}"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FuncFormatter(_dollars_at_2_and_5))
    ax.set_xlabel(load_label(_mode(points)))
    ax.set_ylabel("$ per 1M output tokens (log scale)")
    ax.set_title("Cost per 1M output tokens vs load")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def fig_telemetry(tel: pd.DataFrame, facts: list[dict]) -> Figure | None:
    """Power, GPU utilisation and KV-cache usage over time (one panel each, those measured),
    each point's [start_ns, end_ns] shaded. None without telemetry."""
    if not len(tel) or not {"t_ns", "metric", "value"} <= set(tel.columns):
        return None
    panels = [(m, lbl, s) for m, lbl, s in TELEMETRY_PANELS if (tel["metric"] == m).any()]
    if not panels:
        return None
    spans = [(int(f["start_ns"]), int(f.get("end_ns") or 0), f) for f in facts if f.get("start_ns")]
    t0 = min([s for s, _, _ in spans] + [int(tel["t_ns"].min())])
    fig = _figure(12, 2.2 * len(panels) + 0.6)
    axes = np.atleast_1d(fig.subplots(len(panels), 1, sharex=True))
    for ax, (metric, label, scale) in zip(axes, panels, strict=True):
        rows = tel[tel["metric"] == metric]
        gpu = rows["gpu"].astype(str) if "gpu" in rows.columns else pd.Series("", index=rows.index)
        for i, (g, grp) in enumerate(rows.groupby(gpu, sort=True)):
            grp = grp.sort_values("t_ns")
            ax.plot((grp["t_ns"] - t0) / 1e9, grp["value"] * scale, color=COLORS[i % len(COLORS)],
                    linewidth=1.0, label=f"GPU {g}" if g else None)
        for j, (s, e, _f) in enumerate(spans):
            if e > s:
                ax.axvspan((s - t0) / 1e9, (e - t0) / 1e9, color="0.85" if j % 2 == 0 else "0.93", zorder=0)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines) and gpu.nunique() > 1:
            ax.legend(fontsize=8)
    top = axes[0]
    for s, e, f in spans:
        if e > s:
            top.annotate(f"{f.get('load', '')}", ((s + e) / 2 / 1e9 - t0 / 1e9, 1.0), xycoords=("data", "axes fraction"),
                         ha="center", va="bottom", fontsize=8)
    axes[-1].set_xlabel("time since the first point started (s); shaded: sweep points, labelled with their load")
    return fig


def fig_ttft_distribution(samples: dict[int, PointSamples]) -> Figure | None:
    """ECDF of per-request TTFT (ms) of each point (steady-window successful requests)."""
    series = [(p, s) for p, s in sorted(samples.items())
              if s.per_request.get("ttft") is not None and np.isfinite(s.per_request["ttft"]).any()]
    if not series:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, (_, s) in enumerate(series):
        v = np.sort(s.per_request["ttft"][np.isfinite(s.per_request["ttft"])]) * 1e3
        ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", color=COLORS[i % len(COLORS)],
                label=f"{s.load:g} (n={v.size})")
    lo = min(float(np.nanmin(s.per_request["ttft"])) for _, s in series)
    hi = max(float(np.nanmax(s.per_request["ttft"])) for _, s in series)
    if lo > 0 and hi / lo > 20:  # wide spread (e.g. queueing at high load): log scale, plain tick labels
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel("TTFT (ms, log scale)")
    else:
        ax.set_xlabel("TTFT (ms)")
    ax.set_ylabel("fraction of requests ≤ x")
    ax.set_title(f"TTFT distribution per point (legend: {load_label(series[0][1].mode)})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


def save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=DPI)
    tmp.replace(path)
    return path


PLOT_FILES = {
    "ttft_vs_throughput": "ttft_vs_throughput.png",
    "itl_vs_throughput": "itl_vs_throughput.png",
    "throughput_vs_load": "throughput_vs_load.png",
    "cost_vs_load": "cost_vs_load.png",
    "telemetry": "telemetry.png",
    "ttft_distribution": "ttft_distribution.png",
}


def build_figures(points: pd.DataFrame, tel: pd.DataFrame, facts: list[dict], samples: dict[int, PointSamples],
                  hosted: list[HostedLine]) -> dict[str, Figure | None]:
    """Every report figure by name (None: nothing to draw)."""
    makers: dict[str, Callable[[], Figure | None]] = {
        "ttft_vs_throughput": lambda: fig_serving_curve(points, "ttft"),
        "itl_vs_throughput": lambda: fig_serving_curve(points, "itl"),
        "throughput_vs_load": lambda: fig_throughput(points),
        "cost_vs_load": lambda: fig_cost(points, hosted),
        "telemetry": lambda: fig_telemetry(tel, facts),
        "ttft_distribution": lambda: fig_ttft_distribution(samples),
    }
    return {name: make() for name, make in makers.items()}


def write_figures(figures: dict[str, Figure | None], out_dir: Path) -> dict[str, Path]:
    """Save the figures that exist as out_dir/<name>.png; returns name -> path."""
    written = {}
    for name, fig in figures.items():
        if fig is not None:
            written[name] = save(fig, Path(out_dir) / PLOT_FILES.get(name, f"{name}.png"))
            plt.close(fig)  # harmless for pyplot-free figures; frees canvas memory
    return written


def write_plots(run_dir: str | Path, hosted: list[HostedLine] | None = None) -> list[Path]:
    """Read a run folder, write its plots into RUN_DIR/plots/, return the written files."""
    from profiler.report.samples import REPORT_SAMPLE_REQUESTS, run_samples
    from profiler.runread import load_run, read_telemetry

    run = load_run(run_dir)
    tel = read_telemetry(run.path)
    figs = build_figures(run.points, tel, run.facts, run_samples(run, max_requests=REPORT_SAMPLE_REQUESTS), hosted or [])
    return list(write_figures(figs, run.path / "plots").values())


def _dollars_at_2_and_5(v: float, _pos) -> str:
    """Minor log-axis labels at 2 and 5 × a power of ten only: every minor tick crowds the axis."""
    if v <= 0:
        return ""
    m = v / 10 ** math.floor(math.log10(v))
    return f"${v:g}" if min(abs(m - 2), abs(m - 5)) < 1e-6 else ""

