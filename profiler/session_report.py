"""Multi-turn runs: TTFT and input length by turn index, as `turns.csv` and `plots/ttft_by_turn.png`
in the run folder (written by `write_turns`, recomputed from requests.parquet and points.jsonl).

Per point and turn t (a request's turn is `request id mod turns`, profiler/sessions.py): the
successful requests of that turn, their TTFT mean / p50 / p99 (send -> first content event, ms)
and their mean input length (the server's usage.prompt_tokens when reported, else the tokens the
workload expected). Every request of a session point is counted (no warm-up window: turn t of
the first sessions would be dropped while the same turn of later sessions is kept).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from profiler import runfolder as rf
from profiler.runread import point_rows

COLUMNS = ["point", "concurrency", "turn", "requests", "ok", "ttft_mean_ms", "ttft_p50_ms", "ttft_p99_ms",
           "input_tokens_mean"]


def turn_table(run_dir: str | Path) -> pd.DataFrame:
    rows = []
    for facts, req, _chunks in point_rows(run_dir, rf.read_point_facts(run_dir)):
        turns = int((facts.get("sessions") or {}).get("turns") or 0)
        if turns < 2 or not len(req):
            continue
        rid = np.asarray(req["request"], dtype=np.int64)
        ok = np.asarray(req["error"], dtype=object) == ""
        ttft = (np.asarray(req["first_content_ns"], dtype=np.int64) - np.asarray(req["send_ns"], dtype=np.int64)) / 1e6
        usage = np.asarray(req["usage_prompt_tokens"], dtype=np.int64)
        inp = np.where(usage >= 0, usage, np.asarray(req["input_tokens"], dtype=np.int64))
        for t in range(turns):
            sel = rid % turns == t
            good = sel & ok
            rows.append(dict(point=facts["point"], concurrency=facts["load"], turn=t, requests=int(sel.sum()),
                             ok=int(good.sum()), **_ttft_stats(ttft[good]),
                             input_tokens_mean=float(inp[good].mean()) if good.any() else np.nan))
    return pd.DataFrame(rows, columns=COLUMNS)


def _ttft_stats(v: np.ndarray) -> dict:
    if not v.size:
        return dict(ttft_mean_ms=np.nan, ttft_p50_ms=np.nan, ttft_p99_ms=np.nan)
    return dict(ttft_mean_ms=float(v.mean()), ttft_p50_ms=float(np.percentile(v, 50)),
                ttft_p99_ms=float(np.percentile(v, 99)))


def write_turns(run_dir: str | Path) -> pd.DataFrame:
    """turns.csv and plots/ttft_by_turn.png of a multi-turn run; returns the table."""
    run_dir = Path(run_dir)
    table = turn_table(run_dir)
    if not len(table):
        return table
    table.to_csv(run_dir / "turns.csv", index=False)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    for _point, t in table.groupby("point"):
        label = f"concurrency {t['concurrency'].iloc[0]:g} sessions"
        a1.plot(t["turn"] + 1, t["ttft_p50_ms"], marker="o", label=label)
        a2.plot(t["turn"] + 1, t["input_tokens_mean"], marker="o", label=label)
    a1.set(xlabel="turn", ylabel="TTFT p50 (ms)", title="TTFT by turn")
    a2.set(xlabel="turn", ylabel="input tokens (mean)", title="Input length by turn")
    for a in (a1, a2):
        a.xaxis.get_major_locator().set_params(integer=True)
        a.grid(alpha=0.3)
    a1.legend(fontsize=8)
    fig.tight_layout()
    (run_dir / "plots").mkdir(exist_ok=True)
    fig.savefig(run_dir / "plots" / "ttft_by_turn.png", dpi=100)
    plt.close(fig)
    return table
