"""Plots: files written, not blank, and the plotted data hold the expected points."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.image import imread
from test_report_fixture import PRICING, build_run

from profiler import runfolder as rf
from profiler.report import plots
from profiler.report.samples import run_samples
from profiler.runread import load_run


def _lines(fig):
    return {line.get_label(): line for ax in fig.axes for line in ax.lines}


def test_serving_curve_has_one_marker_per_point(tmp_path):
    points = pd.read_csv(build_run(tmp_path) / rf.POINTS_CSV)
    fig = plots.fig_serving_curve(points, "ttft")
    lines = _lines(fig)
    assert set(lines) == {"TTFT p50", "TTFT p99"}
    x, y = lines["TTFT p99"].get_data()
    assert len(x) == 4
    assert np.allclose(x, points.sort_values("load")["output_tok_per_s"])
    assert np.allclose(y, points.sort_values("load")["ttft_p99_ms"])
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels.count("8") == 2  # each series labels its points with the load


def test_missing_columns_degrade(tmp_path):
    points = pd.read_csv(build_run(tmp_path, telemetry=False) / rf.POINTS_CSV)
    assert plots.fig_cost(points, []) is None  # no cost columns
    assert plots.fig_telemetry(pd.DataFrame(), []) is None
    no_itl = points.drop(columns=[c for c in points.columns if c.startswith("itl_")])
    assert plots.fig_serving_curve(no_itl, "itl") is None
    half = points.copy()
    half.loc[half["load"] == 4, "ttft_p99_ms"] = np.nan
    x, _ = _lines(plots.fig_serving_curve(half, "ttft"))["TTFT p99"].get_data()
    assert len(x) == 3


def test_cost_plot_draws_hosted_lines(tmp_path):
    points = pd.read_csv(build_run(tmp_path, pricing=PRICING) / rf.POINTS_CSV)
    fig = plots.fig_cost(points, [plots.HostedLine("api-x", 0.2), plots.HostedLine("api-y", 0.5)])
    lines = _lines(fig)
    assert len(lines["self-hosted (GPU time)"].get_xdata()) == 4
    assert lines["api-x"].get_ydata()[0] == 0.2


def test_telemetry_panels_and_point_shading(tmp_path):
    run = load_run(build_run(tmp_path))
    tel = rf.read_table(run.path, rf.TELEMETRY)
    fig = plots.fig_telemetry(tel, run.facts)
    assert len(fig.axes) == 3
    for ax in fig.axes:
        assert len(ax.patches) == 4  # one shaded span per point
        assert len(ax.lines[0].get_xdata()) == (tel["metric"] == "power_w").sum()


def test_ttft_distribution_one_series_per_point(tmp_path):
    run = load_run(build_run(tmp_path))
    fig = plots.fig_ttft_distribution(run_samples(run))
    lines = fig.axes[0].lines
    assert len(lines) == 4
    assert all(len(line.get_xdata()) == 36 for line in lines)  # 40 requests − 10 % warm-up


def test_write_plots_files_are_not_blank(tmp_path):
    run_dir = build_run(tmp_path, pricing=PRICING)
    files = plots.write_plots(run_dir, [plots.HostedLine("api", 0.3)])
    names = {f.name for f in files}
    assert names == set(plots.PLOT_FILES.values())
    for f in files:
        img = imread(f)
        assert img.shape[0] > 200 and img.shape[1] > 200
        assert float(img[..., :3].std()) > 0.02, f"{f.name} looks blank"
