"""Production-like traffic against a REAL vLLM server (CPU build, tiny random Llama; conftest.py):
a ShareGPT-format file, shared prefixes (vLLM's own prefix-cache hit counter grows as predicted)
and a 3-turn session. No test asserts on speed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from vllm_helpers import REPO, run_sweep, sample_sum, scrape

from workloads import datasets
from workloads.prompts import load_tokenizer

pytestmark = pytest.mark.vllm

SAMPLES = REPO / "workloads" / "data" / "samples"
BLOCK = 128  # vLLM's CPU KV block (its cache_config_info metric says block_size="128")
HITS, QUERIES = "vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"


def _tokenizer_dir() -> Path:
    cache = Path(os.environ.get("INFERPROF_CACHE", Path.home() / ".cache" / "inferprof"))
    return cache / "vllm-cpu" / "tiny-model"


def _facts(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "points.jsonl").read_text().splitlines()]


def test_sharegpt_file_end_to_end(vllm_url, tmp_path):
    tok = _tokenizer_dir()
    run_dir = run_sweep(vllm_url, tmp_path, "--dataset", f"{SAMPLES / 'sharegpt.json'}:sharegpt", "--concurrency", "2",
                        "--requests", "8", "--tokenizer", str(tok), "--seed", "3", "--no-report")
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 8 and (req.error == "").all()
    _, entries = datasets.load_entries(str(SAMPLES / "sharegpt.json"))
    pool = datasets.select(entries, load_tokenizer(tok).count, datasets.LengthFilter(), seed=3)
    # max_tokens = the recorded answer's token count; the tiny model always generates all of them
    assert sorted(req.max_tokens) == sorted(n_out for _, _, n_out in pool[:8])
    assert (req.usage_completion_tokens == req.max_tokens).all()
    # the chat template only adds tokens to the exact prompt counts
    assert sorted(req.input_tokens) == sorted(n_in for _, n_in, _ in pool[:8])
    assert (req.usage_prompt_tokens > req.input_tokens).all()


def test_shared_prefixes_grow_vllms_hit_counter_as_predicted(vllm_url, tmp_path):
    # 2 groups of a 520-token prefix, 12 requests one at a time (completions: no chat template).
    # Every request after its group's first finds the prefix's first 4 whole 128-token blocks
    # (520 tokens hold 4 blocks whether or not vLLM adds a BOS token), so vLLM's hits counter
    # grows by (12 - 2) x 512 tokens, and its queries counter by the prompts' tokens.
    # a fresh seed: the server's cache outlives a run, and the same seed rebuilds the same prompts
    seed = str(time.time_ns() % 1_000_000)
    before = scrape(vllm_url)
    run_dir = run_sweep(vllm_url, tmp_path, "--api", "completions", "--prefix-groups", "2", "--prefix-tokens", "520",
                        "--input-tokens", "40", "--output-tokens", "4", "--concurrency", "1", "--requests", "12",
                        "--tokenizer", str(_tokenizer_dir()), "--seed", seed, "--no-report")
    after = scrape(vllm_url)
    req = pd.read_parquet(run_dir / "requests.parquet")
    assert len(req) == 12 and (req.error == "").all()
    assert sample_sum(after, HITS) - sample_sum(before, HITS) == (12 - 2) * 4 * BLOCK
    # the sweep's own per-point reading of the same counters (preflight request excluded)
    server = _facts(run_dir)[0]["server_prefix_cache"]
    assert server["hits"] == (12 - 2) * 4 * BLOCK
    assert server["queries"] == req.usage_prompt_tokens.sum()
    pts = pd.read_csv(run_dir / "points.csv")
    assert pts.prefix_shareable_frac[0] == pytest.approx(10 * 520 / (12 * 560))
    assert pts.server_prefix_hit_rate[0] == pytest.approx(5120 / req.usage_prompt_tokens.sum())


def test_three_turn_sessions_carry_the_answers(vllm_url, tmp_path):
    run_dir = run_sweep(vllm_url, tmp_path, "--turns", "3", "--concurrency", "2", "--requests", "6",
                        "--input-tokens", "32", "--output-tokens", "12", "--think-time", "0.05",
                        "--tokenizer", str(_tokenizer_dir()), "--no-report")
    req = pd.read_parquet(run_dir / "requests.parquet").sort_values("request")
    assert len(req) == 6 and (req.error == "").all()  # 2 sessions x 3 turns
    for s in range(2):
        turns = req[req.request // 3 == s]
        prompt = turns.usage_prompt_tokens.to_numpy()
        # each turn adds the previous answer (12 generated tokens, re-tokenized) and 32 new tokens
        assert (prompt[1:] - prompt[:-1] >= 32 + 1).all(), prompt
        assert (turns.send_ns.to_numpy()[1:] > turns.end_ns.to_numpy()[:-1]).all()
    table = pd.read_csv(run_dir / "turns.csv")
    assert list(table.turn) == [0, 1, 2] and table.input_tokens_mean.is_monotonic_increasing
