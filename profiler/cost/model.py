"""Cost model: pure functions from a sweep point to dollars per token.

Definitions (per sweep point, all over the point's steady window):

    gpu_cost_usd        = gpus × usd_per_gpu_hour × window_s / 3600
    energy_cost_usd     = energy_j × pue / 3.6e6 × usd_per_kwh
    usd_per_1m_output   = gpu_cost_usd / output_tokens × 1e6
    usd_per_1m_input    = gpu_cost_usd / input_tokens  × 1e6
    usd_per_1m_blended  = gpu_cost_usd / (input_tokens + output_tokens) × 1e6
    energy_usd_per_1m_output = energy_cost_usd / output_tokens × 1e6

``usd_per_1m_output`` and ``usd_per_1m_input`` each charge the WHOLE GPU cost to one
token kind ("what does a million output tokens cost me if I count only those"), which
is what peer write-ups quote. ``usd_per_1m_blended`` spreads it over all tokens of the
workload's own mix. A cloud $/GPU-hour already includes power, so energy cost is a
separate column (what the electricity alone costs, e.g. for owned hardware), never
added to the GPU cost.

"Priced like an API" split: an API bills input and output separately. We split the
GPU cost into an input and an output price with a fixed output:input price ratio
``r`` (default ``API_OUTPUT_INPUT_RATIO`` = 4, the ratio of most first-party price
sheets, e.g. gpt-4o-mini 0.15/0.60, gpt-4.1 2/8) such that the point's tokens at
these prices cost exactly gpu_cost_usd:

    api_usd_per_1m_input  = gpu_cost_usd / (input_tokens + r × output_tokens) × 1e6
    api_usd_per_1m_output = r × api_usd_per_1m_input

Token counts: ``output_tokens``/``input_tokens`` of the window when present and > 0,
otherwise ``*_tok_per_s × window_s``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from profiler.runread import flag, numeric, parse_flag

SECONDS_PER_HOUR = 3600.0
JOULES_PER_KWH = 3.6e6
API_OUTPUT_INPUT_RATIO = 4.0

COST_COLUMNS = (
    "usd_per_gpu_hour", "gpu_cost_usd", "energy_cost_usd", "usd_per_1m_output", "usd_per_1m_input",
    "usd_per_1m_blended", "energy_usd_per_1m_output", "api_usd_per_1m_input", "api_usd_per_1m_output",
)


def _finite(x: object) -> bool:
    try:
        return math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def gpu_cost_usd(gpus: float, usd_per_gpu_hour: float | None, window_s: float) -> float:
    """GPU rental cost of a window: gpus × usd_per_gpu_hour × window_s / 3600 (NaN if unknown)."""
    if usd_per_gpu_hour is None or not (_finite(gpus) and _finite(window_s) and _finite(usd_per_gpu_hour)):
        return float("nan")
    return float(gpus) * float(usd_per_gpu_hour) * float(window_s) / SECONDS_PER_HOUR


def energy_cost_usd(joules: float | None, pue: float, usd_per_kwh: float | None) -> float:
    """Electricity cost: joules × pue / 3.6e6 × usd_per_kwh (NaN if either is unknown)."""
    if joules is None or usd_per_kwh is None or not (_finite(joules) and _finite(usd_per_kwh)):
        return float("nan")
    return float(joules) * float(pue) / JOULES_PER_KWH * float(usd_per_kwh)


def usd_per_million(cost_usd: float, tokens: float) -> float:
    """cost_usd / tokens × 1e6; NaN when tokens <= 0 or anything is unknown."""
    if not (_finite(cost_usd) and _finite(tokens)) or float(tokens) <= 0:
        return float("nan")
    return float(cost_usd) / float(tokens) * 1e6


def usd_per_1m_output(cost_usd: float, output_tokens: float) -> float:
    """Whole cost charged to output tokens: cost / output_tokens × 1e6."""
    return usd_per_million(cost_usd, output_tokens)


def usd_per_1m_input(cost_usd: float, input_tokens: float) -> float:
    """Whole cost charged to input tokens: cost / input_tokens × 1e6."""
    return usd_per_million(cost_usd, input_tokens)


def usd_per_1m_blended(cost_usd: float, input_tokens: float, output_tokens: float) -> float:
    """Cost spread over the workload's own mix: cost / (input + output) × 1e6."""
    return usd_per_million(cost_usd, float(input_tokens) + float(output_tokens))


def api_split(cost_usd: float, input_tokens: float, output_tokens: float,
              ratio: float = API_OUTPUT_INPUT_RATIO) -> tuple[float, float]:
    """(input, output) $/1M with output = ratio × input that reproduce cost_usd exactly.

    p_in = cost / (input + ratio × output) × 1e6, p_out = ratio × p_in.
    """
    p_in = usd_per_million(cost_usd, float(input_tokens) + ratio * float(output_tokens))
    return p_in, ratio * p_in


