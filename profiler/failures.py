"""points.csv columns of a point's failures: a count per error class, why the point stopped, and
the SLO attainment that counts failures as misses.

- `err_<class>`: failed requests of each class of `backends.records.ERROR_CLASSES` (older run
  folders' names are mapped by `backends.records.error_class`; their `error_kinds` column keeps
  the names as recorded). Cancelled requests are the `cancelled` column, not a class here.
- `stop_reason`: "" when the point ran to its end, else `error_rate`, `server_down` or
  `interrupted` (profiler/stopping.py).
- `slo_attainment`: among the requests sent in the steady window and not cancelled, the share
  that succeeded *and* met every SLO (a failed request is a miss: `slo_met` judges only the
  successful ones' percentiles). Empty without SLOs.
"""

from __future__ import annotations

import math

import pandas as pd

from backends.records import ERROR_CLASSES, error_class
from profiler import slo as slo_rules
from profiler.pointview import PointView

COLUMNS = [f"err_{c}" for c in ERROR_CLASSES] + ["stop_reason", "slo_attainment"]


def failures(v: PointView, facts: dict, slos: dict[str, float]) -> dict:
    row: dict = {c: 0 for c in COLUMNS[:-2]}
    failed = v.failed
    if failed.any():
        pairs = pd.DataFrame({"e": v.error[failed], "s": v.cols["status"][failed]}).value_counts()
        for (err, status), n in pairs.items():
            key = f"err_{error_class(str(err), int(status))}"
            if key in row:
                row[key] += int(n)
    row["stop_reason"] = str(facts.get("stop_reason") or "")
    row["slo_attainment"] = attainment(v, slos)
    return row


def attainment(v: PointView, slos: dict[str, float]) -> float:
    if not slos or v.n == 0:
        return math.nan
    per_request = dict(v.per)
    if any(s.metric == "itl" for s in slo_rules.slo_list(slos)):
        per_request["itl"] = v.longest_gap_s
    sent = v.sent_in_window & ~v.cancelled
    good = v.ok & slo_rules.requests_meeting(per_request, slos) & sent
    return float(good.sum() / sent.sum()) if sent.any() else math.nan
