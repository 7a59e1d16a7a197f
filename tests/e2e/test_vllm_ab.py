"""`inferprof ab` against the REAL vLLM CPU server (tiny random Llama; see conftest.py).

One server, two settings of the same model: arm A asks for 4 output tokens, arm B for 32 (the
same prompts; ignore_eos keeps the lengths). E2E must come out lower for A, decided by the
sequential test within the budget, with every request of both arms recorded.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from vllm_helpers import REPO, child_env, inferprof_cmd, tail

pytestmark = pytest.mark.vllm


def test_ab_two_settings_of_one_model(vllm_url, tmp_path):
    cmd = [*inferprof_cmd(), "ab", "--a", vllm_url, "--b", vllm_url, "--metric", "e2e", "--input-tokens", "16",
           "--a-output-tokens", "4", "--b-output-tokens", "32", "--concurrency", "2", "--round", "10",
           "--budget", "80", "--min-pairs", "20", "--out", str(tmp_path), "--json"]
    r = subprocess.run(cmd, cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, tail(r.stderr)
    res = json.loads(r.stdout)
    assert res["state"] == "decided" and res["mean"] < 0, res
    ab = Path(res["ab_dir"])
    pairs = pd.read_csv(ab / "pairs.csv")
    assert (pairs["a"] < pairs["b"]).mean() > 0.8
    for arm, tokens in (("A", 4), ("B", 32)):
        req = pd.read_parquet(ab / arm / "requests.parquet")
        assert (req["error"] == "").all() and (req["usage_completion_tokens"] == tokens).all()
    info = json.loads((ab / "ab.json").read_text())
    assert info["arms"]["A"]["url"] == info["arms"]["B"]["url"]