def energy_usd_per_1m_output(energy_cost: float, output_tokens: float) -> float:
    """Electricity per 1M output tokens: energy_cost / output_tokens × 1e6."""
    return usd_per_million(energy_cost, output_tokens)


def cost_per_1m_from_rate(gpus: float, usd_per_gpu_hour: float, tok_per_s: float) -> float:
    """The same quantity from rates: gpus × $/GPU-h / (tok_per_s × 3600) × 1e6.

    E.g. 8 × 6.88 / (20,000 × 3600) × 1e6 = 0.764 $/1M output tokens.
    """
    return usd_per_million(gpus * usd_per_gpu_hour, tok_per_s * SECONDS_PER_HOUR)



def point_tokens(df: pd.DataFrame, kind: str) -> pd.Series:
    """Tokens of kind "input"/"output" per point: counts, else rate × window_s."""
    counts = numeric(df, f"{kind}_tokens")
    from_rate = numeric(df, f"{kind}_tok_per_s") * numeric(df, "window_s")
    return counts.where(counts > 0, from_rate)


def point_gpus(df: pd.DataFrame, gpus: float | None = None) -> pd.Series:
    """GPUs per point: the explicit ``gpus`` else the ``gpu_count`` column, else 1."""
    if gpus is not None:
        return pd.Series(float(gpus), index=df.index)
    g = numeric(df, "gpu_count")
    return g.where(g > 0, 1.0)


def add_cost_columns(points_df: pd.DataFrame, pricing, gpus: float | None = None,
                     api_ratio: float = API_OUTPUT_INPUT_RATIO) -> pd.DataFrame:
    """Copy of points_df with COST_COLUMNS added (formulas in the module docstring).

    ``pricing`` is a ``Pricing`` (or None); ``gpus`` overrides the per-point ``gpu_count``
    column (default 1 where that is missing). Unknown prices give NaN columns.
    """
    df = points_df.copy()
    price = getattr(pricing, "usd_per_gpu_hour", None)
    kwh = getattr(pricing, "energy_usd_per_kwh", None)
    pue = getattr(pricing, "pue", 1.0) or 1.0
    g = point_gpus(df, gpus)
    window = numeric(df, "window_s")
    tin = point_tokens(df, "input")
    tout = point_tokens(df, "output")
    energy = numeric(df, "energy_j")

    df["usd_per_gpu_hour"] = float("nan") if price is None else float(price)
    gcost = [gpu_cost_usd(a, price, w) for a, w in zip(g, window, strict=True)]
    ecost = [energy_cost_usd(j, pue, kwh) for j in energy]
    df["gpu_cost_usd"] = gcost
    df["energy_cost_usd"] = ecost
    df["usd_per_1m_output"] = [usd_per_1m_output(c, o) for c, o in zip(gcost, tout, strict=True)]
    df["usd_per_1m_input"] = [usd_per_1m_input(c, i) for c, i in zip(gcost, tin, strict=True)]
    df["usd_per_1m_blended"] = [usd_per_1m_blended(c, i, o) for c, i, o in zip(gcost, tin, tout, strict=True)]
    df["energy_usd_per_1m_output"] = [energy_usd_per_1m_output(e, o) for e, o in zip(ecost, tout, strict=True)]
    split = [api_split(c, i, o, api_ratio) for c, i, o in zip(gcost, tin, tout, strict=True)]
    df["api_usd_per_1m_input"] = [s[0] for s in split]
    df["api_usd_per_1m_output"] = [s[1] for s in split]
    return df


def slo_met_mask(points_df: pd.DataFrame) -> pd.Series:
    """Boolean per point from the ``slo_met`` column (True/"True"/1); missing -> all True.

    "All True" when no SLO was set (column absent or entirely empty): every point counts.
    """
    if "slo_met" not in points_df.columns or points_df["slo_met"].map(parse_flag).isna().all():
        return pd.Series(True, index=points_df.index)
    return flag(points_df, "slo_met", False)


def cheapest_slo_point(points_df: pd.DataFrame) -> pd.Series | None:
    """The cheapest point that meets the SLOs, or None.

    Cheapest = lowest ``usd_per_1m_output`` when priced; without prices the highest
    output tokens/s per GPU (the same order for any fixed $/GPU-hour). Points with
    no output are skipped. Ties: the lower load wins (lower latency).
    """
    if points_df.empty:
        return None
    df = points_df[slo_met_mask(points_df)]
    if df.empty:
        return None
    if numeric(df, "usd_per_1m_output").notna().any():
        key = numeric(df, "usd_per_1m_output")
    else:
        key = -(numeric(df, "output_tok_per_s") / point_gpus(df))
        key = key.where(numeric(df, "output_tok_per_s") > 0)
    key = key[np.isfinite(key)]
    if key.empty:
        return None
    load = numeric(df.loc[key.index], "load").fillna(0)
    order = sorted(key.index, key=lambda i: (key[i], load[i]))
    return df.loc[order[0]]
