"""Scoring a finished point: its eval answers (answers.parquet/) scored on every dimension,
judge included, and written to scores.parquet/point-PPPPP.parquet, one row per (answer,
dimension). Runs in the sweep's parent after the point's load has ended. The stored scores are
what points.csv's quality columns are computed from, so `inferprof report` reproduces them
without calling a judge or a user function again."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from profiler import runfolder as rf
from profiler.quality.plan import QualityPlan
from profiler.quality.scorers import ScoreError

SCORES = "scores.parquet"


def read_point_files(run_dir: Path, folder: str, point: int, columns: list[str] | None = None) -> pd.DataFrame:
    files = sorted((Path(run_dir) / folder).glob(f"point-{point:05d}-*.parquet")) + \
        sorted((Path(run_dir) / folder).glob(f"point-{point:05d}.parquet"))
    if not files:
        return pd.DataFrame()
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files]).to_pandas()


def point_answers(run_dir: Path, point: int) -> pd.DataFrame:
    """The point's eval answers with their request's error class and token counts."""
    ans = read_point_files(run_dir, rf.ANSWERS, point)
    if not len(ans):
        return ans
    req = read_point_files(run_dir, rf.REQUESTS, point,
                           ["request", "error", "usage_prompt_tokens", "usage_completion_tokens"])
    return ans.merge(req, on="request", how="left").sort_values("request", kind="stable").reset_index(drop=True)


def score_point(plan: QualityPlan, run_dir: Path, point: int) -> str:
    """Score and store the point's answers; returns "" or a one-line reason the run must stop
    (a scorer that failed on every answer, a judge that scored none)."""
    ans = point_answers(run_dir, point)
    if not len(ans):
        return ""
    ok = (ans["error"].fillna("") == "").to_numpy()
    rows, fatal = [], ""
    for d, dim in enumerate(plan.dims):
        if dim.scorer.kind == "judge":
            scores, errors, extra = _judge(plan, ans, ok)
        else:
            scores, errors, extra = _local(plan, d, ans, ok)
        failed = sum(bool(e) for e, o in zip(errors, ok, strict=True) if o)
        if ok.any() and failed == int(ok.sum()) and not fatal:
            first = next(e for e, o in zip(errors, ok, strict=True) if o and e)
            fatal = f"scorer {dim.name} ({dim.scorer.spec}) failed on all {failed} answers of point {point}: {first}"
        rows.append(_frame(plan, ans, ok, dim.name, scores, errors, extra, point))
    table = pa.Table.from_pandas(pd.concat(rows, ignore_index=True), preserve_index=False)
    folder = Path(run_dir) / SCORES
    folder.mkdir(exist_ok=True)
    pq.write_table(table, folder / f"point-{point:05d}.parquet", compression="zstd")
    return fatal


def _local(plan: QualityPlan, d: int, ans: pd.DataFrame, ok) -> tuple[list, list, dict]:
    scores, errors = [], []
    for k, row in enumerate(ans.itertuples(index=False)):
        if not ok[k]:
            scores.append(math.nan)
            errors.append("")
            continue
        item = plan.items[int(row.item)]
        try:
            scores.append(plan.scorer_for(d, item)(row.text, item.reference,
                                                   {"id": item.id, "prompt": item.prompt, "category": item.category}))
            errors.append("")
        except ScoreError as e:
            scores.append(math.nan)
            errors.append(str(e)[:200])
    return scores, errors, {}


def _judge(plan: QualityPlan, ans: pd.DataFrame, ok) -> tuple[list, list, dict]:
    idx = [k for k in range(len(ans)) if ok[k]]
    triples = [(plan.items[int(ans["item"][k])].prompt, str(ans["text"][k]),
                plan.items[int(ans["item"][k])].reference) for k in idx]
    replies = dict(zip(idx, plan.judge.ask_all(triples), strict=True)) if idx else {}
    scores = [replies[k].score if k in replies and replies[k].score is not None else math.nan for k in range(len(ans))]
    errors = [replies[k].error[:200] if k in replies else "" for k in range(len(ans))]
    extra = {"judge_input_tokens": [replies[k].prompt_tokens if k in replies else 0 for k in range(len(ans))],
             "judge_output_tokens": [replies[k].completion_tokens if k in replies else 0 for k in range(len(ans))],
             "judge_s": [replies[k].seconds if k in replies else 0.0 for k in range(len(ans))]}
    return scores, errors, extra


def _frame(plan, ans, ok, name, scores, errors, extra, point) -> pd.DataFrame:
    n = len(ans)
    return pd.DataFrame({
        "point": [point] * n, "request": ans["request"].to_numpy(), "item": ans["item"].to_numpy(),
        "template": ans["template"].to_numpy(),
        "category": [plan.items[int(i)].category for i in ans["item"]], "dimension": [name] * n,
        "score": pd.array(scores, dtype="float64"), "error": errors, "request_ok": ok,
        "finish_reason": ans["finish_reason"].fillna("").to_numpy(),
        "judge_input_tokens": extra.get("judge_input_tokens", [0] * n),
        "judge_output_tokens": extra.get("judge_output_tokens", [0] * n),
        "judge_s": extra.get("judge_s", [0.0] * n)})
