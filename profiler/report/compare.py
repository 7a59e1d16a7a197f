"""`inferprof compare`: the same points of several runs, their differences and whether they are real.

The first run is the baseline A; every other run is B in turn. Points match by (mode, load).
Intervals and verdicts are explained in `profiler.report.stats`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.errors import UserError
from profiler.report import stats as st
from profiler.report.samples import MAX_BOOTSTRAP_GAPS, MAX_BOOTSTRAP_REQUESTS, run_samples
from profiler.runread import Run, load_run, numeric

DEFAULT_METRICS = ("ttft_p50", "ttft_p99", "itl_p50", "itl_p99", "tpot_p50", "e2e_p99", "output_tok_per_s")
DEFAULT_LEVEL = 0.95

COMPARE_COLUMNS = ["run_a", "run_b", "mode", "load", "point_a", "point_b", "metric", "a", "b", "diff",
                   "ci_lo", "ci_hi", "verdict", "note", "n_a", "n_b"]


class CompareError(UserError):
    """Bad compare input (one line for the CLI)."""


def point_key(mode: object, load: object) -> tuple[str, float]:
    return str(mode), round(float(load), 9)


def repeat_points(df: pd.DataFrame) -> dict[tuple[str, float], list[int]]:
    """(mode, load) → its points, in order: several when the run measured each load repeatedly."""
    out: dict[tuple[str, float], list[int]] = {}
    if len(df) and {"mode", "load", "point"} <= set(df.columns):
        for _, r in df.iterrows():
            out.setdefault(point_key(r["mode"], r["load"]), []).append(int(r["point"]))
    return out


def matched_points(a: pd.DataFrame, b: pd.DataFrame) -> list[tuple[str, float, int, int]]:
    """(mode, load, point in A, point in B) for every (mode, load) both runs measured (the last
    point of a repeated load)."""
    ia, ib = repeat_points(a), repeat_points(b)
    return [(k[0], k[1], ia[k][-1], ib[k][-1]) for k in sorted(ia) if k in ib]


def _repeat_rows(base: Run, other: Run, mode: str, load: float, pa: list[int], pb: list[int],
                 opts: CompareOptions) -> list[dict]:
    """Rows of a load both runs repeated: the repeats' points.csv values, Welch's t across them."""
    rows = []
    for metric in opts.metrics:
        col = st.metric_column(metric)
        a = [_csv_value(base.points, p, col) for p in pa]
        b = [_csv_value(other.points, p, col) for p in pb]
        d = st.repeat_difference(np.array([math.nan if x is None else x for x in a]),
                                 np.array([math.nan if x is None else x for x in b]),
                                 opts.level, st.lower_is_better(metric), opts.min_effect)
        rows.append({"run_a": base.name, "run_b": other.name, "mode": mode, "load": load, "point_a": pa[0],
                     "point_b": pb[0], "metric": metric, **asdict(d), "n_a": len(pa), "n_b": len(pb)})
    return rows


@dataclass(frozen=True)
class CompareOptions:
    metrics: tuple[str, ...] = DEFAULT_METRICS
    resamples: int = st.DEFAULT_RESAMPLES
    seed: int = st.DEFAULT_SEED
    level: float = DEFAULT_LEVEL
    min_effect: float = st.DEFAULT_MIN_EFFECT


def _csv_value(points: pd.DataFrame, point: int, column: str) -> float | None:
    if column not in points.columns:
        return None
    v = numeric(points, column)[points["point"] == point]
    return float(v.iloc[0]) if len(v) and pd.notna(v.iloc[0]) else None


# Per point, larger samples are bootstrapped from a seeded subset of whole requests: the cost of
# B resamples grows with the units resampled. 2,000 requests put the interval's own sampling error
# well below the run-to-run drift it cannot see. The ITL sample is the same requests' chunk gaps
# (2,000 requests × 255 gaps at 256 tokens); only outputs of over ~300 chunks a request have fewer
# ITL requests. Its cost is a band of the sorted gaps, not all of them (profiler.report.wquantile).


def _shared(ps) -> dict | None:
    """Draws and sorts shared by the metrics of a subsampled point (its units are capped, and
    drawing B resamples per metric was most of compare's time); a smaller point draws per metric,
    so its intervals are the same numbers as before sharing existed."""
    return {} if ps is not None and ps.subsampled else None


def compare_runs(runs: list[Run], opts: CompareOptions = CompareOptions()) -> pd.DataFrame:
    """One row per (other run, matched point, metric): A, B, B − A, its interval and verdict.
    CompareError when fewer than two runs or no point matches."""
    if len(runs) < 2:
        raise CompareError("compare needs at least two run folders")
    for name in opts.metrics:
        st.parse_metric(name)
    if not 0 < opts.level < 1:
        raise CompareError("the confidence level must be between 0 and 1")
    if opts.min_effect < 0:
        raise CompareError("--min-effect must be >= 0")
    if opts.resamples < 100:
        raise CompareError("use at least 100 bootstrap resamples")
    rng = np.random.default_rng(opts.seed)
    base = runs[0]
    base_samples = run_samples(base, MAX_BOOTSTRAP_REQUESTS, MAX_BOOTSTRAP_GAPS)
    rows = []
    for other in runs[1:]:
        pairs = matched_points(base.points, other.points)
        if not pairs:
            raise CompareError(f"no point of {other.name} matches a point of {base.name} by (mode, load)")
        other_samples = run_samples(other, MAX_BOOTSTRAP_REQUESTS, MAX_BOOTSTRAP_GAPS)
        reps_a, reps_b = repeat_points(base.points), repeat_points(other.points)
        for mode, load, pa, pb in pairs:
            key = point_key(mode, load)
            if len(reps_a.get(key, [])) > 1 and len(reps_b.get(key, [])) > 1:
                rows += _repeat_rows(base, other, mode, load, reps_a[key], reps_b[key], opts)
                continue
            sa, sb = base_samples.get(pa), other_samples.get(pb)
            shared_a, shared_b = _shared(sa), _shared(sb)
            for metric in opts.metrics:
                col = st.metric_column(metric)
                if sa is None or sb is None:
                    ea = eb = st.Estimate(math.nan, np.full(opts.resamples, math.nan), 0)
                else:
                    ea = st.bootstrap_metric(sa, metric, opts.resamples, rng, _csv_value(base.points, pa, col), shared_a)
                    eb = st.bootstrap_metric(sb, metric, opts.resamples, rng, _csv_value(other.points, pb, col),
                                             shared_b)
                d = st.difference(ea, eb, opts.level, st.lower_is_better(metric),
                                  st.tail_samples_needed(metric), opts.min_effect)
                rows.append({"run_a": base.name, "run_b": other.name, "mode": mode, "load": load,
                             "point_a": pa, "point_b": pb, "metric": metric, **asdict(d),
                             "n_a": ea.n, "n_b": eb.n})
    return pd.DataFrame(rows, columns=COMPARE_COLUMNS)


def load_runs(paths: list[str | Path]) -> list[Run]:
    from profiler.ab import ab_runs

    runs = []
    paths = [q for p in paths for q in (ab_runs(Path(p)) or [p])]  # an ab folder: its two arms
    for p in paths:
        try:
            runs.append(load_run(p))
        except ValueError as e:
            raise CompareError(str(e)) from None
    names = [r.name for r in runs]
    if len(set(names)) != len(names):  # the same folder twice, or copies: keep rows distinguishable
        for i, r in enumerate(runs):
            r.manifest = {**r.manifest, "run_id": f"{r.name}#{i + 1}"}
    return runs


# ---------------------------------------------------------------- Pareto fronts

def pareto_dominated(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """True where another configuration is at least as good on both (lower x, lower y) and
    strictly better on one. NaN rows are never on the front (returned as dominated)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    dom = ~ok
    for i in np.flatnonzero(ok):
        better = ok & (x <= x[i]) & (y <= y[i]) & ((x < x[i]) | (y < y[i]))
        dom[i] = bool(better.any())
    return dom


def _gpus(run: Run) -> float:
    g = numeric(run.points, "gpu_count")
    if g.notna().any() and g.max() > 0:
        return float(g.max())
    gpus = run.manifest.get("gpus") or []
    return float(len(gpus)) if gpus else 1.0


def configurations(runs: list[Run]) -> pd.DataFrame:
    """Every (run, point) with the Pareto axes.

    cost: $/1M output tokens when the run was priced, else GPU-seconds per 1M output tokens
    (GPUs × 1e6 ÷ output tokens/s), which orders points the same way for any fixed price.
    """
    rows = []
    for run in runs:
        p = run.points
        if not len(p):
            continue
        g = _gpus(run)
        thr = numeric(p, "output_tok_per_s")
        usd = numeric(p, "usd_per_1m_output")
        with np.errstate(divide="ignore", invalid="ignore"):
            gpu_s = g * 1e6 / thr.where(thr > 0)
        for i in p.index:
            rows.append({"run": run.name, "point": int(p.at[i, "point"]), "mode": p.at[i, "mode"],
                         "load": float(p.at[i, "load"]), "gpus": g,
                         "output_tok_per_s": thr.at[i], "tok_per_s_per_gpu": thr.at[i] / g,
                         "usd_per_1m_output": usd.at[i], "gpu_s_per_1m_output": gpu_s.at[i],
                         "ttft_p99_ms": numeric(p, "ttft_p99_ms").at[i], "e2e_p99_ms": numeric(p, "e2e_p99_ms").at[i],
                         "itl_p99_ms": numeric(p, "itl_p99_ms").at[i]})
    df = pd.DataFrame(rows)
    if not len(df):
        return df
    priced = df["usd_per_1m_output"].notna().all()
    df["cost_axis"] = "usd_per_1m_output" if priced else "gpu_s_per_1m_output"
    cost = df["usd_per_1m_output"] if priced else df["gpu_s_per_1m_output"]
    df["cost"] = cost
    df["dominated_cost_ttft"] = pareto_dominated(cost, df["ttft_p99_ms"])
    # throughput per GPU is better when HIGHER: negate it for the minimising front
    df["dominated_tput_e2e"] = pareto_dominated(-df["tok_per_s_per_gpu"], df["e2e_p99_ms"])
    return df


# ---------------------------------------------------------------- figures

def fig_overlay(runs: list[Run]):
    """TTFT p99 against output tokens/s, one line per run, markers labelled with their load."""
    from profiler.report.plots import COLORS, _annotate_loads, _figure

    fig = _figure()
    ax = fig.add_subplot()
    for i, run in enumerate(runs):
        p = run.points
        if not len(p):
            continue
        p = p.iloc[np.argsort(numeric(p, "load").to_numpy())]
        x, y = numeric(p, "output_tok_per_s"), numeric(p, "ttft_p99_ms")
        ok = x.notna() & y.notna()
        if ok.any():
            ax.plot(x[ok], y[ok], marker="o", color=COLORS[i % len(COLORS)], label=f"{'AB'[i] if i < 2 else chr(65 + i)}: {run.name}")
            _annotate_loads(ax, x[ok], y[ok], numeric(p, "load")[ok])
    if not ax.lines:
        return None
    ax.set_xlabel("output throughput (tokens/s)")
    ax.set_ylabel("TTFT p99 (ms)")
    ax.set_title("TTFT p99 vs throughput, all runs (labels: load)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def fig_pareto(cfg: pd.DataFrame, x: str, y: str, dominated: str, xlabel: str, ylabel: str, title: str):
    """Every (run, point) as a marker: the front filled and joined, dominated ones hollow."""
    from profiler.report.plots import COLORS, _figure

    if not len(cfg) or cfg[x].isna().all() or cfg[y].isna().all():
        return None
    fig = _figure()
    ax = fig.add_subplot()
    for i, (run, grp) in enumerate(cfg.groupby("run", sort=False)):
        c = COLORS[i % len(COLORS)]
        front, dom = grp[~grp[dominated]], grp[grp[dominated]]
        ax.scatter(front[x], front[y], color=c, s=50, label=f"{run} (front)", zorder=3)
        ax.scatter(dom[x], dom[y], facecolors="none", edgecolors=c, s=50, label=f"{run} (dominated)", zorder=2)
        for _, r in grp.iterrows():
            if np.isfinite(r[x]) and np.isfinite(r[y]):
                ax.annotate(f"{r['load']:g}", (r[x], r[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = cfg[~cfg[dominated]].sort_values(x)
    ax.plot(front[x], front[y], color="0.3", linewidth=1, linestyle="--", zorder=1, label="Pareto front")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def compare_figures(runs: list[Run], cfg: pd.DataFrame) -> dict:
    figs = {"overlay_ttft_p99": fig_overlay(runs)}
    if len(cfg):
        cost_label = ("$ per 1M output tokens" if cfg["cost_axis"].iloc[0] == "usd_per_1m_output"
                      else "GPU-seconds per 1M output tokens (no prices)")
        figs["pareto_cost_ttft"] = fig_pareto(cfg, "cost", "ttft_p99_ms", "dominated_cost_ttft", cost_label,
                                              "TTFT p99 (ms)", "Cost vs TTFT p99 (lower-left is better)")
        figs["pareto_tput_e2e"] = fig_pareto(cfg, "tok_per_s_per_gpu", "e2e_p99_ms", "dominated_tput_e2e",
                                             "output tokens/s per GPU", "E2E p99 (ms)",
                                             "Throughput per GPU vs E2E p99 (lower-right is better)")
    return figs


# ---------------------------------------------------------------- compare.html

def _fmt_value(metric: str, v: float) -> str:
    if not np.isfinite(v):
        return ""
    return f"{v:,.1f}" if metric == "output_tok_per_s" else f"{v:.3g}"


def render_compare(runs: list[Run], table: pd.DataFrame, cfg: pd.DataFrame, pngs: dict[str, bytes],
                   opts: CompareOptions, choice: str = "") -> str:
    from profiler.report.html import NOT_MEASURED, esc, page, plots_section

    names = "".join(f"<li><b>{'ABCDEFGH'[i] if i < 8 else i}</b>: {esc(r.name)} — {esc((r.manifest.get('endpoint') or {}).get('model', ''))}"
                    f" {esc(_server_text(r.manifest))} <code>{esc(r.path)}</code></li>" for i, r in enumerate(runs))
    sig = table[table["verdict"].isin(["B faster", "B slower"])]
    if len(sig):
        summary = "".join(f"<li><b>{esc(r['verdict'])}</b>: {esc(r['metric'])} at {esc(r['mode'])} {esc(f'{r.load:g}')} "
                          f"({esc(r['run_b'])}): {esc(_fmt_value(r['metric'], r['a']))} → {esc(_fmt_value(r['metric'], r['b']))}</li>"
                          for _, r in sig.iterrows())
        summary = f"<ul>{summary}</ul>"
    else:
        summary = "<p>No significant difference on any compared metric.</p>"
    head = "".join(f"<th>{esc(h)}</th>" for h in ("B", "mode", "load", "metric", "A", "B", "B − A",
                                                    f"{opts.level:.0%} CI low", f"{opts.level:.0%} CI high", "verdict", "note"))
    rows = []
    for _, r in table.iterrows():
        cls = {"B faster": " style=\"background:#dafbe1\"", "B slower": " style=\"background:#ffebe9\""}.get(r["verdict"], "")
        cells = [esc(r["run_b"]), esc(r["mode"]), esc(f"{r['load']:g}"), esc(r["metric"]),
                 esc(_fmt_value(r["metric"], r["a"])), esc(_fmt_value(r["metric"], r["b"])),
                 esc(_fmt_value(r["metric"], r["diff"])), esc(_fmt_value(r["metric"], r["ci_lo"])),
                 esc(_fmt_value(r["metric"], r["ci_hi"])), esc(r["verdict"]), esc(r["note"])]
        rows.append(f"<tr{cls}>" + "".join(f'<td{" class=l" if j in (0, 9, 10) else ""}>{c}</td>'
                                             for j, c in enumerate(cells)) + "</tr>")
    method = (f"Bootstrap percentile {opts.level:.0%} intervals of B − A from the per-request samples "
              f"({opts.resamples} resamples, seed {opts.seed}; requests resampled, ITL chunk gaps kept with their "
              f"request; a point of more than {MAX_BOOTSTRAP_REQUESTS:,} requests or {MAX_BOOTSTRAP_GAPS:,} chunk gaps is "
              f"resampled from a seeded subset of its requests, re-centred on the full point's value, which "
              f"only widens its interval). A verdict only where the interval excludes 0, the difference is at least "
              f"{opts.min_effect:.0%} of A, and each run has enough samples for the percentile. Latencies in ms, "
              "throughput in output tokens/s. The interval covers sampling noise within a run, not run-to-run "
              "drift of the machine: repeat runs before trusting a small difference.")
    front_rows = ""
    if len(cfg):
        fr = cfg[~cfg["dominated_cost_ttft"]]
        unit = {"usd_per_1m_output": "$ per 1M output tokens", "gpu_s_per_1m_output": "GPU-s per 1M output tokens"}
        front_rows = "".join(f"<li>{esc(r['run'])} at {esc(r['mode'])} {esc(f'{r.load:g}')}: "
                             f"{esc(f'{r.cost:.4g}')} {esc(unit.get(r['cost_axis'], r['cost_axis']))}, "
                             f"TTFT p99 {esc(f'{r.ttft_p99_ms:.1f}')} ms</li>" for _, r in fr.iterrows())
    captions = [("overlay_ttft_p99", "TTFT p99 vs throughput, all runs"),
                ("pareto_cost_ttft", "Pareto: cost per 1M output tokens vs TTFT p99"),
                ("pareto_tput_e2e", "Pareto: throughput per GPU vs E2E p99")]
    body = (f"{choice}<h2>Runs</h2><ul>{names}</ul><h2>Significant differences</h2>{summary}"
            f"<h2>Plots</h2>{plots_section(pngs, captions)}"
            f"<h2>Cost/latency Pareto front</h2><ul>{front_rows or f'<li class=nm>{NOT_MEASURED}</li>'}</ul>"
            f"<h2>Every matched point</h2><p class=sub>{esc(method)}</p>"
            f"<div class=tw><table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")
    return page(f"inferprof compare — {runs[0].name} vs {', '.join(r.name for r in runs[1:])}",
                f"{len(table)} comparisons, {len(sig)} significant", body)


def _server_text(manifest: dict) -> str:
    s = manifest.get("server") or {}
    if not isinstance(s, dict):
        return str(s)
    return " ".join(str(x) for x in (s.get("kind", ""), s.get("preset", ""), " ".join(map(str, s.get("args") or []))) if x)


def write_compare(runs: list[Run], table: pd.DataFrame, out_dir: str | Path, opts: CompareOptions,
                  decision=None) -> Path:
    """out_dir/compare.html (self-contained), out_dir/plots/*.png, out_dir/compare.csv."""
    from profiler.report.html import write_html
    from profiler.report.plots import write_figures

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = configurations(runs)
    written = write_figures(compare_figures(runs, cfg), out / "plots")
    pngs = {k: p.read_bytes() for k, p in written.items()}
    table.to_csv(out / "compare.csv", index=False, float_format="%.6g")
    if len(cfg):
        cfg.to_csv(out / "pareto.csv", index=False, float_format="%.6g")
    choice = ""
    if decision is not None:  # profiler.choose: the recommendation leads the page
        from profiler.choose.report import write_choice

        choice = write_choice(decision, out)
    return write_html(out / "compare.html", render_compare(runs, table, cfg, pngs, opts, choice))
