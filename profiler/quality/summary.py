"""Per-point quality columns of points.csv (appended after every other column, only in runs
measured with an eval set) and the cost of a useful response. Formulas (README "Quality"):

    <dim>_mean, _lo, _hi   mean score of the point's successful eval answers and its 95 % interval
                           (Clopper–Pearson when every score is 0 or 1, else mean ± 1.96·s/√n)
    useful                 eval answers of successful requests whose every dimension scored at or
                           above its threshold (a scorer error, or a failed request, is not useful)
    useful_rate            useful / eval requests not cancelled; useful_lo/_hi its Clopper–Pearson interval
    requests_in_window     successful requests that ended inside the steady window
    useful_in_window       Σ over those: 1 or 0 for a scored eval answer, useful_rate for a
                           synthetic request (not scored)
    usd_per_request        gpu_cost_usd / requests_in_window
    usd_per_useful_response gpu_cost_usd / useful_in_window
    hosted_usd_per_request mean over successful eval requests of (prompt_tokens·p_in +
                           completion_tokens·p_out) / 1e6 at the hosted model's list prices
    hosted_usd_per_useful_response hosted_usd_per_request / useful_rate
    judge_usd              (judge_input_tokens·p_in + judge_output_tokens·p_out) / 1e6
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profiler import metrics as m
from profiler.pointview import point_window
from profiler.quality.stats import clopper_pearson, mean_interval

BASE = ["eval_requests", "eval_ok", "eval_stop_frac", "eval_output_tokens_mean", "useful", "useful_rate",
        "useful_lo", "useful_hi", "requests_in_window", "useful_in_window",
        "e2e_p50_ms_eval", "e2e_p50_ms_useful", "e2e_p90_ms_eval", "e2e_p90_ms_useful"]
PER_DIM = ["mean", "lo", "hi", "n", "errors", "by_category", "by_template", "template_spread"]
COST = ["usd_per_request", "usd_per_useful_response", "hosted_model", "hosted_usd_per_request",
        "hosted_usd_per_useful_response", "judge_requests", "judge_input_tokens", "judge_output_tokens",
        "judge_s", "judge_usd"]


def quality_column_names(dims: list[str]) -> list[str]:
    return BASE + [f"{d}_{s}" for d in dims for s in PER_DIM] + COST


def _groups(s: pd.DataFrame, key: str) -> str:
    parts = []
    for g, sub in s.groupby(key, sort=True):
        v = sub["score"].dropna()
        parts.append(f"{g}:{v.mean():.4g}" if len(v) else f"{g}:nan")
    return ";".join(parts)


def dimension_columns(name: str, s: pd.DataFrame) -> dict:
    """<name>_* from the dimension's rows of successful eval answers."""
    mean, lo, hi = mean_interval(s["score"].to_numpy(dtype=float))
    by_t = s.groupby("template")["score"].mean()
    spread = float(by_t.max() - by_t.min()) if by_t.notna().sum() > 1 else math.nan
    return {f"{name}_mean": mean, f"{name}_lo": lo, f"{name}_hi": hi, f"{name}_n": int(s["score"].notna().sum()),
            f"{name}_errors": int((s["error"] != "").sum()),
            f"{name}_by_category": _groups(s.assign(category=s["category"].replace("", "-")), "category"),
            f"{name}_by_template": _groups(s, "template") if by_t.size > 1 else "",
            f"{name}_template_spread": spread}


def useful_mask(scores: pd.DataFrame, dims: list[dict]) -> pd.Series:
    """Per eval request (index): successful, and every dimension at or above its threshold."""
    ok = scores.groupby("request")["request_ok"].first()
    good = ok.copy()
    for d in dims:
        s = scores[scores["dimension"] == d["name"]].set_index("request")["score"]
        good &= (s.reindex(ok.index) >= d["threshold"]).fillna(False)
    return good


def quality_columns(facts: dict, req: pd.DataFrame, warmup: float, scores: pd.DataFrame, q: dict) -> dict:
    """The quality columns of one point (`q` is manifest["quality"])."""
    dims = q.get("dimensions") or []
    row: dict = {c: math.nan for c in quality_column_names([d["name"] for d in dims])}
    row.update(hosted_model=(q.get("hosted") or {}).get("key", ""), judge_requests=0)
    if not len(scores) or not len(req):
        return row
    err = req.set_index("request")["error"].fillna("")
    useful = useful_mask(scores, dims)
    not_cancelled = err.reindex(useful.index).fillna("") != "cancelled"
    n_eval, n_useful = int(not_cancelled.sum()), int((useful & not_cancelled).sum())
    first = scores.drop_duplicates("request").set_index("request")
    okr = first["request_ok"]
    row.update(eval_requests=n_eval, eval_ok=int(okr.sum()), useful=n_useful,
               eval_stop_frac=float((first["finish_reason"][okr] == "stop").mean()) if okr.any() else math.nan)
    if n_eval:
        row["useful_rate"] = n_useful / n_eval
        row["useful_lo"], row["useful_hi"] = clopper_pearson(n_useful, n_eval)
    for d in dims:
        s = scores[(scores["dimension"] == d["name"]) & scores["request_ok"]]
        row.update(dimension_columns(d["name"], s))
    row.update(_window(req, warmup, useful, row["useful_rate"]))
    row.update(_latency_tokens(req, useful, okr, q.get("hosted")))
    row.update(_judge(scores, q.get("judge_price")))
    return row


