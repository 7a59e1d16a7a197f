"""Fleet sizing: how many GPUs/instances a traffic target needs at the SLOs, and what they cost.

1. Candidate points: those meeting the SLOs (``slos`` re-evaluated from the percentile
   columns when given, else the run's ``slo_met``; every point if no SLO was set).
2. Capacity of a point, per GPU, in the target's unit:
   - rps target: ``goodput_req_per_s`` (requests that met their SLO) when the run
     has it and SLOs were not overridden, else ``req_per_s``; divided by the point's GPUs.
   - tokens/day target: output tokens/s (or input+output with tokens_kind="total"),
     scaled by goodput_req_per_s / req_per_s when goodput is the metric; per GPU.
   The point with the highest per-GPU capacity is used.
3. gpus_needed = ceil(target_per_s / (capacity_per_gpu × (1 − headroom)))
   replicas    = ceil(gpus_needed / gpus_per_replica)   (a replica = the measured deployment,
                 e.g. 8 GPUs with TP=8; it cannot be split)
   instances   = ceil(replicas / floor(gpus_per_instance / gpus_per_replica)) when a
                 replica fits in an instance, else replicas × ceil(gpus_per_replica / gpus_per_instance)
   billed_gpus = instances × gpus_per_instance (or replicas × gpus_per_replica if the
                 instance size is unknown)
4. usd_per_month = billed_gpus × $/GPU-hour × 730 (on-demand and spot).
5. Hosted $/month for the same traffic: monthly input/output tokens × hosted $/1M. For an
   rps target, tokens per request come from the chosen point; for a tokens/day target,
   the other token kind follows the point's input:output ratio. Month = 730 h.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from profiler.errors import UserError
from profiler.runread import numeric
from profiler.slo import evaluate_frame

from .hosted import HostedPrice
from .model import point_gpus, slo_met_mask

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class Sizing:
    """Result of size_fleet (see the module docstring)."""

    point: int
    load: float
    target_kind: str  # "rps" | "output_tokens_per_day" | "tokens_per_day"
    target: float
    target_per_s: float
    capacity_metric: str
    capacity_per_gpu: float  # target unit per second per GPU
    headroom: float
    gpus_per_replica: int
    gpus_needed: int
    replicas: int
    gpus_per_instance: int | None
    instances: int | None
    billed_gpus: int
    usd_per_gpu_hour: float | None
    spot_usd_per_gpu_hour: float | None
    usd_per_month_on_demand: float | None
    usd_per_month_spot: float | None
    input_tokens_per_month: float
    output_tokens_per_month: float
    hosted_key: str | None
    hosted_usd_per_month: float | None

    def to_dict(self) -> dict:
        return asdict(self)



def instances_for(replicas: int, gpus_per_replica: int, gpus_per_instance: int) -> int:
    """Whole instances holding `replicas` replicas (replicas never straddle instances
    unless one replica is bigger than an instance)."""
    if gpus_per_replica <= gpus_per_instance:
        per_instance = gpus_per_instance // gpus_per_replica
        return math.ceil(replicas / per_instance)
    return replicas * math.ceil(gpus_per_replica / gpus_per_instance)


def _checked_target(points_df: pd.DataFrame, target_rps: float | None, tokens_per_day: float | None,
                    headroom: float, tokens_kind: str) -> float:
    """The one target given, after checking every argument (UserError on bad input)."""
    if (target_rps is None) == (tokens_per_day is None):
        raise UserError("give exactly one target: --rps or --tokens-per-day")
    target = float(target_rps if target_rps is not None else tokens_per_day)  # type: ignore[arg-type]
    if not target > 0:
        raise UserError(f"target must be > 0, got {target:g}")
    if not 0 <= headroom < 1:
        raise UserError(f"headroom must be in [0, 1), got {headroom:g}")
    if tokens_kind not in ("output", "total"):
        raise UserError(f"tokens kind must be output or total, got {tokens_kind!r}")
    if points_df.empty:
        raise UserError("points.csv has no points")
    return target


def _slo_points(points_df: pd.DataFrame, slos: dict[str, float] | None) -> pd.DataFrame:
    """The candidate points: those meeting the SLOs (UserError when none does)."""
    mask = evaluate_frame(points_df, slos) if slos else slo_met_mask(points_df)
    df = points_df[mask]
    if df.empty:
        raise UserError("no sweep point meets the SLOs; relax them or sweep lower loads")
    return df


def _capacity(df: pd.DataFrame, g: pd.Series, *, rps: bool, tokens_kind: str,
              slos: dict[str, float] | None) -> tuple[str, str, pd.Series]:
    """(target kind, capacity metric, capacity per GPU of each point in the target unit per second)."""
    req = numeric(df, "req_per_s")
    good = numeric(df, "goodput_req_per_s")
    use_good = not slos and good.notna().any()
    if rps:
        return "rps", "goodput_req_per_s" if use_good else "req_per_s", (good if use_good else req) / g
    good_frac = (good / req).clip(0, 1) if use_good else pd.Series(1.0, index=df.index)
    tout = numeric(df, "output_tok_per_s")
    rate = tout if tokens_kind == "output" else tout + numeric(df, "input_tok_per_s").fillna(0)
    kind = "output_tokens_per_day" if tokens_kind == "output" else "tokens_per_day"
    metric = ("output_tok_per_s" if tokens_kind == "output" else "input+output tok/s") + (
        " × goodput fraction" if use_good else "")
    return kind, metric, rate * good_frac / g


def _best_point(cap: pd.Series, metric: str) -> tuple[object, float]:
    """(index, capacity) of the point with the highest positive finite capacity per GPU."""
    cap = cap[np.isfinite(cap) & (cap > 0)]
    if cap.empty:
        raise UserError(f"no SLO-meeting point has a positive {metric}")
    best = cap.idxmax()
    return best, float(cap[best])


def _fleet(per_s: float, cap_gpu: float, headroom: float, gpr: int,
           gpus_per_instance: int | None) -> tuple[int, int, int | None, int]:
    """(gpus_needed, replicas, instances, billed_gpus) for the target rate (module docstring, step 3)."""
    gpus_needed = math.ceil(per_s / (cap_gpu * (1.0 - headroom)) - 1e-9)
    replicas = math.ceil(gpus_needed / gpr)
    if gpus_per_instance:
        instances = instances_for(replicas, gpr, int(gpus_per_instance))
        return gpus_needed, replicas, instances, instances * int(gpus_per_instance)
    return gpus_needed, replicas, None, replicas * gpr


def _monthly_tokens(kind: str, target: float, per_s: float, r_req: float, r_in: float,
                    r_out: float) -> tuple[float, float]:
    """(input, output) tokens per month of the target traffic, in the chosen point's token mix
    (its req/s, input tok/s and output tok/s)."""
    secs = HOURS_PER_MONTH * 3600.0
    if kind == "rps":
        in_per_req = r_in / r_req if r_req > 0 else math.nan
        out_per_req = r_out / r_req if r_req > 0 else math.nan
        return target * in_per_req * secs, target * out_per_req * secs
    if kind == "output_tokens_per_day":
        out_m = per_s * secs
        return out_m * (r_in / r_out if r_out > 0 else math.nan), out_m
    tot = r_in + r_out
    return per_s * secs * (r_in / tot if tot > 0 else math.nan), per_s * secs * (r_out / tot if tot > 0 else math.nan)


def _usd_per_month(billed_gpus: int, price: float | None) -> float | None:
    return None if price is None else billed_gpus * price * HOURS_PER_MONTH


def size_fleet(points_df: pd.DataFrame, target_rps: float | None = None, tokens_per_day: float | None = None,
               headroom: float = 0.2, slos: dict[str, float] | None = None, *, tokens_kind: str = "output",
               usd_per_gpu_hour: float | None = None, spot_usd_per_gpu_hour: float | None = None,
               gpus_per_instance: int | None = None, hosted: HostedPrice | None = None,
               gpus: float | None = None) -> Sizing:
    """Size a fleet for target_rps OR tokens_per_day (exactly one). ValueError on bad input
    or when no point meets the SLOs."""
    target = _checked_target(points_df, target_rps, tokens_per_day, headroom, tokens_kind)
    df = _slo_points(points_df, slos)
    g = point_gpus(df, gpus)
    kind, metric, cap = _capacity(df, g, rps=target_rps is not None, tokens_kind=tokens_kind, slos=slos)
    per_s = target if kind == "rps" else target / 86400.0
    best, cap_gpu = _best_point(cap, metric)
    row = df.loc[best]
    gpr = max(int(round(float(g[best]))), 1)
    gpus_needed, replicas, instances, billed = _fleet(per_s, cap_gpu, headroom, gpr, gpus_per_instance)
    r_req, r_in, r_out = (float(numeric(df, c)[best]) for c in ("req_per_s", "input_tok_per_s", "output_tok_per_s"))
    in_m, out_m = _monthly_tokens(kind, target, per_s, r_req, r_in, r_out)
    return Sizing(
        point=int(row.get("point", best)), load=float(row.get("load", math.nan)), target_kind=kind,
        target=target, target_per_s=per_s, capacity_metric=metric, capacity_per_gpu=cap_gpu,
        headroom=headroom, gpus_per_replica=gpr, gpus_needed=gpus_needed, replicas=replicas,
        gpus_per_instance=int(gpus_per_instance) if gpus_per_instance else None, instances=instances,
        billed_gpus=billed, usd_per_gpu_hour=usd_per_gpu_hour, spot_usd_per_gpu_hour=spot_usd_per_gpu_hour,
        usd_per_month_on_demand=_usd_per_month(billed, usd_per_gpu_hour),
        usd_per_month_spot=_usd_per_month(billed, spot_usd_per_gpu_hour),
        input_tokens_per_month=in_m, output_tokens_per_month=out_m,
        hosted_key=hosted.key if hosted else None,
        hosted_usd_per_month=hosted.cost_usd(in_m, out_m) if hosted else None,
    )
