"""Cross-validation of the spec model: fit on all but one GPU (or model), predict the held-out one.

    python3 benchmarks/predict/cv.py [--measured DIR] [--by gpu,model] [--markdown FILE] [--record JSON]

For each fold prints, per metric (TTFT, ITL, output tok/s), the rows predicted, the median and the
90th percentile of |relative error| = |predicted / measured - 1|, and the share of rows within
+-25 %. The pooled line at the end of each table gathers every held-out prediction of that kind of
fold. Rows whose weights do not fit the held-out GPU are not predicted and are counted apart.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

import calib  # noqa: E402
import fit  # noqa: E402

METRIC_NAMES = {"ttft_ms": "TTFT", "itl_ms": "ITL", "tok_s": "tok/s"}


def fold_errors(df: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """Relative errors on rows with ``column == value`` after fitting on the others."""
    train, test = df[df[column] != value], df[df[column] == value]
    eff = fit.fit(train)
    errs = fit.log_errors(test, fit.predict_rows(test, eff))
    errs["rel"] = np.exp(errs["err"]) - 1
    errs["fold"] = value
    return errs


def summarise(errs: pd.DataFrame) -> dict:
    out = {}
    for metric, name in METRIC_NAMES.items():
        r = errs.loc[errs["metric"] == metric, "rel"].abs()
        out[name] = (len(r), r.median(), r.quantile(0.9), (r <= 0.25).mean()) if len(r) else None
    return out


def table(rows: list[tuple[str, dict]], by: str) -> str:
    head = f"| held-out {by} | " + " | ".join(f"{m} n / median / p90 / ≤25 %" for m in METRIC_NAMES.values())
    lines = [head + " |", "|---" * (1 + len(METRIC_NAMES)) + "|"]
    for label, s in rows:
        cells = ["–" if v is None else f"{v[0]} / {v[1]:.0%} / {v[2]:.0%} / {v[3]:.0%}" for v in s.values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(df: pd.DataFrame, by: str) -> tuple[str, dict]:
    """(markdown table, pooled summary) of the leave-one-``by``-out folds."""
    rows, pooled = [], []
    for value in sorted(df[by].unique()):
        e = fold_errors(df, by, value)
        pooled.append(e)
        rows.append((value, summarise(e)))
    total = summarise(pd.concat(pooled))
    rows.append(("**pooled**", total))
    return table(rows, by), total


def record(path: Path, pooled: dict[str, dict]) -> None:
    """Store the pooled figures next to the fitted terms (``inferprof predict`` quotes them)."""
    doc = json.loads(path.read_text())
    doc["validation"] = {by: {m: [round(v[1], 3), round(v[2], 3), round(v[3], 3), v[0]]
                              for m, v in s.items() if v} for by, s in pooled.items()}
    doc["validation"]["columns"] = ["median_abs_rel_err", "p90_abs_rel_err", "share_within_25pct", "rows"]
    path.write_text(json.dumps(doc, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--measured", type=Path, default=calib.MEASURED)
    ap.add_argument("--by", default="gpu,model")
    ap.add_argument("--markdown", type=Path, help="also write the tables to this file")
    ap.add_argument("--record", type=Path, help="add the pooled figures to this efficiency.json")
    a = ap.parse_args(argv)
    df = fit.load(a.measured)
    t0 = time.process_time()
    results = {by: run(df, by) for by in a.by.split(",")}
    text = "\n\n".join(t for t, _ in results.values())
    print(text)
    print(f"\n({len(df)} rows; {time.process_time() - t0:.0f} s CPU)")
    if a.markdown:
        a.markdown.write_text(text + "\n")
    if a.record:
        record(a.record, {by: pooled for by, (_, pooled) in results.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
