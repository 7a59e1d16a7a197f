"""report.html: self-contained, escaped, degrades gracefully, leads with the answers."""

from __future__ import annotations

import re

import pandas as pd
from test_report_fixture import PRICING, build_run

from profiler import runfolder as rf
from profiler.report import write_report
from profiler.report.headline import headline

XSS = "<script>alert(1)</script>"


def test_report_is_self_contained(tmp_path):
    path = write_report(build_run(tmp_path, pricing=PRICING))
    text = path.read_text()
    assert path.name == "report.html"
    assert "<script" not in text.lower()  # no JavaScript at all
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing fetched from the network
    assert "<link" not in text.lower()
    assert text.count('src="data:image/png;base64,') == 6
    assert (path.parent / "plots" / "telemetry.png").exists()


def test_every_run_value_is_escaped(tmp_path):
    run = build_run(tmp_path, model=XSS)
    m = rf.read_json(run / rf.MANIFEST)
    m["command"] = ["inferprof", "sweep", "--model", XSS]
    m["gpus"] = [{"name": XSS}]
    m["notices"] = [XSS]
    rf.write_json(run / rf.MANIFEST, m)
    points = pd.read_csv(run / rf.POINTS_CSV)
    points["trust_reason"] = points["trust_reason"].astype(object)
    points.loc[2, "trust_reason"] = XSS
    rf.write_points_csv(run, points)
    text = write_report(run).read_text()
    assert XSS not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script" not in text.lower()


def test_headline_answers(tmp_path):
    run = build_run(tmp_path, pricing=PRICING)
    points = pd.read_csv(run / rf.POINTS_CSV)
    h = headline(points, rf.read_json(run / rf.MANIFEST))
    best = points.loc[points["output_tok_per_s"].idxmax()]
    assert h.max_throughput.load == best["load"]
    met = points[points["slo_met"].astype(str) == "True"]
    assert h.best_slo.load == met["load"].max()
    text = write_report(run).read_text()
    assert f"{best['output_tok_per_s']:,.0f}" in text
    assert f"concurrency {met['load'].max():g}" in text
    assert text.index("Answers") < text.index("Per point") < text.index("Trust") < text.index("What ran")


def test_without_telemetry_cost_or_slo_says_not_measured(tmp_path):
    run = build_run(tmp_path, telemetry=False, slos={}, untrusted=())
    text = write_report(run).read_text()
    assert "not measured" in text
    assert "no SLO given" in text
    assert "J per output token needs GPU power telemetry" in text
    assert "Every point passed the trust checks" in text
    assert not (run / "plots" / "telemetry.png").exists()


def test_trust_warnings_listed(tmp_path):
    text = write_report(build_run(tmp_path, untrusted=(1, 3))).read_text()
    assert "2 of 4 points are untrusted" in text
    assert "client CPU 95% of a core" in text


def test_report_without_points_csv_recomputes_it(tmp_path):
    run = build_run(tmp_path)
    (run / rf.POINTS_CSV).unlink()
    assert "Max output throughput" in write_report(run).read_text()
