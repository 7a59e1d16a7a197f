"""Quality next to speed: eval files, scorers, the mock's answer mode, per-point quality and the
cost of a useful response (profiler/quality/, workloads/evalsets.py, backends/mock/answers.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import inferprof

from backends.mock.answers import reply
from profiler.errors import UserError
from profiler.mockproc import MockProcess
from profiler.quality.scorers import ScoreError, parse_scorer
from profiler.quality.stats import clopper_pearson, mean_interval, wilson
from profiler.quality.summary import add_quality_cost, quality_columns
from workloads.errors import WorkloadError
from workloads.evalsets import read_eval, read_templates, synthetic_items, write_jsonl

FAST_MOCK = ["--ttft-ms", "2", "--itl-ms", "1"]


# -- scorers -------------------------------------------------------------------------------------

def score(spec: str, answer: str, reference) -> float:
    return parse_scorer(spec)(answer, reference, {"id": "x", "prompt": "", "category": ""})


@pytest.mark.parametrize("spec,answer,reference,expected", [
    ("exact", " Paris ", "Paris", 1.0), ("exact", "paris", "Paris", 0.0),
    ("exact", "7", 7.0, 1.0), ("exact", "Lyon", ("Paris", "Lyon"), 1.0),
    ("normalized", "  PARIS!! ", "paris", 1.0), ("normalized", "Paris, France", "paris", 0.0),
    ("contains", "It is Paris, France.", "paris", 1.0), ("contains", "Parisian", "paris", 0.0),
    ("regex", "order #1234 ok", r"#\d{4}", 1.0), ("regex:^ok", "ok fine", "ignored", 1.0),
    ("numeric", "3 + 4 is 7.", 7.0, 1.0), ("numeric", "It is 7, not 8", 7.0, 0.0),
    ("numeric", "1,234.5 total", 1234.5, 1.0), ("numeric:0.5", "about 7.4", 7.0, 1.0),
    ("numeric:0.5", "about 7.6", 7.0, 0.0), ("numeric", "no number", 7.0, 0.0),
    ("choice", "Answer: C", "C", 1.0), ("choice", "The answer is (b).", "B", 1.0),
    ("choice", "D) 42", "D", 1.0), ("choice", "I pick A", "B", 0.0),
    ("json", '{"a": 1}', "", 1.0), ("json", "```json\n[1, 2]\n```", "", 1.0), ("json", "{a: 1}", "", 0.0),
])
def test_builtin_scorers(spec, answer, reference, expected):
    assert score(spec, answer, reference) == expected


def test_json_schema_scorer(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}))
    assert score(f"json:{schema}", '{"name": "x"}', "") == 1.0
    assert score(f"json:{schema}", '{"name": 3}', "") == 0.0


def test_a_scorer_that_raises_marks_the_answer(tmp_path, monkeypatch):
    (tmp_path / "myscorers.py").write_text("def half(answer, reference):\n    return 0.5\n"
                                           "def boom(answer, reference, item):\n    raise KeyError('x')\n"
                                           "def bad(answer, reference):\n    return 'yes'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert parse_scorer("myscorers:half")("a", "b", {}) == 0.5
    with pytest.raises(ScoreError, match="KeyError"):
        parse_scorer("myscorers:boom")("a", "b", {})
    with pytest.raises(ScoreError, match="not a bool or a number"):
        parse_scorer("myscorers:bad")("a", "b", {})
    with pytest.raises(ScoreError, match="not a number"):
        parse_scorer("numeric")("7", "seven", {})


@pytest.mark.parametrize("spec,message", [
    ("levenshtein", "unknown scorer"), ("numeric:x", "not a number"), ("regex:(", "bad regular expression"),
    ("json:/nonexistent.json", "cannot read the schema"), ("nosuchmodule_q:f", "cannot import"),
    ("json:", None),
])
def test_bad_scorer_specs_are_user_errors(spec, message):
    if message is None:
        parse_scorer(spec)
        return
    with pytest.raises(UserError, match=message):
        parse_scorer(spec)


def test_wilson_and_mean_intervals_match_the_fact_sheet():
    lo, hi = wilson(170, 200)
    assert (round(lo, 3), round(hi, 3)) == (0.794, 0.893)
    lo, hi = wilson(5, 1000)
    assert (round(lo, 5), round(hi, 5)) == (0.00214, 0.01165)
    lo, hi = clopper_pearson(5, 1000)
    assert (round(lo, 5), round(hi, 5)) == (0.00163, 0.01163)
    assert clopper_pearson(0, 20)[0] == 0.0 and clopper_pearson(20, 20)[1] == 1.0
    assert mean_interval(np.array([1.0] * 5 + [0.0] * 995))[1:] == clopper_pearson(5, 1000)
    mean, lo, hi = mean_interval(np.array([0.2, 0.4, 0.6, 0.8]))
    half = 1.959963984540054 * np.std([0.2, 0.4, 0.6, 0.8], ddof=1) / 2
    assert mean == pytest.approx(0.5) and lo == pytest.approx(0.5 - half) and hi == pytest.approx(0.5 + half)


# -- eval files ----------------------------------------------------------------------------------

@pytest.mark.parametrize("line,message", [
    ("not json", "not JSON"), ('{"reference": 1}', "exactly one of `prompt` or `messages`"),
    ('{"prompt": "q"}', "missing `reference`"), ('{"prompt": "q", "reference": true}', "`reference` must be"),
    ('{"prompt": "q", "reference": 1, "max_tokens": 0}', "`max_tokens`"),
    ('{"prompt": "q", "reference": 1, "colour": 1}', "unknown key"),
    ('{"messages": [{"role": "system", "content": "s"}], "reference": "x"}', "no user message"),
])
def test_bad_eval_files_name_file_and_line(tmp_path, line, message):
    f = tmp_path / "e.jsonl"
    f.write_text('{"prompt": "ok", "reference": "x"}\n' + line + "\n")
    with pytest.raises(WorkloadError, match=message) as e:
        read_eval(f)
    assert f"{f}:2" in str(e.value) and "\n" not in str(e.value)


def test_eval_items_and_templates(tmp_path):
    f = tmp_path / "e.jsonl"
    f.write_text('{"id": "a", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", '
                 '"content": "Capital of France?"}], "reference": ["Paris", "paris"], "category": "geo"}\n\n'
                 '{"prompt": "2+2?", "reference": 4, "max_tokens": 8, "scorer": "numeric"}\n')
    a, b = read_eval(f)
    assert a.prompt == "Capital of France?" and a.reference == ("Paris", "paris") and a.category == "geo"
    assert b.id == "1" and b.reference == 4.0 and b.max_tokens == 8 and b.scorer == "numeric"
    t = tmp_path / "t.txt"
    t.write_text("Q: {prompt}\n---\nAnswer briefly.\n{prompt}\n")
    assert read_templates(t) == ["Q: {prompt}", "Answer briefly.\n{prompt}"]
    t.write_text("no placeholder")
    with pytest.raises(WorkloadError, match="placeholder"):
        read_templates(t)


def test_synthetic_sets_are_seeded_and_right():
    a = synthetic_items("arithmetic", 50, 3)
    assert a == synthetic_items("arithmetic", 50, 3) and a != synthetic_items("arithmetic", 50, 4)
    assert all(reply(it["prompt"], 1.0, 0) == f"The answer is {it['reference']}." for it in a)
    c = synthetic_items("choice", 50, 3)
    assert all(reply(it["prompt"], 1.0, 0) == f"Answer: {it['reference']}" for it in c)
    assert all(reply(it["prompt"], 0.0, 0) != f"Answer: {it['reference']}" for it in c)
    assert {it["category"] for it in a} == {"add", "sub", "mul"}


# -- cost per useful response on a hand-computed point -------------------------------------------

def _hand_point():
    """6 requests, warm-up 0: sends at 0..5 s, the window is [0 s, 5 s] (first to last send).
    Requests 0-3 are eval answers (0, 1 useful; 2 wrong; 3 failed), 4-5 synthetic. Request 5 ends
    at 7 s, outside the window."""
    s = 1_000_000_000
    req = pd.DataFrame({"request": range(6), "send_ns": [0, s, 2 * s, 3 * s, 4 * s, 5 * s],
                        "end_ns": [s // 2, 2 * s, 3 * s, 4 * s, 5 * s, 7 * s],
                        "error": ["", "", "", "http", "", ""],
                        "usage_prompt_tokens": [10, 10, 20, -1, 10, 10],
                        "usage_completion_tokens": [5, 5, 10, -1, 5, 5]})
    rows = []
    for r, sc, ok in [(0, 1.0, True), (1, 1.0, True), (2, 0.0, True), (3, math.nan, False)]:
        rows.append({"point": 0, "request": r, "item": r, "template": 0, "category": "c", "dimension": "accuracy",
                     "score": sc, "error": "", "request_ok": ok, "finish_reason": "stop" if ok else "",
                     "judge_input_tokens": 0, "judge_output_tokens": 0, "judge_s": 0.0})
    q = {"dimensions": [{"name": "accuracy", "threshold": 0.5}], "hosted": {"key": "h", "input": 1.0, "output": 3.0}}
    return req, pd.DataFrame(rows), q


def test_cost_per_useful_response_equals_the_formula():
    req, scores, q = _hand_point()
    row = quality_columns({"point": 0}, req, 0.0, scores, q)
    assert row["eval_requests"] == 4 and row["useful"] == 2 and row["useful_rate"] == 0.5
    assert row["accuracy_mean"] == pytest.approx(2 / 3) and row["accuracy_n"] == 3
    # ended in the window [0, 5 s]: requests 0, 1, 2, 4 (3 failed, 5 ended at 7 s)
    assert row["requests_in_window"] == 4
    assert row["useful_in_window"] == pytest.approx(1 + 1 + 0 + 0.5)  # synthetic 4 counts useful_rate
    # hosted: eval requests 0-2 at $1/$3 per 1M: (10+15)e-6, (10+15)e-6, (20+30)e-6 -> mean 33.33e-6
    assert row["hosted_usd_per_request"] == pytest.approx((25 + 25 + 50) / 3 / 1e6)
    pts = add_quality_cost(pd.DataFrame([{**row, "gpu_cost_usd": 0.01}]))
    assert pts["usd_per_request"][0] == pytest.approx(0.01 / 4)
    assert pts["usd_per_useful_response"][0] == pytest.approx(0.01 / 2.5)
    assert pts["hosted_usd_per_useful_response"][0] == pytest.approx((100 / 3 / 1e6) / 0.5)
    assert row["e2e_p50_ms_useful"] == pytest.approx(np.percentile([500, 1000], 50))


def test_quality_cost_follows_a_new_gpu_price():
    req, scores, q = _hand_point()
    row = quality_columns({"point": 0}, req, 0.0, scores, q)
    pts = add_quality_cost(pd.DataFrame([{**row, "gpu_cost_usd": 0.03}]))
    assert pts["usd_per_useful_response"][0] == pytest.approx(0.03 / 2.5)


# -- the mock answers, over real sockets ---------------------------------------------------------

def _stream(url: str, body: dict) -> tuple[str, str]:
    from backends.http1 import parse_url
    from backends.openai import OpenAICodec
    from backends.records import RawStream
    from profiler.loadgen import open_connection
    from workloads.requests import RequestSpec

    codec = OpenAICodec(parse_url(url), "mock-llm", ignore_eos=bool(body.get("ignore_eos")))
    conn = open_connection(codec, codec.endpoint, 10)
    raw = RawStream()
    import time
    conn.stream(codec.encode(RequestSpec(0, body["prompt"], 4, body["max_tokens"], False)), raw,
                time.perf_counter_ns() + 10 * 10**9)
    conn.close()
    p = codec.parse(raw)
    assert not p.error, p.error_detail
    return p.text, p.finish_reason


def test_the_mock_answers_synthetic_items_and_stops():
    with MockProcess(["--accuracy", "1", *FAST_MOCK]) as right, MockProcess(["--accuracy", "0", *FAST_MOCK]) as wrong:
        assert _stream(right.url, {"prompt": "What is 6 * 7?", "max_tokens": 50}) == ("The answer is 42.", "stop")
        text, fin = _stream(wrong.url, {"prompt": "What is 6 * 7?", "max_tokens": 50})
        assert text != "The answer is 42." and text.startswith("The answer is") and fin == "stop"
        assert _stream(right.url, {"prompt": "What is 6 * 7?", "max_tokens": 2}) == ("The answer", "length")
        text, fin = _stream(right.url, {"prompt": "What is 6 * 7?", "max_tokens": 5, "ignore_eos": True})
        assert fin == "length" and "42" not in text  # the load's requests are untouched


# -- end to end: a user scorer, the judge, errors ------------------------------------------------

@pytest.fixture(scope="module")
def evalset(tmp_path_factory):
    d = tmp_path_factory.mktemp("quality")
    write_jsonl(synthetic_items("arithmetic", 12, 5), d / "arith.jsonl")
    (d / "userscorers.py").write_text(
        "def even_answer(answer, reference):\n"
        "    n = int(answer.split()[-1].rstrip('.'))\n"
        "    if n == int(reference) and n % 3 == 0:\n        raise ValueError('threes are unlucky')\n"
        "    return n % 2 == 0\n"
        "def always_raises(answer, reference):\n    raise RuntimeError('no')\n")
    (d / "templates.txt").write_text("{prompt}\n---\nPlease answer: {prompt}\n")
    return d


def _env(path: Path) -> dict:
    return {**os.environ, "PYTHONPATH": f"{path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_user_scorer_and_judge_end_to_end(evalset):
    items = synthetic_items("arithmetic", 12, 5)
    with MockProcess(["--accuracy", "0.7", *FAST_MOCK]) as server, MockProcess(["--accuracy", "0", *FAST_MOCK]) as judge:
        r = inferprof("sweep", "--url", server.url, "--concurrency", "2,4", "--requests", "24",
                      "--input-tokens", "8", "--output-tokens", "8", "--eval", str(evalset / "arith.jsonl"),
                      "--prompt-template", str(evalset / "templates.txt"),
                      "--scorer", "accuracy=numeric", "--scorer", "even=userscorers:even_answer",
                      "--useful", "accuracy=1,even=0", "--judge-url", judge.url, "--judge-price", "1,2",
                      "--out", str(evalset / "runs"), "--json", "--no-report", "--no-telemetry", "--gpu-price", "3",
                      env=_env(evalset))
    assert r.returncode == 0, r.stderr
    run_dir = Path(json.loads(r.stdout)["run_dir"])
    pts = pd.read_csv(run_dir / "points.csv")
    scores = pd.read_parquet(run_dir / "scores.parquet")
    assert list(pts["eval_requests"]) == [24, 24]  # 12 items x 2 templates, the whole point
    acc = scores[scores["dimension"] == "accuracy"].set_index(["point", "request"])["score"]
    judged = scores[scores["dimension"] == "judge"].set_index(["point", "request"])["score"]
    assert (acc == judged).all()  # the judge mock's verdict is the reference's presence in the answer
    assert (judged.groupby("point").mean().to_numpy() == pts["judge_mean"].to_numpy()).all()
    even = scores[scores["dimension"] == "even"]
    marked = even[even["error"] != ""]
    assert marked["error"].str.contains("ValueError: threes are unlucky").all()
    right_sevens = scores[(scores["dimension"] == "accuracy") & (scores["score"] == 1)
                          & scores["item"].map(lambda i: items[i]["reference"] % 3 == 0)]
    assert len(marked) == len(right_sevens) and list(pts["even_errors"]) == list(
        right_sevens.groupby("point").size().reindex(pts["point"], fill_value=0))
    assert len(marked) > 0  # the seeded set has right answers that are multiples of 3
    assert (pts["judge_requests"] == 24).all() and (pts["judge_input_tokens"] > 0).all()
    assert pts["judge_usd"].to_numpy() == pytest.approx(
        (pts["judge_input_tokens"] * 1 + pts["judge_output_tokens"] * 2).to_numpy() / 1e6)
    assert pts["accuracy_by_template"].str.count(":").eq(2).all()
    assert np.allclose(pts["usd_per_useful_response"], pts["gpu_cost_usd"] / pts["useful_in_window"], rtol=1e-5)
    cost = inferprof("cost", str(run_dir), "--gpu-price", "6", "--json")
    assert cost.returncode == 0, cost.stderr
    repriced = pd.DataFrame(json.loads(cost.stdout)["points"])
    assert np.allclose(repriced["usd_per_useful_response"], 2 * pts["usd_per_useful_response"], rtol=1e-4)
    size = inferprof("size", str(run_dir), "--useful-rps", "10", "--gpu-price", "6", "--json")
    assert size.returncode == 0, size.stderr
    sizing = json.loads(size.stdout)["sizing"]
    assert sizing["capacity_per_gpu"] == pytest.approx((pts["req_per_s"] * pts["useful_rate"]).max(), rel=1e-4)
    rerun = inferprof("report", str(run_dir), "--format", "csv")
    assert rerun.returncode == 0, rerun.stderr
    assert pd.read_csv(run_dir / "points.csv").equals(pts)


def _one_line_exit_2(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("inferprof: error:")]
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("extra,needle", [
    (["--scorer", "accuracy=levenshtein"], "unknown scorer 'levenshtein'"),
    (["--scorer", "accuracy"], "use NAME=SCORER"),
    (["--scorer", "x=nosuchpkg_zz.mod:f"], "cannot import nosuchpkg_zz.mod"),
    (["--useful", "speed=1"], "not a dimension"),
])
def test_bad_scorer_specs_exit_2(evalset, extra, needle):
    with MockProcess(["--accuracy", "1", *FAST_MOCK]) as server:
        r = inferprof("sweep", "--url", server.url, "--concurrency", "1", "--requests", "4",
                      "--eval", str(evalset / "arith.jsonl"), *extra, "--out", str(evalset / "bad"),
                      "--no-report", "--no-telemetry", env=_env(evalset))
    _one_line_exit_2(r, needle)


def test_bad_eval_file_exits_2(evalset):
    bad = evalset / "bad.jsonl"
    bad.write_text('{"prompt": "q", "reference": 1}\n{"prompt": 3, "reference": 1}\n')
    with MockProcess(["--accuracy", "1", *FAST_MOCK]) as server:
        r = inferprof("sweep", "--url", server.url, "--concurrency", "1", "--requests", "4", "--eval", str(bad),
                      "--out", str(evalset / "bad"), "--no-report", "--no-telemetry")
    _one_line_exit_2(r, f"{bad}:2: `prompt` must be a non-empty string")


def test_a_function_that_always_raises_and_a_judge_without_score_exit_2(evalset):
    with MockProcess(["--accuracy", "1", *FAST_MOCK]) as server, MockProcess(FAST_MOCK) as mute:
        common = ["--url", server.url, "--concurrency", "1", "--requests", "4", "--eval", str(evalset / "arith.jsonl"),
                  "--eval-sample", "3", "--no-report", "--no-telemetry"]
        r = inferprof("sweep", *common, "--scorer", "acc=userscorers:always_raises",
                      "--out", str(evalset / "raises"), env=_env(evalset))
        _one_line_exit_2(r, "scorer acc (userscorers:always_raises) failed on all 3 answers of point 0: "
                            "RuntimeError: no")
        kept = list((evalset / "raises").iterdir())
        assert len(kept) == 1 and (kept[0] / "points.csv").exists()  # the measured point is kept
        r = inferprof("sweep", *common, "--judge-url", mute.url, "--out", str(evalset / "mute"))
        _one_line_exit_2(r, "returned no score")
        assert not (evalset / "mute").exists()  # checked before any point ran