def _window(req: pd.DataFrame, warmup: float | None, useful: pd.Series, rate: float) -> dict:
    """The point's steady window, found exactly as PointView finds it (warmup None: MSER-5 on TTFT)."""
    send, end = req["send_ns"].to_numpy(np.int64), req["end_ns"].to_numpy(np.int64)
    ttft = m.per_request(req)["ttft"] if warmup is None and len(req) else np.empty(0)
    start, stop, _ = point_window(send, end, ttft, warmup)
    ok = (req["error"].fillna("") == "").to_numpy()
    inside = ok & (end >= start) & (end <= stop)
    ids = req["request"].to_numpy()[inside]
    scored = useful.reindex(ids)
    weight = np.where(scored.isna(), rate, scored.fillna(False).astype(float))
    return dict(requests_in_window=int(inside.sum()), useful_in_window=float(weight.sum()) if inside.any() else 0.0)


def _latency_tokens(req: pd.DataFrame, useful: pd.Series, okr: pd.Series, hosted: dict | None) -> dict:
    r = req.set_index("request").reindex(okr.index[okr.to_numpy(bool)])
    e2e = (r["end_ns"] - r["send_ns"]).to_numpy(float) / 1e6
    good = useful.reindex(r.index).fillna(False).to_numpy(bool)
    out = {}
    for q in (50, 90):
        out[f"e2e_p{q}_ms_eval"] = float(np.percentile(e2e, q)) if e2e.size else math.nan
        out[f"e2e_p{q}_ms_useful"] = float(np.percentile(e2e[good], q)) if good.any() else math.nan
    comp = r["usage_completion_tokens"].to_numpy(float)
    prompt = r["usage_prompt_tokens"].to_numpy(float)
    out["eval_output_tokens_mean"] = float(comp[comp >= 0].mean()) if (comp >= 0).any() else math.nan
    if hosted and ((comp >= 0) & (prompt >= 0)).any():
        has = (comp >= 0) & (prompt >= 0)
        out["hosted_usd_per_request"] = float(((prompt[has] * hosted["input"] + comp[has] * hosted["output"]) / 1e6).mean())
    return out


def _judge(scores: pd.DataFrame, price) -> dict:
    j = scores[scores["dimension"] == "judge"]
    if not len(j):
        return {}
    tin, tout = int(j["judge_input_tokens"].sum()), int(j["judge_output_tokens"].sum())
    return dict(judge_requests=int(j["request_ok"].sum()), judge_input_tokens=tin, judge_output_tokens=tout,
                judge_s=float(j["judge_s"].sum()),
                judge_usd=(tin * price[0] + tout * price[1]) / 1e6 if price else math.nan)


def add_quality_cost(points: pd.DataFrame) -> pd.DataFrame:
    """usd_per_request, usd_per_useful_response and the hosted per-useful price from the columns
    already in the table (gpu_cost_usd from profiler.cost): pure, so `inferprof cost` can reprice."""
    if "useful_in_window" not in points.columns:
        return points
    df = points.copy()
    cost = pd.to_numeric(df.get("gpu_cost_usd", pd.Series(math.nan, index=df.index)), errors="coerce")
    n_req = pd.to_numeric(df["requests_in_window"], errors="coerce")
    n_useful = pd.to_numeric(df["useful_in_window"], errors="coerce")
    df["usd_per_request"] = (cost / n_req).where(n_req > 0)
    df["usd_per_useful_response"] = (cost / n_useful).where(n_useful > 0)
    rate = pd.to_numeric(df["useful_rate"], errors="coerce")
    df["hosted_usd_per_useful_response"] = (pd.to_numeric(df["hosted_usd_per_request"], errors="coerce")
                                            / rate).where(rate > 0)
    return df


def as_useful_rates(points: pd.DataFrame) -> pd.DataFrame:
    """req_per_s and goodput_req_per_s counted in useful responses (× useful_rate), for sizing on
    useful responses per second; UserError for a run without quality columns."""
    from profiler.errors import UserError

    if "useful_rate" not in points.columns:
        raise UserError("--useful-rps needs a run measured with --eval (no useful_rate column)")
    df = points.copy()
    rate = pd.to_numeric(df["useful_rate"], errors="coerce")
    for col in ("req_per_s", "goodput_req_per_s"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce") * rate
    return df
