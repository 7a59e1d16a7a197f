"""`inferprof compare` command line. Bad input: one line on stderr, exit 2 (raised as UserError,
which `profiler.cli.main` turns into that)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from profiler.errors import UserError
from profiler.report import stats as st
from profiler.report.compare import DEFAULT_LEVEL, DEFAULT_METRICS, CompareOptions

COMPARE_TABLE = [
    ("run_b", "B", "{}"), ("mode", "mode", "{}"), ("load", "load", "{:g}"), ("metric", "metric", "{}"),
    ("a", "A", "{:.4g}"), ("b", "B value", "{:.4g}"), ("diff", "B−A", "{:+.3g}"),
    ("ci_lo", "CI low", "{:+.3g}"), ("ci_hi", "CI high", "{:+.3g}"), ("verdict", "verdict", "{}"),
    ("note", "note", "{}"),
]


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `compare` subcommand to the main parser's subparsers."""
    from profiler.tables import FORMATS

    p = subparsers.add_parser("compare", help="compare the matching points of two or more runs (bootstrap CIs)",
                              description="The first run is A; each other run is B. Points match by (mode, load).")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders: RUN_A RUN_B [RUN_C ...]")
    p.add_argument("--out", default="", help="write compare.html, compare.csv, pareto.csv and plots/ here")
    p.add_argument("--format", default="table", choices=FORMATS)
    p.add_argument("--metrics", default=",".join(DEFAULT_METRICS),
                   help="comma list, e.g. ttft_p50,ttft_p99,itl_p50,itl_p99,tpot_p50,e2e_p99,output_tok_per_s")
    p.add_argument("--resamples", type=int, default=st.DEFAULT_RESAMPLES, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=st.DEFAULT_SEED, help="bootstrap seed (default 0)")
    p.add_argument("--confidence", type=float, default=DEFAULT_LEVEL, help="interval level (default 0.95)")
    p.add_argument("--min-effect", type=float, default=st.DEFAULT_MIN_EFFECT,
                   help="smallest |B−A| / |A| that gets a verdict (default 0.05; 0 = any significant difference)")
    p.add_argument("--objectives", default="",
                   help="choice: e.g. quality:max,cost_per_useful:min,ttft_p99:min (default: that, or "
                        "cost:min,ttft_p99:min for runs without an eval set)")
    p.add_argument("--weights", default="", help="choice: e.g. quality=0.5,cost_per_useful=0.3,ttft_p99=0.2 "
                                                 "(default: equal)")
    p.add_argument("--point", type=int, default=None,
                   help="choice: this point of every run (default: each run's best SLO-meeting point)")
    p.set_defaults(func=cmd_compare)
    return p


def _choice(a, runs):
    """The decision (profiler.choose); None when the runs hold nothing to decide on and no choice
    flag was given (the plain latency comparison stays as it was)."""
    from profiler.choose.decision import decide_runs

    asked = bool(a.objectives or a.weights or a.point is not None)
    try:
        return decide_runs(runs, a.objectives, a.weights, a.point, 1 - a.confidence, a.seed)
    except UserError:
        if asked:
            raise
        return None


def _matched_table(runs, opts, asked: bool):
    """compare_runs; with a choice flag, runs whose points do not match still get their choice."""
    import pandas as pd

    from profiler.report.compare import COMPARE_COLUMNS, CompareError, compare_runs

    try:
        return compare_runs(runs, opts)
    except CompareError as e:
        if asked and "matches" in str(e):
            return pd.DataFrame(columns=COMPARE_COLUMNS)
        raise


def cmd_compare(a) -> int:
    from profiler.ab import ab_runs
    from profiler.report.compare import load_runs, write_compare
    from profiler.tables import print_table

    if sum(2 if ab_runs(Path(r)) else 1 for r in a.runs) < 2:
        raise UserError("compare needs at least two run folders: RUN_A RUN_B [RUN_C ...]")
    metrics = tuple(m.strip() for m in a.metrics.split(",") if m.strip())
    if not metrics:
        raise UserError("--metrics is empty")
    opts = CompareOptions(metrics=metrics, resamples=a.resamples, seed=a.seed, level=a.confidence,
                          min_effect=a.min_effect)
    runs = load_runs(a.runs)
    table = _matched_table(runs, opts, bool(a.objectives or a.weights or a.point is not None))
    print_table(table, a.format, COMPARE_TABLE, title=f"inferprof compare (A = {runs[0].name})")
    decision = _choice(a, runs)
    if decision is not None and a.format in ("table", "markdown"):
        from profiler.choose.report import decision_columns

        print_table(decision.table.sort_values("rank"), a.format, decision_columns(decision), title="choice")
        print(decision.paragraph)
    if a.out:
        path = write_compare(runs, table, a.out, opts, decision)
        print(path, file=sys.stderr if a.format in ("json", "csv") else sys.stdout)
    return 0
