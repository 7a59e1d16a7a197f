"""`inferprof compare`: matching, bootstrap verdicts, Pareto fronts, compare.html, CLI errors."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_report_fixture import PRICING, build_run

from profiler.report.compare import (
    CompareOptions,
    compare_runs,
    configurations,
    load_runs,
    matched_points,
    pareto_dominated,
    write_compare,
)

ROOT = Path(__file__).resolve().parents[1]
FAST = CompareOptions(resamples=1000)


def run_cli(argv: list[str]) -> int:
    """profiler.cli.main with `compare` registered (whether or not the lead wired it yet)."""
    from profiler import cli
    from profiler.report.cli import register

    orig = cli.build_parser

    def build():
        p = orig()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        if "compare" not in sub.choices:
            register(sub)
        return p

    cli.build_parser = build
    try:
        return cli.main(argv)
    finally:
        cli.build_parser = orig


def test_known_difference_found(tmp_path):
    a = build_run(tmp_path, name="a", seed=1)
    b = build_run(tmp_path, name="b", seed=2, itl_ms=lambda load: 12.0 + 0.5 * load)  # decode 4 ms slower
    df = compare_runs(load_runs([a, b]), FAST)
    itl = df[df["metric"].isin(["itl_p50", "tpot_p50"])]
    assert (itl["verdict"] == "B slower").all()
    assert (itl["ci_lo"] > 0).all()
    thr = df[df["metric"] == "output_tok_per_s"]
    assert (thr["verdict"] == "B slower").all()
    # TTFT distributions are the same: no verdict there
    assert (df[df["metric"] == "ttft_p50"]["verdict"] == "no significant difference").all()


def test_same_distribution_finds_nothing(tmp_path):
    a = build_run(tmp_path, name="a", seed=11, n=200)
    b = build_run(tmp_path, name="b", seed=12, n=200)
    df = compare_runs(load_runs([a, b]), FAST)
    assert (df["verdict"] == "no significant difference").all(), df[["load", "metric", "verdict", "note"]]


def test_match_by_mode_and_load(tmp_path):
    a = build_run(tmp_path, name="a", loads=(1, 2, 4))
    b = build_run(tmp_path, name="b", loads=(2, 4, 8))
    pa, pb = pd.read_csv(a / "points.csv"), pd.read_csv(b / "points.csv")
    assert [(m, load) for m, load, _, _ in matched_points(pa, pb)] == [("concurrency", 2.0), ("concurrency", 4.0)]
    assert [(x, y) for _, _, x, y in matched_points(pa, pb)] == [(1, 0), (2, 1)]
    c = build_run(tmp_path, name="c", loads=(0.5,), mode="rate")
    with pytest.raises(ValueError, match="no point"):
        compare_runs(load_runs([a, c]), FAST)


def test_open_loop_runs_compare(tmp_path):
    a = build_run(tmp_path, name="a", loads=(5,), mode="rate", seed=3, n=120)
    b = build_run(tmp_path, name="b", loads=(5,), mode="rate", seed=4, n=120)
    df = compare_runs(load_runs([a, b]), FAST)
    thr = df[df["metric"] == "output_tok_per_s"].iloc[0]
    assert thr["ci_lo"] < thr["diff"] < thr["ci_hi"]


def test_pareto_dominated():
    x = np.array([1.0, 2.0, 2.0, 3.0, np.nan])
    y = np.array([3.0, 1.0, 2.0, 3.0, 1.0])
    assert pareto_dominated(x, y).tolist() == [False, False, True, True, True]


def test_configurations_cost_axis(tmp_path):
    priced = build_run(tmp_path, name="p", pricing=PRICING)
    cfg = configurations(load_runs([priced]))
    assert (cfg["cost_axis"] == "usd_per_1m_output").all()
    unpriced = build_run(tmp_path, name="u", itl_ms=lambda load: 30.0)
    cfg = configurations(load_runs([priced, unpriced]))
    assert (cfg["cost_axis"] == "gpu_s_per_1m_output").all()  # one run has no prices: GPU-seconds
    assert np.allclose(cfg["gpu_s_per_1m_output"], 1e6 / cfg["output_tok_per_s"])
    # the slower run (30 ms per token) is dominated everywhere by the fast one on cost vs TTFT p99
    assert not cfg[cfg["run"] == "u"]["dominated_cost_ttft"].eq(False).all()


def test_compare_html_self_contained_and_escaped(tmp_path):
    xss = "<script>alert(1)</script>"
    a = build_run(tmp_path, name="a", model=xss, pricing=PRICING)
    b = build_run(tmp_path, name="b", seed=5, itl_ms=lambda load: 14.0)
    runs = load_runs([a, b])
    html = write_compare(runs, compare_runs(runs, FAST), tmp_path / "cmp", FAST).read_text()
    assert "<script" not in html.lower() and xss not in html
    assert html.count('src="data:image/png;base64,') == 3
    assert (tmp_path / "cmp" / "compare.csv").exists()


def test_cli_formats_and_errors(tmp_path, capsys):
    a = build_run(tmp_path, name="a")
    b = build_run(tmp_path, name="b", seed=9)
    assert run_cli(["compare", str(a), str(b), "--format", "json", "--resamples", "200",
                    "--metrics", "ttft_p50,output_tok_per_s"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 8 and {r["metric"] for r in rows} == {"ttft_p50", "output_tok_per_s"}
    assert run_cli(["compare", str(a), str(tmp_path / "missing")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert run_cli(["compare", str(a)]) == 2
    assert run_cli(["compare", str(a), str(b), "--metrics", "ttft_p42"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("inferprof: error:") for line in err)
    c = build_run(tmp_path, name="c", loads=(16,))
    assert run_cli(["compare", str(a), str(c)]) == 2
    assert "no point" in capsys.readouterr().err
    assert run_cli(["compare", str(a), str(b), "--out", str(tmp_path / "o"), "--resamples", "200"]) == 0
    assert (tmp_path / "o" / "compare.html").exists()


def _mock_sweep(out: Path, *extra: str) -> Path:
    cmd = [sys.executable, "-m", "profiler.cli", "sweep", "--preset", "tiny-cpu", "--concurrency", "1,2",
           "--requests", "60", "--output-tokens", "32", "--out", str(out), "--no-report", "--json", *extra]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-2000:]
    return Path(json.loads(res.stdout)["run_dir"])


@pytest.fixture(scope="module")
def mock_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("mockruns")
    return {"a": _mock_sweep(out / "a", "--seed", "1"), "same": _mock_sweep(out / "same", "--seed", "2"),
            "slow": _mock_sweep(out / "slow", "--seed", "1", "--mock-arg=--decode-base-ms=4")}


def test_mock_slower_decode_is_found(mock_runs):
    df = compare_runs(load_runs([mock_runs["a"], mock_runs["slow"]]), FAST)
    for metric in ("itl_p50", "tpot_p50", "output_tok_per_s"):
        assert (df[df["metric"] == metric]["verdict"] == "B slower").all(), df[df["metric"] == metric]


def test_mock_same_preset_other_seed_finds_nothing(mock_runs):
    # central metrics: the tails of a 60-request run on a shared CPU box move with machine noise
    opts = CompareOptions(metrics=("ttft_p50", "itl_p50", "tpot_p50", "e2e_p50", "output_tok_per_s"), resamples=1000)
    df = compare_runs(load_runs([mock_runs["a"], mock_runs["same"]]), opts)
    assert (df["verdict"] == "no significant difference").all(), df[["load", "metric", "a", "b", "ci_lo", "ci_hi", "note"]]


def test_sweep_report_path_is_wired(mock_runs, tmp_path):
    from profiler.report import write_report

    run = tmp_path / "copy"
    shutil.copytree(mock_runs["a"], run)
    html = write_report(run).read_text()
    assert "Max output throughput" in html and "mock-llm" in html
