"""An eval set under load against the REAL vLLM CPU server (tiny random Llama; see conftest.py).

The random model cannot do arithmetic, so the point is the pipeline: eval requests mixed into a
3-point sweep stop naturally (no ignore_eos), at temperature 0, and their stop reasons and token
counts agree with what the server reported.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from vllm_helpers import run_sweep

from workloads.evalsets import synthetic_items

pytestmark = pytest.mark.vllm
MAX_TOKENS = 12


@pytest.fixture(scope="module")
def eval_run(vllm_url, tmp_path_factory):
    d = tmp_path_factory.mktemp("vllm_quality")
    items = synthetic_items("arithmetic", 5, 1)
    for it in items:
        it["max_tokens"] = MAX_TOKENS
    items.append({"id": "chat", "messages": [{"role": "system", "content": "Answer with a number."},
                                             {"role": "user", "content": "What is 2 + 2?"}],
                  "reference": 4, "category": "chat", "max_tokens": MAX_TOKENS, "scorer": "numeric"})
    (d / "eval.jsonl").write_text("".join(json.dumps(it) + "\n" for it in items))
    run_dir = run_sweep(vllm_url, d, "--concurrency", "1,2,4", "--requests", "8", "--input-tokens", "16",
                        "--output-tokens", "8", "--eval", str(d / "eval.jsonl"), "--no-report")
    return run_dir


def test_eval_set_runs_at_every_point_with_natural_stopping(eval_run):
    pts = pd.read_csv(eval_run / "points.csv")
    req = pd.read_parquet(eval_run / "requests.parquet")
    ans = pd.read_parquet(eval_run / "answers.parquet")
    assert list(pts["eval_requests"]) == [6, 6, 6] and list(pts["requests"]) == [8, 8, 8]
    assert (req["error"].fillna("") == "").all()
    merged = ans.merge(req, on=["point", "request"])
    assert len(merged) == 18
    # stop reasons are the server's: "stop" ends early, "length" at exactly max_tokens
    assert set(merged["finish_reason"]) <= {"stop", "length"}
    length = merged[merged["finish_reason"] == "length"]
    assert (length["usage_completion_tokens"] == MAX_TOKENS).all()
    stopped = merged[merged["finish_reason"] == "stop"]
    assert (stopped["usage_completion_tokens"] < MAX_TOKENS).all()
    assert (merged["max_tokens"] == MAX_TOKENS).all()
    # the synthetic requests of the same points still ran with ignore_eos to their full length
    synthetic = req.merge(ans[["point", "request"]], how="left", indicator=True)
    synthetic = synthetic[synthetic["_merge"] == "left_only"]
    assert len(synthetic) == 6 and (synthetic["usage_completion_tokens"] == synthetic["max_tokens"]).all()
    assert pts["eval_stop_frac"].tolist() == merged.groupby("point")["finish_reason"].apply(
        lambda s: (s == "stop").mean()).tolist()
    assert pts["eval_output_tokens_mean"].tolist() == pytest.approx(
        merged.groupby("point")["usage_completion_tokens"].mean().tolist())


def test_temperature_zero_gives_the_same_answer_at_every_point(eval_run):
    ans = pd.read_parquet(eval_run / "answers.parquet")
    per_item = ans.groupby("item")["text"].nunique()
    assert len(per_item) == 6 and (per_item == 1).all(), ans.sort_values("item")[["point", "item", "text"]]
    assert (ans["text"].str.len() > 0).all()


def test_the_random_model_scores_near_zero(eval_run):
    pts = pd.read_csv(eval_run / "points.csv")
    scores = pd.read_parquet(eval_run / "scores.parquet")
    assert (pts["accuracy_n"] == 6).all() and (pts["accuracy_errors"] == 0).all()
    assert (pts["accuracy_mean"] <= 1 / 6).all()
    assert "chat" in set(scores["category"]) and set(scores["category"]) <= {"add", "sub", "mul", "chat"}
    assert (pts["useful_rate"] == pts["accuracy_mean"]).all()
