"""Metric formulas on hand-made records with answers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from backends.records import REQUEST_COLUMNS
from profiler import metrics as m
from profiler.summary import summarize_point

MS = 1_000_000  # ns per ms


def rec(request, send_ms, chunks_ms, usage=None, error="", max_tokens=None, prompt=10, end_ms=None, client=-1):
    """A requests.parquet row plus its chunk rows; chunk times in ms."""
    n_chunks = len(chunks_ms)
    row = {c: 0 for c in REQUEST_COLUMNS}
    row.update(point=0, request=request, worker=0, scheduled_ns=send_ms * MS, send_ns=send_ms * MS,
               headers_ns=send_ms * MS, first_event_ns=(chunks_ms[0] * MS if chunks_ms else 0),
               first_content_ns=(chunks_ms[0] * MS if chunks_ms else 0),
               last_content_ns=(chunks_ms[-1] * MS if chunks_ms else 0),
               end_ns=(end_ms if end_ms is not None else (chunks_ms[-1] if chunks_ms else send_ms)) * MS,
               status=200 if not error else 500, error=error, error_detail="", input_tokens=prompt,
               input_exact=False, max_tokens=max_tokens or (usage if usage is not None else n_chunks),
               usage_prompt_tokens=prompt, usage_completion_tokens=(-1 if usage is None else usage),
               client_output_tokens=client, n_events=n_chunks, n_content_chunks=n_chunks, bursts=0,
               response_id=f"r{request}", output_chars=n_chunks)
    chunks = [{"point": 0, "request": request, "t_ns": t * MS, "tokens": -1} for t in chunks_ms]
    return row, chunks


def frames(*recs):
    rows = [r for r, _ in recs]
    chunks = [c for _, cs in recs for c in cs]
    return pd.DataFrame(rows), pd.DataFrame(chunks, columns=["point", "request", "t_ns", "tokens"])


FACTS = {"point": 0, "mode": "concurrency", "load": 2, "workers": 1, "client": {}}


def test_stats_percentiles_match_numpy_linear():
    v = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    s = m.stats(v)
    assert s["mean"] == pytest.approx(22.0)
    assert s["p50"] == 3.0
    assert s["p99"] == pytest.approx(4 + 0.96 * 96)
    assert math.isnan(m.stats(np.array([]))["p50"])


def test_ttft_itl_tpot_with_multi_token_chunks():
    # send at 0; chunks at 100, 110 (3 tokens), 130; 5 tokens total; response ends at 140 ms
    req, ch = frames(rec(0, 0, [100, 110, 130], usage=5, end_ms=140))
    row = summarize_point(FACTS, req, ch, {}, warmup_frac=0.0)
    assert row["ttft_mean_ms"] == pytest.approx(100.0)
    # chunk gaps 10 and 20 ms
    assert row["itl_mean_ms"] == pytest.approx(15.0)
    # per token: (130 - 100) / (5 - 1)
    assert row["itl_token_mean_ms"] == pytest.approx(7.5)
    # TPOT: (E2E 140 - TTFT 100) / 4
    assert row["tpot_mean_ms"] == pytest.approx(10.0)
    assert row["tokens_per_chunk_mean"] == pytest.approx(5 / 3)


def test_role_only_and_empty_first_chunks_do_not_count_for_ttft():
    # the parser leaves role-only/empty events out of content_ns; first_event differs from first_content
    req, ch = frames(rec(0, 0, [40, 50], usage=2))
    req.loc[0, "first_event_ns"] = 5 * MS  # role-only prelude at 5 ms
    row = summarize_point(FACTS, req, ch, {}, warmup_frac=0.0)
    assert row["ttft_p50_ms"] == pytest.approx(40.0)


def test_one_token_output_has_ttft_but_no_itl_or_tpot():
    req, ch = frames(rec(0, 0, [30], usage=1, end_ms=31))
    row = summarize_point(FACTS, req, ch, {}, warmup_frac=0.0)
    assert row["ttft_p50_ms"] == pytest.approx(30.0)
    assert math.isnan(row["tpot_p50_ms"]) and math.isnan(row["itl_p50_ms"])
    assert row["output_tokens_total"] == 1


def test_failed_request_excluded_from_latency_counted_against_goodput():
    good1 = rec(0, 0, [10, 20], usage=2)
    good2 = rec(1, 5, [15, 25], usage=2)
    bad = rec(2, 10, [], error="http")
    late = rec(3, 20, [900, 910], usage=2)  # TTFT 880 ms: misses the SLO
    req, ch = frames(good1, good2, bad, late)
    row = summarize_point(FACTS, req, ch, {"ttft_p99": 0.5}, warmup_frac=0.0)
    assert row["errors"] == 1 and row["ok"] == 3
    assert row["error_rate"] == pytest.approx(0.25)
    assert row["error_kinds"] == "http:1"
    # window: first send (0) .. last send (20 ms); TTFT stats over ok requests sent in it
    assert row["window_s"] == pytest.approx(0.020)
    assert row["ttft_mean_ms"] == pytest.approx((10 + 10 + 880) / 3)
    assert row["slo_met"] is False
    # goodput: ok requests that ended inside the window and met TTFT <= 500 ms: good1 (ends 20) only;
    # good2 ends at 25 ms, after the window
    assert row["goodput_req_per_s"] == pytest.approx(1 / 0.020)


def test_throughput_counts_tokens_arriving_inside_the_window():
    # 4 requests sent at 0, 10, 20, 30 ms; warm-up 25 % drops the first: window 10..30 ms
    recs = [rec(i, 10 * i, [10 * i + 5, 10 * i + 15], usage=4) for i in range(4)]
    req, ch = frames(*recs)
    row = summarize_point(FACTS, req, ch, {}, warmup_frac=0.25)
    assert row["window_s"] == pytest.approx(0.020)
    # chunks are at 5,15 / 15,25 / 25,35 / 35,45 ms; those inside [10, 30] ms count
    times = sorted(t for r in recs for t in [c["t_ns"] / MS for c in r[1]])
    inside = [t for t in times if 10 <= t <= 30]
    assert row["output_tokens"] == pytest.approx(2 * len(inside))  # each chunk carries 4/2 tokens
    assert row["output_tok_per_s"] == pytest.approx(2 * len(inside) / 0.020)


def test_cancelled_requests_are_neither_good_nor_bad():
    req, ch = frames(rec(0, 0, [10, 20], usage=2), rec(1, 1, [], error="cancelled"))
    row = summarize_point(FACTS, req, ch, {}, warmup_frac=0.0)
    assert row["errors"] == 0 and row["cancelled"] == 1 and row["error_rate"] == 0


def test_output_tokens_fall_back_to_client_count_then_chunks():
    assert list(m.output_tokens([5, -1, -1], [9, 7, -1], [3, 3, 3])) == [5, 7, 3]


def test_untrusted_when_client_saturated():
    req, ch = frames(rec(0, 0, [10, 20], usage=2))
    facts = dict(FACTS, client={"cpu_frac_max_worker": 0.97, "lag_p99_ms": 0.3})
    row = summarize_point(facts, req, ch, {}, warmup_frac=0.0)
    assert row["trusted"] is False and "client CPU" in row["trust_reason"]


def test_invalid_limits_and_chunk_gaps_sorting():
    gaps = m.chunk_gaps(np.array([1, 0, 1, 0]), np.array([30, 5, 10, 20]) * MS)
    assert sorted(np.round(gaps * 1e3, 6)) == [15.0, 20.0]
