"""`inferprof matrix MATRIX.yaml` and `inferprof matrix --resume MATRIX_DIR`.

Exit codes: 0 when every cell finished, 3 when the matrix ran but some cell failed (their log tails
are in matrix.json), 2 for a bad matrix file, 128 + signal when stopped (finished cells are kept).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

import yaml
from rich.console import Console

from profiler.errors import UserError

EXIT_CELLS_FAILED = 3
TABLE = [("slo", "SLO", "{}"), ("cell", "cell", "{}"), ("status", "status", "{}"),
         ("max_goodput_tok_per_s", "max goodput tok/s", "{:.1f}"), ("goodput_load", "at load", "{:g}"),
         ("usd_per_1m_output", "$/1M out", "{:.4g}"), ("min_usd_per_1m_output_meeting_slo", "min $/1M in SLO", "{:.4g}"),
         ("peak_output_tok_per_s", "peak tok/s", "{:.1f}"), ("cold_start_s", "cold start s", "{:.1f}"),
         ("best", "best", "{}")]


def register(subparsers) -> argparse.ArgumentParser:
    from profiler.tables import FORMATS

    p = subparsers.add_parser("matrix", help="start a server per setting and sweep each (grid of server x sweep settings)")
    p.add_argument("file", nargs="?", help="matrix file (.yaml); see profiler/matrix/spec.py and README 'Matrix'")
    p.add_argument("--resume", metavar="MATRIX_DIR", help="go on with a matrix folder: finished cells are skipped")
    p.add_argument("--out", help="parent folder of the matrix folder (overrides the file's out)")
    p.add_argument("--parallel", type=int, help="server settings run side by side (overrides the file)")
    p.add_argument("--format", default="table", choices=FORMATS)
    p.set_defaults(func=cmd_matrix)
    return p


def load_file(path: str):
    from profiler.matrix.spec import parse

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise UserError(f"{path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    return parse(doc, path), doc


def check_sweeps(spec) -> None:
    """Every cell's server command and sweep keys, before any server starts."""
    from profiler.cli import build_parser
    from profiler.matrix.spec import server_command, server_env, server_settings
    from profiler.sweepconfig import sweep_parser, validate

    sweep = sweep_parser(build_parser())
    for ss in server_settings(spec):
        server_command(spec, ss.settings, spec.server.port)  # a template that cannot be filled fails now
        server_env(spec, ss.settings)
        for cid, cfg in ss.sweeps:
            validate(cfg, sweep, f"sweep of cell {cid}")


def cmd_matrix(a) -> int:
    from profiler.matrix import runner
    from profiler.matrix.hostinfo import gpu_indices, host_info
    from profiler.matrix.spec import parse

    if bool(a.file) == bool(a.resume):
        raise UserError("give a matrix file, or --resume MATRIX_DIR")
    console = Console(stderr=True, soft_wrap=True)
    host = host_info()
    if a.resume:
        m = runner.reopen(Path(a.resume), parse)
    else:
        spec, doc = load_file(a.file)
        if a.out:
            spec.out = doc["out"] = a.out
        check_sweeps(spec)
        m = runner.create(spec, doc, str(a.file), host)
    if a.parallel:
        if a.parallel < 1:
            raise UserError("--parallel must be at least 1")
        m.spec.parallel = a.parallel
    console.print(f"matrix folder {m.dir}")
    signum = _run_with_signals(m, gpu_indices(host["nvidia_smi_gpus"]))
    rc = finish(m, a.format, console)
    if signum:
        console.print(f"inferprof: matrix stopped by signal {signum}; finished cells are kept "
                      f"(inferprof matrix --resume {m.dir} goes on)")
        return 128 + signum
    return rc


def _run_with_signals(m, gpus: list[int]) -> int:
    from profiler.matrix import runner

    def on_signal(signum, _frame):
        m.signum = signum
        m.stop.set()  # workers stop their sweep (it records the point under way) and their server

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        runner.run(m, gpus)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return (m.signum or signal.SIGINT) if m.stop.is_set() else 0


def finish(m, fmt: str, console: Console) -> int:
    from profiler.matrix.compare import best_cells, comparison, slo_sets
    from profiler.tables import print_table

    df = comparison(m.state, slo_sets(m.spec.slos, m.spec.sweep))
    df.to_csv(m.dir / "comparison.csv", index=False, float_format="%.6g")
    best = best_cells(df)
    m.state["comparison"] = {"best": best, "file": "comparison.csv"}
    m.save()
    _compare_html(m, console)
    print_table(df, fmt, TABLE, title=f"inferprof matrix {m.dir.name}",
                console=Console(width=None if sys.stdout.isatty() else 220) if fmt == "table" else None)
    for slo, cell in best.items():
        console.print(f"best cell for SLO {slo}: {cell or 'none (no cell had goodput)'}")
    failed = [cid for cid, rec in m.state["cells"].items() if rec.get("status") != "ok"]
    for cid in failed:
        console.print(f"[red]cell {cid} {m.state['cells'][cid].get('status')}:[/] {m.state['cells'][cid].get('error')}")
    if fmt == "table":
        print(m.dir)
    return EXIT_CELLS_FAILED if failed else 0


def _compare_html(m, console: Console) -> None:
    """compare.html / pareto.csv of the finished cells (profiler.report.compare), when two or more."""
    dirs = [rec["run_dir"] for rec in m.state["cells"].values() if rec.get("status") == "ok" and rec.get("run_dir")]
    if len(dirs) < 2:
        return
    try:
        from profiler.report.compare import CompareOptions, compare_runs, load_runs, write_compare

        opts = CompareOptions(resamples=200)
        runs = load_runs(dirs)
        write_compare(runs, compare_runs(runs, opts), m.dir / "compare", opts)
    except Exception as e:  # the comparison table above is the result; the HTML is a view of it
        console.print(f"[yellow]compare.html not written:[/] {type(e).__name__}: {json.dumps(str(e))[:200]}")


