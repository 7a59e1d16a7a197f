"""Production-like traffic end to end on the mock server (its own process, real sockets): each
figure moves the right way. Directions and ratios only, never timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from profiler.mockproc import MockProcess
from workloads import datasets

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "workloads" / "data" / "samples"
MOCK = ["--preset", "h100-llama3-8b"]


def sweep(url: str, out: Path, *args: str) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    r = subprocess.run([sys.executable, "-m", "profiler.cli", "sweep", "--url", url, "--out", str(out), "--json",
                        "--no-report", "--no-nvml", *args], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path(json.loads(r.stdout.splitlines()[-1])["run_dir"])
    return run_dir, pd.read_csv(run_dir / "points.csv"), pd.read_parquet(run_dir / "requests.parquet")


@pytest.fixture(scope="module")
def mock():
    with MockProcess(MOCK) as m:
        yield m


def test_prefix_cache_hit_rate_follows_the_shared_tokens_and_ttft_falls(mock, tmp_path):
    # 1024-token prompts: first with nothing shared, then 960 tokens shared by 2 groups
    _, cold, _ = sweep(mock.url, tmp_path, "--concurrency", "2", "--requests", "24", "--input-tokens", "1024",
                       "--output-tokens", "4", "--warmup", "0")
    _, warm, _ = sweep(mock.url, tmp_path, "--concurrency", "2", "--requests", "24", "--prefix-groups", "2",
                       "--prefix-tokens", "960", "--input-tokens", "64", "--output-tokens", "4", "--warmup", "0")
    assert cold["server_prefix_hit_rate"][0] == 0 and "prefix_shareable_frac" not in cold
    share = warm["prefix_shareable_frac"][0]
    assert share == pytest.approx((24 - 2) * 960 / (24 * 1024))
    # 960 is a whole number of the mock's 16-token blocks: the cache finds exactly what was shareable
    assert warm["server_prefix_hit_rate"][0] == pytest.approx(share, abs=1e-5)
    assert warm["ttft_p50_ms"][0] < cold["ttft_p50_ms"][0]


def test_trace_replay_at_twice_the_speed_doubles_the_achieved_rate(mock, tmp_path):
    trace = SAMPLES / "azure_conv_2023.csv"
    run_dir, pts, req = sweep(mock.url, tmp_path, "--trace", str(trace), "--trace-speed", "1,2",
                              "--trace-window", "0,4", "--output-tokens", "8")
    assert list(pts["trace_speed"]) == [1, 2]
    assert pts["rate_target"][1] == pytest.approx(2 * pts["rate_target"][0], rel=1e-4)
    assert pts["rate_achieved"][1] / pts["rate_achieved"][0] == pytest.approx(2.0, rel=0.1)
    assert (pts["trace_lag_p99_ms"] >= 0).all()
    # each request leaves at its trace time / speed: the schedule is the trace's
    p0 = req[req.point == 0].sort_values("request")
    p1 = req[req.point == 1].sort_values("request")
    t0 = (p0.scheduled_ns - p0.scheduled_ns.min()).to_numpy()
    t1 = (p1.scheduled_ns - p1.scheduled_ns.min()).to_numpy()
    assert len(t0) == len(t1) > 20 and abs(t0 - 2 * t1).max() < 1e6  # ns rounding only
    facts = [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]
    assert facts[1]["trace"]["speed"] == 2


def test_sessions_send_the_real_answers_and_the_input_grows_each_turn(mock, tmp_path):
    run_dir, pts, req = sweep(mock.url, tmp_path, "--concurrency", "2", "--requests", "12", "--turns", "3",
                              "--input-tokens", "40", "--output-tokens", "16", "--think-time", "0.02")
    assert (req.error == "").all() and len(req) == 12
    turn = req.request % 3
    # the mock counts words: each turn adds the 16-word answer and 40 new words
    assert sorted(set(req.usage_prompt_tokens[turn == 0])) == [40]
    assert sorted(set(req.usage_prompt_tokens[turn == 1])) == [96]
    assert sorted(set(req.usage_prompt_tokens[turn == 2])) == [152]
    # a session's turns follow one another (the next is built from the previous answer)
    for s in range(4):
        rows = req[req.request // 3 == s].sort_values("request")
        assert (rows.send_ns.to_numpy()[1:] > rows.end_ns.to_numpy()[:-1]).all()
    # the history is what a prefix cache can serve: 2 turns of 3 reuse (40+16) and (96+16) tokens
    assert pts["prefix_shareable_frac"][0] == pytest.approx((56 + 112) / (40 + 96 + 152))
    assert 0 < pts["server_prefix_hit_rate"][0] <= pts["prefix_shareable_frac"][0]
    table = pd.read_csv(run_dir / "turns.csv")
    assert list(table.turn) == [0, 1, 2] and list(table.input_tokens_mean) == [40, 96, 152]
    assert (run_dir / "plots" / "ttft_by_turn.png").stat().st_size > 0


def test_sharegpt_prompts_and_recorded_answer_lengths(mock, tmp_path):
    _, pts, req = sweep(mock.url, tmp_path, "--dataset", str(SAMPLES / "sharegpt.json"), "--concurrency", "4",
                        "--requests", "16", "--seed", "7")
    _, entries = datasets.load_entries(str(SAMPLES / "sharegpt.json"))
    pool = datasets.select(entries, datasets.word_count, datasets.LengthFilter(), seed=7)
    want = sorted((n_in, n_out) for _, n_in, n_out in pool[:16])
    got = sorted(zip(req.usage_prompt_tokens, req.usage_completion_tokens, strict=True))
    assert got == want and (req.max_tokens == req.usage_completion_tokens).all()


@pytest.fixture(scope="module")
def reasoning_mock():
    with MockProcess([*MOCK, "--reasoning-tokens", "24", "--reasoning-field", "reasoning"]) as m:
        yield m


def test_reasoning_comes_before_the_answer(reasoning_mock, tmp_path):
    _, pts, req = sweep(reasoning_mock.url, tmp_path, "--concurrency", "2", "--requests", "12",
                        "--output-tokens", "40")
    ok = req[req.error == ""]
    assert len(ok) == 12
    assert (ok.first_answer_ns > ok.first_content_ns).all()  # TTFT: first content of any kind
    assert (ok.reasoning_tokens == 24).all() and (ok.reasoning_chunk_tokens == 24).all()
    assert pts["ttft_p50_ms"][0] < pts["ttfa_p50_ms"][0]
    assert pts["reasoning_tokens_mean"][0] == 24 and pts["reasoning_frac"][0] == pytest.approx(24 / 40)
