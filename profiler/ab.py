"""`inferprof ab`: one workload to two targets A and B, in rounds, under an always-valid
sequential test (profiler/choose/sequential.py) of the paired difference of a per-request metric.

Each round builds one set of requests (new prompts each round, the same for both arms: pairs are
(round, request index)) and sends it to A and to B, one arm after the other at the same
concurrency, the order drawn at random per round (seeded), so drift of the machine falls on both
arms alike. Each round is one point of each arm's run folder (ab-…/A, ab-…/B: ordinary run folders
`report`/`compare` read; `compare ab-…` reads both). After each round the test sees every pair so
far and the run stops on a decision, on a difference shown smaller than --min-effect, or when the
budget of pairs is spent. ab.json holds the settings, every round's state and the result, with the
pairs a fixed-sample test of the same power would have needed; pairs.csv the per-request values.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from profiler import runfolder as rf
from profiler.choose.sequential import RUNNING, SeqConfig, evaluate, fixed_n
from profiler.endpoint import Target, build_workload, make_codec, preflight, resolve_model
from profiler.errors import UserError
from profiler.loadgen import WorkerPool, default_workers
from profiler.points import summarize_run
from profiler.quality.scoring import read_point_files
from profiler.recorder import RecorderPool
from profiler.spec import SweepSpec
from workloads.lengths import parse_length
from workloads.requests import build_requests

METRICS = ("ttft", "e2e", "tpot")
AB_JSON, PAIRS_CSV = "ab.json", "pairs.csv"


def parse_target(text: str) -> Target:
    """URL[#MODEL] -> Target (the model checked against the server later)."""
    url, _, model = text.partition("#")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"invalid target {text!r}: use URL[#MODEL], e.g. http://127.0.0.1:8000#my-model")
    return Target(url=url.rstrip("/"), model=model)


@dataclass(frozen=True)
class Arm:
    name: str  # "A" or "B"
    target: Target
    output_tokens: str


def request_values(req: pd.DataFrame, metric: str) -> pd.Series:
    """Per successful request (index: request), the metric in ms: TTFT = first content − send,
    E2E = end − send, TPOT = (E2E − TTFT)/(output tokens − 1)."""
    ok = req[(req["error"].fillna("") == "") & (req["first_content_ns"] > 0)].set_index("request")
    ttft = (ok["first_content_ns"] - ok["send_ns"]) / 1e6
    e2e = (ok["end_ns"] - ok["send_ns"]) / 1e6
    if metric == "ttft":
        return ttft
    if metric == "e2e":
        return e2e
    out = ok["usage_completion_tokens"].where(ok["usage_completion_tokens"] > 0, ok["n_content_chunks"])
    return ((e2e - ttft) / (out - 1)).where(out > 1).dropna()


def round_pairs(run_a: Path, run_b: Path, point: int, metric: str) -> pd.DataFrame:
    """(request, a, b) for the requests of a round both arms completed."""
    a = request_values(read_point_files(run_a, rf.REQUESTS, point), metric)
    b = request_values(read_point_files(run_b, rf.REQUESTS, point), metric)
    both = a.index.intersection(b.index)
    return pd.DataFrame({"round": point, "request": both, "a": a[both].to_numpy(), "b": b[both].to_numpy()})


@dataclass(frozen=True)
class AbPlan:
    metric: str = "ttft"
    concurrency: int = 4
    round_requests: int = 20  # requests per arm per round
    seed: int = 0
    seq: SeqConfig = SeqConfig()


def _open_arm(arm: Arm, ab_dir: Path, spec: SweepSpec, plan: AbPlan) -> dict:
    """Resolve the target, check it answers, start its run folder."""
    target = resolve_model(arm.target)
    codec = make_codec(target)
    pre = preflight(codec, build_requests(1, parse_length("8"), parse_length("2"), plan.seed))
    run_dir = ab_dir / arm.name
    run_dir.mkdir()
    arm_spec = replace(spec, output_tokens=arm.output_tokens)
    manifest = rf.start_manifest(run_dir, command=sys.argv, endpoint={"url": target.url, "backend": target.backend,
                                 "api": target.api, "model": target.model}, preflight=pre,
                                 spec=arm_spec.to_dict(), slos={}, notices=[], ab={"arm": arm.name},
                                 run_id=f"{ab_dir.name}/{arm.name}")
    return {"arm": arm, "target": target, "codec": codec, "dir": run_dir, "spec": arm_spec,
            "writer": rf.RunWriter(run_dir), "manifest": manifest}


