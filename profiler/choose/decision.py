"""The whole choice for `inferprof compare`: candidates, Pareto front, weighted ranking, its
sensitivity, the evidence for the winner's lead, and the recommendation in one paragraph."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profiler.choose import decide, evidence, pareto
from profiler.choose.candidates import candidate_table, dims_of, parse_objectives, parse_weights
from profiler.runread import Run

DEFAULT_OBJECTIVES = "quality:max,cost_per_useful:min,ttft_p99:min"
FALLBACK_OBJECTIVES = "cost:min,ttft_p99:min"  # runs measured without an eval set
EVIDENCE = ["quality", "useful_rate", "cost", "cost_per_useful", "ttft_p50", "ttft_p99", "e2e_p50", "e2e_p99",
            "goodput"]


@dataclass
class Decision:
    objectives: list[tuple[str, str]]
    weights: np.ndarray
    table: pd.DataFrame  # one row per run: objectives, normalised r_*, score, rank, dominated_by
    flips: list[decide.Flip]
    acceptability: np.ndarray
    evidence: list[evidence.Evidence] = field(default_factory=list)
    paragraph: str = ""

    @property
    def winner(self) -> str:
        return str(self.table.sort_values("rank").iloc[0]["run"])


def default_objectives(runs: list[Run]) -> str:
    return DEFAULT_OBJECTIVES if all(dims_of(r) for r in runs) else FALLBACK_OBJECTIVES


def decide_runs(runs: list[Run], objectives: str = "", weights: str = "", point: int | None = None,
                alpha: float = 0.05, seed: int = 0) -> Decision:
    dims = sorted({d for r in runs for d in dims_of(r)})
    objs = parse_objectives(objectives or default_objectives(runs), dims)
    names = [n for n, _ in objs]
    w = decide.unit_weights(parse_weights(weights, names) if weights else [1.0] * len(names))
    t = candidate_table(runs, objs, point)
    values = t[names].to_numpy(float)
    dirs = [d for _, d in objs]
    r = decide.normalise(values, dirs)
    for k, n in enumerate(names):
        t[f"r_{n}"] = r[:, k]
    t["score"] = decide.scores(r, w)
    order = decide.ranking(t["score"].to_numpy())
    t["rank"] = [order.index(i) + 1 for i in range(len(t))]
    dom = pareto.dominated_by(values, dirs)
    t["dominated_by"] = [", ".join("missing objective" if j == pareto.MISSING else t["run"].iloc[j] for j in d)
                         for d in dom]
    acc = decide.rank_acceptability(r, seed=seed)
    t["wins_share"] = acc
    d = Decision(objs, w, t, decide.flips(r, w), acc)
    d.evidence = evidence.gather(runs, dict(zip(t["run"], t["point"], strict=True)), d.winner, names, alpha, seed)
    d.paragraph = recommendation(d)
    return d


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "n/a"


def recommendation(d: Decision) -> str:
    t = d.table.sort_values("rank")
    win = t.iloc[0]
    names = [n for n, _ in d.objectives]
    weights = ", ".join(f"{n} {w:.2f}" for n, w in zip(names, d.weights, strict=True))
    parts = [f"Recommendation: {win['run']} (point {win['point']}). It ranks first with score "
             f"{win['score']:.3f} of 1 under weights {weights}"]
    dominated = [r["run"] for _, r in t.iterrows() if win["run"] in r["dominated_by"].split(", ")]
    parts.append(f"and dominates {', '.join(dominated)}" if dominated else
                 ("and is on the Pareto front" if not win["dominated_by"] else
                  f"but is dominated by {win['dominated_by']}"))
    text = " ".join(parts) + "."
    if len(t) > 1 and math.isclose(t.iloc[1]["score"], win["score"], abs_tol=1e-9):
        text += (f" It ties with {t.iloc[1]['run']} on score: the weights do not separate them, and it is listed "
                 "first only by the order the runs were given.")
    if len(t) > 1:
        second = t.iloc[1]
        ev = [e for e in d.evidence if e.other == second["run"]]
        shown = [e for e in ev if e.verdict != evidence.SAME]
        if ev and not shown:
            text += (f" Against the runner-up {second['run']} (score {second['score']:.3f}) there is no detectable "
                     f"difference in {', '.join(e.objective for e in ev)}: the order between them is within noise.")
        for e in shown:
            text += (f" Against {second['run']}, {e.objective} differs by {_fmt(abs(e.diff))} in the winner's favour"
                     if e.verdict == "winner better" else f" Against {second['run']}, {e.objective} is worse by "
                     f"{_fmt(abs(e.diff))}") + f" ({e.test}, interval of runner-up − winner [{_fmt(e.lo)}, {_fmt(e.hi)}])."
    if d.flips:
        f = d.flips[0]
        text += (f" The winner changes to {d.table['run'].iloc[f.new_winner]}"
                 f" if the weight of {names[f.objective]} moves from {f.weight:.2f} to {f.at:.3f} "
                 f"(a change of {f.change:.3f}); under random weights it wins {win['wins_share']:.0%} of draws.")
    else:
        text += " No single weight change in [0, 1] changes the winner."
    if win["slo_met"] is False:
        text += " Caution: none of its points met the SLOs."
    return text
