"""Reports of a run folder: plots, a self-contained report.html, and run comparison.

`write_report(run_dir)` reads only the run folder (never re-measures): points.csv (recomputed
from the raw files when missing), manifest.json, points.jsonl, requests/chunks/telemetry parquet.
"""

from __future__ import annotations

from pathlib import Path

REPORT_HTML = "report.html"
PLOTS_DIR = "plots"


def write_report(run_dir: str | Path) -> Path:
    """Write RUN_DIR/plots/*.png and RUN_DIR/report.html; return the report's path."""
    from profiler.report import html, plots
    from profiler.report.headline import headline, hosted_lines
    from profiler.report.samples import REPORT_SAMPLE_REQUESTS, run_samples
    from profiler.runread import load_run, read_telemetry

    run = load_run(run_dir)
    hosted, as_of = hosted_lines(run.manifest)
    tel = read_telemetry(run.path)
    figs = plots.build_figures(run.points, tel, run.facts, run_samples(run, max_requests=REPORT_SAMPLE_REQUESTS), hosted)
    written = plots.write_figures(figs, run.path / PLOTS_DIR)
    pngs = {name: p.read_bytes() for name, p in written.items()}
    text = html.render_report(run.manifest, run.points, headline(run.points, run.manifest, hosted, as_of), pngs,
                              search_html=_search_html(run), nodes_html=_nodes_html(run))
    return html.write_html(run.path / REPORT_HTML, text)


def _nodes_html(run) -> str:
    from profiler.report.html import esc
    from profiler.report.nodes_html import nodes_section

    return nodes_section(run.facts, esc)


def _search_html(run) -> str:
    from profiler.capacity import read_search
    from profiler.report.html import esc
    from profiler.report.search_html import search_section

    search = read_search(run.path)
    return search_section(run.path, search, run.points, esc) if search and "found_load" in search else ""


__all__ = ["write_report", "REPORT_HTML", "PLOTS_DIR"]