def _run_round(st: dict, pools, r: int, plan: AbPlan, notices: list[str]) -> None:
    """Round r of one arm: one point measured and recorded by the sweep's own point machinery
    (profiler.sweep: the same load generator, recorders and run-folder writer as `sweep`)."""
    from profiler import sweep

    reqs = build_workload(st["spec"], st["target"], plan.round_requests, notices, seed=plan.seed + 1009 * r)
    payloads = [st["codec"].encode(q) for q in reqs]
    facts, results, recorded = sweep._run_point((*pools, st["writer"]), st["spec"], st["target"], st["codec"],
                                                reqs, payloads, r, plan.concurrency)
    sweep._record_point(st["writer"], facts, recorded, None)
    rf.write_points_csv(st["dir"], summarize_run(st["dir"]))
    sweep._stop_if_broken(results, recorded, r, st["dir"])


def run_ab(arms: tuple[Arm, Arm], spec: SweepSpec, plan: AbPlan, out_dir: str | Path, log=print) -> Path:
    """Rounds until the test stops (module docstring); returns the ab folder."""
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    ab_dir = rf.new_run_dir(base)
    ab_dir = ab_dir.rename(ab_dir.with_name("ab-" + ab_dir.name))
    states = [_open_arm(a, ab_dir, spec, plan) for a in arms]
    order_rng = random.Random(plan.seed)
    pool = WorkerPool(spec.workers or default_workers("concurrency", plan.concurrency))
    pairs: list[pd.DataFrame] = []
    info = {"metric": plan.metric, "plan": {**asdict(plan), "seq": asdict(plan.seq)},
            "arms": {s["arm"].name: {"url": s["target"].url, "model": s["target"].model,
                                     "output_tokens": s["arm"].output_tokens} for s in states}, "rounds": []}
    try:
        recorders = RecorderPool(len(pool))
        try:
            max_rounds = 2 * math.ceil(plan.seq.max_n / plan.round_requests)  # bounded even when requests fail
            for r in range(max_rounds):
                order = order_rng.sample(states, 2)
                for st in order:
                    _run_round(st, (pool, recorders), r, plan, [])
                pairs.append(round_pairs(states[0]["dir"], states[1]["dir"], r, plan.metric))
                if not len(pairs[-1]):  # a failing arm must not spin through the rounds
                    raise UserError(f"round {r}: no request succeeded on both arms (see {ab_dir}/A and "
                                    f"{ab_dir}/B requests.parquet); measured rounds are kept in {ab_dir}")
                res = _update(info, pairs, plan, [s["arm"].name for s in order], ab_dir)
                log(f"round {r}: order {'→'.join(s['arm'].name for s in order)}, {res.n} pairs, "
                    f"mean A−B {res.mean:+.3f} ms, CS [{res.lo:+.3f}, {res.hi:+.3f}], p {res.p:.3g}: {res.state}")
                if res.state != RUNNING:
                    break
        finally:
            recorders.close()
    finally:
        pool.close()
        for st in states:
            st["manifest"]["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            rf.write_json(st["dir"] / rf.MANIFEST, st["manifest"])
    return ab_dir


def _update(info: dict, pairs: list[pd.DataFrame], plan: AbPlan, order: list[str], ab_dir: Path):
    """Test every pair so far; ab.json and pairs.csv rewritten (an interrupted run keeps them)."""
    df = pd.concat(pairs, ignore_index=True)
    df["diff"] = df["a"] - df["b"]
    df.to_csv(ab_dir / PAIRS_CSV, index=False, float_format="%.6g")
    z = df["diff"].to_numpy(float)
    res = evaluate(z, plan.seq)
    sd = float(np.std(z, ddof=1)) if z.size > 1 else math.nan
    info["rounds"].append({"round": len(pairs) - 1, "order": order, "pairs": int(z.size), **asdict(res)})
    info["result"] = {**asdict(res), "pairs_sent": int(z.size), "sd_diff_ms": sd,
                      "verdict": verdict_text(res),
                      "fixed_n_at_observed_effect": fixed_n(res.mean, sd, plan.seq.alpha, 0.8),
                      "fixed_n_at_min_effect": fixed_n(plan.seq.min_effect, sd, plan.seq.alpha, 0.8)}
    rf.write_json(ab_dir / AB_JSON, info)
    return res


def verdict_text(res) -> str:
    if res.state == "decided":
        return f"{'B' if res.mean > 0 else 'A'} is lower (A − B = {res.mean:+.3f} ms, always-valid p = {res.p:.3g})"
    if res.state == "smaller than min_effect":
        return f"no difference beyond ±min_effect (A − B in [{res.lo:+.3f}, {res.hi:+.3f}] ms)"
    return f"undecided when the budget was spent (A − B in [{res.lo:+.3f}, {res.hi:+.3f}] ms)"


def ab_runs(path: Path) -> list[Path] | None:
    """The two arm folders of an ab folder, or None for any other folder."""
    if (path / AB_JSON).is_file() and (path / "A").is_dir() and (path / "B").is_dir():
        return [path / "A", path / "B"]
    return None
