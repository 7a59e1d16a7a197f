"""Choosing between runs (profiler/choose/, profiler/ab.py): hand-checked Pareto fronts, rankings,
sensitivities and tests, then `compare` and `ab` against real mock servers with known differences."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import inferprof

from profiler.choose import decide, pareto
from profiler.choose.paired import compare_scores, mcnemar, paired_bootstrap
from profiler.choose.sequential import DECIDED, EQUIVALENT, SeqConfig, evaluate, fixed_n
from profiler.mockproc import MockProcess
from workloads.evalsets import synthetic_items, write_jsonl

# fact sheet §7: throughput (max), p99 TTFT (min), accuracy (max)
CONFIGS = np.array([[5200, 480, .80], [4100, 310, .82], [6100, 620, .78], [4000, 450, .79]])
DIRS = ["max", "min", "max"]


# -- pure, hand-checked --------------------------------------------------------------------------

def test_pareto_front_names_who_dominates():
    assert pareto.dominated_by(CONFIGS, DIRS) == [[], [], [], [1]]  # B dominates D
    with_gap = np.vstack([CONFIGS, [np.nan, 100, .9]])
    assert pareto.dominated_by(with_gap, DIRS)[-1] == [pareto.MISSING]
    assert list(pareto.front(CONFIGS[:, :2], DIRS[:2])) == [True, True, True, False]


def test_min_max_scores_ranking_and_rank_reversal():
    w = decide.unit_weights([5, 3, 2])
    s = decide.scores(decide.normalise(CONFIGS, DIRS), w)
    # A: .5·(1200/2100) + .3·(140/310) + .2·(2/4); B: .5·(100/2100) + .3·1 + .2·1
    assert s[0] == pytest.approx(.5 * 1200 / 2100 + .3 * 140 / 310 + .2 * .5)
    assert s[1] == pytest.approx(.5 * 100 / 2100 + .5)
    assert decide.ranking(s)[0] == 1 and s[1] == pytest.approx(0.5238, abs=1e-4)
    # dropping the dominated D moves the min-max bounds: A wins (the fact sheet's rank reversal)
    s3 = decide.scores(decide.normalise(CONFIGS[:3], DIRS), w)
    assert decide.ranking(s3)[0] == 0 and s3[0] == pytest.approx(0.5105, abs=1e-4)


def test_normalise_degenerate_and_missing():
    r = decide.normalise(np.array([[1.0, 5.0], [1.0, np.nan], [1.0, 7.0]]), ["max", "min"])
    assert list(r[:, 0]) == [1, 1, 1] and list(r[:, 1]) == [1, 0, 0]


def test_sensitivity_is_the_smallest_weight_change():
    r = decide.normalise(CONFIGS, DIRS)
    f = decide.flips(r, decide.unit_weights([.5, .3, .2]))
    at = {x.objective: x.at for x in f}
    assert at[0] == pytest.approx(0.502, abs=5e-4) and at[1] == pytest.approx(0.297, abs=5e-4)
    assert at[2] == pytest.approx(0.196, abs=5e-4)
    # changes 0.0025, 0.0034, 0.0042: the throughput weight is the most fragile
    assert f[0].objective == 0 and f[0].change == pytest.approx(at[0] - 0.5) and f[0].new_winner == 0
    # at the flip weight (others rescaled) A and B tie, just past it A wins
    for x in f:
        w = np.array([.5, .3, .2])
        w2 = w * (1 - x.at) / (1 - w[x.objective])
        w2[x.objective] = x.at
        s = decide.scores(r, w2)
        assert s[0] == pytest.approx(s[1])
    acc = decide.rank_acceptability(r, draws=20000, seed=1)
    assert acc.sum() == pytest.approx(1) and abs(acc[1] - 0.749) < 0.02 and acc[3] == 0


def test_a_winner_no_weight_can_move():
    r = decide.normalise(np.array([[1.0, 1.0], [0.0, 0.0]]), ["max", "max"])
    assert decide.flips(r, decide.unit_weights([1, 1])) == []


def test_mcnemar_matches_the_fact_sheet_and_by_hand():
    exact, mid = mcnemar(25, 12)
    assert exact == pytest.approx(0.047, abs=5e-4)
    assert mid == pytest.approx(exact - math.comb(37, 12) / 2**37)
    assert mcnemar(13, 0)[0] == pytest.approx(2 * 0.5**13) and mcnemar(0, 0) == (1.0, 1.0)


def test_paired_beats_unpaired_on_shared_items():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, 200)
    a = {i: float(v) for i, v in enumerate(base)}
    b = {i: float(v + 0.03 + rng.normal(0, 0.01)) for i, v in enumerate(base)}
    paired = compare_scores(a, b)
    assert paired.test == "paired bootstrap" and paired.lo > 0 and paired.p < 0.01
    unpaired = compare_scores(a, {i + 1000: v for i, v in b.items()})
    assert unpaired.test == "unpaired bootstrap" and unpaired.lo < 0 < unpaired.hi
    d = paired_bootstrap(np.zeros(50), np.zeros(50))
    assert d.diff == 0 and d.p == 1.0


def test_msprt_formula_and_stops():
    cfg = SeqConfig(alpha=0.05, horizon=1000, min_n=2, max_n=1000, sigma2=1.0)
    assert cfg.rho2 == pytest.approx(0.259, abs=1e-3)  # fact sheet §6
    z = np.array([0.5, 0.1, 0.3, 0.4])
    res = evaluate(z, SeqConfig(alpha=0.05, horizon=1000, min_n=2, max_n=4, sigma2=1.0))
    n, r2, m = 4, cfg.rho2, z.mean()
    assert res.log_lr == pytest.approx(-0.5 * math.log(1 + n * r2) + n * n * r2 * m * m / (2 * (1 + n * r2)))
    assert res.state == "budget"
    big = evaluate(np.random.default_rng(1).normal(2.0, 1.0, 100), SeqConfig(min_n=40, max_n=200))
    assert big.state == DECIDED and big.n == 40 and big.mean > 0  # the first look allowed decides
    flat = evaluate(np.full(100, 2.0), SeqConfig(min_n=40, max_n=100))
    assert flat.state == "budget"  # no spread seen: the running variance gives no evidence
    same = evaluate(np.random.default_rng(0).normal(0, 1, 400), SeqConfig(min_effect=1.0, max_n=400))
    assert same.state == EQUIVALENT and -1 < same.lo and same.hi < 1
    assert fixed_n(0.2, 1.0, 0.05, 0.8) == 197  # ((1.96 + 0.8416)/0.2)^2 = 196.2


@pytest.mark.parametrize("args,needle", [
    (["--objectives", "speed:max"], "unknown objective 'speed'"),
    (["--weights", "quality=x"], "invalid weight"),
    (["--objectives", "ttft_p99:up"], "direction is max or min"),
    (["--weights", "cost=1"], "names no objective"),
])
def test_bad_choice_flags_exit_2(tmp_path, capsys, args, needle):
    from test_report_fixture import build_run

    from profiler.cli import main

    a, b = build_run(tmp_path, name="a"), build_run(tmp_path, name="b")
    assert main(["compare", str(a), str(b), "--resamples", "100", "--objectives", "ttft_p99:min", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


# -- mock endpoints with known differences -------------------------------------------------------

def _sweep(out: Path, evalset: Path, preset: str, accuracy: float) -> Path:
    r = inferprof("sweep", "--preset", preset, f"--mock-arg=--accuracy={accuracy}", "--concurrency", "6",
                  "--requests", "60", "--input-tokens", "256", "--output-tokens", "64", "--eval", str(evalset),
                  "--scorer", "accuracy=numeric", "--useful", "accuracy=1", "--gpu-price", "2",
                  "--out", str(out), "--no-report", "--no-telemetry", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    return Path(json.loads(r.stdout)["run_dir"])


@pytest.fixture(scope="module")
def three_runs(tmp_path_factory):
    """fast: h100 preset, accuracy 0.5; good: a100 preset (decode step 11.4 ms, not 7.8: dearer per
    token at one GPU price), accuracy 0.9; slow_bad: a100, accuracy 0.5. One mock seed, so the 0.5
    runs answer the same items right (a per-item hash). Each point: 30 eval answers + 30 synthetic
    requests of 64 output tokens."""
    d = tmp_path_factory.mktemp("choose")
    write_jsonl(synthetic_items("arithmetic", 30, 4), d / "arith.jsonl")
    return {"fast": _sweep(d / "fast", d / "arith.jsonl", "h100-llama3-8b", 0.5),
            "good": _sweep(d / "good", d / "arith.jsonl", "a100-llama3-8b", 0.9),
            "slow_bad": _sweep(d / "slow_bad", d / "arith.jsonl", "a100-llama3-8b", 0.5)}


def _item_right(run: Path) -> pd.Series:
    s = pd.read_parquet(run / "scores.parquet")
    return s[s["dimension"] == "accuracy"].groupby("item")["score"].mean()


def test_compare_chooses_by_weights_on_mock_runs(three_runs, tmp_path, capsys):
    from profiler.cli import main

    runs = [three_runs[k] for k in ("fast", "good", "slow_bad")]
    pts = {k: pd.read_csv(v / "points.csv").iloc[0] for k, v in three_runs.items()}
    assert pts["good"]["accuracy_mean"] > pts["fast"]["accuracy_mean"] == pts["slow_bad"]["accuracy_mean"]
    assert min(pts["slow_bad"]["usd_per_1m_output"], pts["good"]["usd_per_1m_output"]) > pts["fast"]["usd_per_1m_output"]
    out = tmp_path / "cmp"
    assert main(["compare", *map(str, runs), "--objectives", "quality:max,cost:min",
                 "--weights", "quality=0.7,cost=0.3", "--resamples", "200", "--out", str(out)]) == 0
    capsys.readouterr()
    dec = pd.read_csv(out / "decision.csv").set_index("run")
    names = {k: v.name for k, v in three_runs.items()}
    # by hand: min-max over the three runs
    q = {k: pts[k]["accuracy_mean"] for k in pts}
    t = {k: pts[k]["usd_per_1m_output"] for k in pts}
    r = {k: (0.7 * (q[k] - min(q.values())) / (max(q.values()) - min(q.values()))
             + 0.3 * (max(t.values()) - t[k]) / (max(t.values()) - min(t.values()))) for k in pts}
    for k in pts:
        assert dec.loc[names[k], "score"] == pytest.approx(r[k], abs=1e-5)
    winner = max(r, key=r.get)
    assert dec.loc[names[winner], "rank"] == 1
    assert names["fast"] in str(dec.loc[names["slow_bad"], "dominated_by"])  # same quality, dearer
    assert pd.isna(dec.loc[names["fast"], "dominated_by"])
    html = (out / "compare.html").read_text()
    assert html.index("Recommendation") < html.index("Every matched point")
    assert (out / "plots" / "choice_front.png").stat().st_size > 1000
    ev = pd.read_csv(out / "evidence.csv")
    acc = ev[ev["objective"] == "accuracy"].set_index("other")
    # McNemar by hand from the stored per-item scores
    loser = "fast" if winner != "fast" else "good"
    a, b = _item_right(three_runs[winner]), _item_right(three_runs[loser])
    b_ct, c_ct = int(((a == 1) & (b == 0)).sum()), int(((a == 0) & (b == 1)).sum())
    assert acc.loc[names[loser], "p"] == pytest.approx(mcnemar(b_ct, c_ct)[0], rel=1e-6)
    assert acc.loc[names[loser], "test"].startswith("McNemar exact")


def test_the_weight_that_flips_the_winner(three_runs, tmp_path, capsys):
    from profiler.choose.decision import decide_runs
    from profiler.report.compare import load_runs

    runs = load_runs([three_runs["fast"], three_runs["good"]])
    d = decide_runs(runs, "quality:max,cost:min", "quality=0.7,cost=0.3")
    # two runs, each best on one objective: r = (1, 0) and (0, 1); they tie at w_quality = 0.5
    assert d.winner == three_runs["good"].name
    assert d.flips[0].at == pytest.approx(0.5) and d.flips[0].change == pytest.approx(0.2)
    d2 = decide_runs(runs, "quality:max,cost:min", "quality=0.3,cost=0.7")
    assert d2.winner == three_runs["fast"].name
    assert "no detectable difference" not in d.paragraph  # 0.9 vs 0.5 accuracy on 30 shared items


def test_ab_end_to_end_on_two_mock_presets(tmp_path):
    fast = ["--preset", "h100-llama3-8b"]
    with MockProcess(fast) as a, MockProcess(["--preset", "a100-llama3-8b"]) as b:
        r = inferprof("ab", "--a", a.url, "--b", b.url, "--metric", "ttft", "--input-tokens", "512",
                      "--output-tokens", "4", "--round", "20", "--budget", "100", "--min-pairs", "20",
                      "--out", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads(r.stdout)
    ab = Path(res["ab_dir"])
    assert res["state"] == DECIDED and res["mean"] < 0 and res["verdict"].startswith("A is lower")
    pairs = pd.read_csv(ab / "pairs.csv")
    assert res["n"] <= len(pairs) <= 100 and len(pairs) % 20 == 0
    assert pairs["diff"].iloc[:res["n"]].mean() == pytest.approx(res["mean"], rel=1e-4)
    info = json.loads((ab / "ab.json").read_text())
    assert [x["pairs"] for x in info["rounds"]] == list(range(20, len(pairs) + 1, 20))
    for arm in ("A", "B"):
        req = pd.read_parquet(ab / arm / "requests.parquet")
        assert len(req) == len(pairs) and (req["error"] == "").all()
    c = inferprof("compare", str(ab), "--resamples", "200", "--out", str(tmp_path / "cmp"))
    assert c.returncode == 0, c.stderr[-2000:]
    assert len(pd.read_csv(tmp_path / "cmp" / "decision.csv")) == 2


@pytest.mark.parametrize("args,needle", [
    (["--a", "127.0.0.1:1"], "use URL[#MODEL]"), (["--alpha", "2"], "--alpha"), (["--budget", "1"], "--budget"),
])
def test_ab_bad_flags_exit_2(tmp_path, capsys, args, needle):
    from profiler.cli import main

    base = {"--a": "http://127.0.0.1:1", "--b": "http://127.0.0.1:1", "--out": str(tmp_path)}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    assert main(["ab", *[x for kv in base.items() for x in kv]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]


def test_ab_stops_on_an_arm_that_fails_everything(tmp_path):
    with MockProcess(["--preset", "tiny-cpu"]) as a, MockProcess(["--preset", "tiny-cpu", "--fault", "http500=1"]) as b:
        r = inferprof("ab", "--a", a.url, "--b", b.url, "--round", "4", "--budget", "40", "--out", str(tmp_path))
    assert r.returncode == 2 and "no request succeeded on both arms" in r.stderr and "Traceback" not in r.stderr
    ab = next(tmp_path.glob("ab-*"))
    req = pd.read_parquet(ab / "B" / "requests.parquet")
    assert len(req) == 4 and (req["status"] == 500).all()  # the failed round is kept


def test_same_latency_reads_no_detectable_difference_and_slo_picks_the_point(tmp_path):
    from test_report_fixture import build_run

    from profiler.choose.decision import decide_runs
    from profiler.report.compare import load_runs

    a = build_run(tmp_path, name="a", seed=1, n=200, slos={"ttft_p99": 0.1})
    b = build_run(tmp_path, name="b", seed=2, n=200, slos={"ttft_p99": 0.1})
    d = decide_runs(load_runs([a, b]), "ttft_p50:min,e2e_p50:min")
    pts = pd.read_csv(a / "points.csv")
    met = pts[pts["slo_met"].astype(str) == "True"]
    best = int(met.sort_values(["goodput_req_per_s", "output_tok_per_s"], ascending=False)["point"].iloc[0])
    assert len(met) == 3 and (d.table["point"] == best).all()  # load 8 misses the SLO; then most goodput
    assert d.evidence and all(e.verdict == "no detectable difference" for e in d.evidence)
    assert "no detectable difference" in d.paragraph
