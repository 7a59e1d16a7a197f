"""Cristian's offset estimate, the shift of a node's rows onto the driver's clock, per-node trust."""

from __future__ import annotations

import math

import pyarrow as pa

from backends.laghist import LagHistogram
from backends.records import RequestRecord
from profiler import runfolder as rf
from profiler.clocksync import drift_ppm, estimate, measure
from profiler.nodefacts import point_facts, trust_reasons
from profiler.raypool import INSTANT_COLUMNS, shift_tables


def test_least_delay_sample_and_its_bound():
    # a node whose clock is 1,000,000 ns behind the driver's; replies take uneven paths
    true = 1_000_000
    samples = [(0, 10 - true + 90, 200), (1000, 1000 + 3 - true, 1010), (5000, 5000 + 60 - true, 5100)]
    off = estimate(samples)
    assert off.rtt_ns == 10 and off.uncertainty_ns == 5 and off.at_ns == 1000
    assert abs(off.offset_ns - true) <= off.uncertainty_ns
    assert off.to_node(2_000_000) == 2_000_000 - off.offset_ns and off.to_node(0) == 0
    assert off.to_driver(off.to_node(123_456_789)) == 123_456_789


def test_same_clock_is_within_its_uncertainty():
    import time

    off = measure(time.perf_counter_ns, n=5)  # one process: the true offset is 0
    assert abs(off.offset_ns) <= off.uncertainty_ns and off.samples == 5


def test_drift():
    a = estimate([(0, -100, 0)])
    b = estimate([(1_000_000_000, 1_000_000_000 - 100 - 50, 1_000_000_000)])
    assert math.isclose(drift_ppm(a, b), 0.05)


def test_shift_keeps_durations_and_zeros():
    rec = RequestRecord(point=0, request=7, worker=0, scheduled_ns=100, send_ns=100, headers_ns=150,
                        first_event_ns=160, first_content_ns=170, last_content_ns=300, end_ns=310, status=200,
                        error="", error_detail="", input_tokens=1, input_exact=True, max_tokens=2,
                        usage_prompt_tokens=1, usage_completion_tokens=2, client_output_tokens=-1, n_events=2,
                        n_content_chunks=2, bursts=0, response_id="r", output_chars=2)
    req = rf.records_table([rec])
    chunks = rf.chunks_table([0, 0], [7, 7], [170, 300], [1, 1], [True, True])
    r2, c2 = shift_tables(req, chunks, 1_000, "nodeA")
    row = r2.to_pylist()[0]
    for c in INSTANT_COLUMNS:
        assert row[c] == (getattr(rec, c) + 1_000 if getattr(rec, c) else 0), c
    assert row["first_content_ns"] - row["send_ns"] == rec.first_content_ns - rec.send_ns
    assert row["node"] == "nodeA" and c2["t_ns"].to_pylist() == [1170, 1300]
    assert r2.schema == req.schema and c2.schema == chunks.schema


def _actor(w, cpu, n=10, scheduled=10, lag_us=100):
    lag = LagHistogram()
    lag.extend([lag_us] * 50)
    clock = {"offset_ns": 0, "uncertainty_ns": 500_000}
    return {"worker": w, "requests": n, "first_send_ns": 0, "last_send_ns": 9 * 10**9, "scheduled": scheduled,
            "start_late_ms": 0.1 * w, "dispatch_margin_ms": 1900.0, "parse_ms": 3.0, "ship_ms": 20.0,
            "cpu_frac": cpu, "lag": lag, "threads": 1,
            "clock": {"start": clock, "end": clock, "offset_ns": 0, "uncertainty_ns": 500_000, "drift_ppm": 0.0}}


def test_a_saturated_node_is_named():
    last = {"actors": {0: _actor(0, 0.2), 1: _actor(1, 0.95)}, "lost": [],
            "identity": {0: {"node": "aaaaaaaa11"}, 1: {"node": "bbbbbbbb22"}}}
    facts = {"mode": "rate", "load": 4.0, **point_facts(last)}
    assert [n["share"] for n in facts["nodes"]] == [0.5, 0.5]
    assert math.isclose(facts["ray"]["start_skew_ms"], 0.1)
    reasons = trust_reasons(facts, 10.0, 0.9, 2.0, 0.95)
    # each node sent 10 requests over 9 s (1 req/s) of its 2 req/s share; only node b saturated
    assert "node bbbbbbbb: client CPU 95% of a core" in reasons
    assert not any(r.startswith("node aaaaaaaa: client CPU") for r in reasons)
    assert sum("achieved 1.00 of its 2.00 req/s" in r for r in reasons) == 2
    lost = trust_reasons({"nodes_lost": [{"node": "cccccccc33", "why": "ActorDiedError"}]}, 10.0, 0.9, 2.0, 0.95)
    assert lost and "lost mid-point" in lost[0]
    assert trust_reasons({}, 10.0, 0.9, 2.0, 0.95) == []


def test_local_rows_have_an_empty_node():
    t = rf.records_table([])
    assert t.schema.field("node").type == pa.string()
