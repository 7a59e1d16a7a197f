"""A hosted-API run priced from the tokens it actually used (pure).

A sweep against a hosted API (`--backend anthropic|responses`, or any backend with
`--hosted-price NAME`) stores the model's list prices in `manifest["pricing"]`
(`hosted_pricing`: kind "hosted", $/1M `input`, `output`, `cache_read`). Per point, with the
window's tokens as for a self-hosted run (I prompt tokens, O output tokens, from the API's usage
when reported) and the cached share of prompt tokens the API reported:

    cached_prompt_frac  c = Σ cached prompt tokens / Σ prompt tokens
                            (successful requests that reported both; 0 when none did)
    p_in_effective        = (1 − c) × p_in + c × p_cache      (p_cache = p_in when no cache price is listed)
    hosted_cost_usd       = (I × p_in_effective + O × p_out) / 1e6
    usd_per_1m_output     = hosted_cost_usd / O × 1e6          (the whole cost charged to output tokens,
    usd_per_1m_input      = hosted_cost_usd / I × 1e6           exactly as for a self-hosted point, so
    usd_per_1m_blended    = hosted_cost_usd / (I + O) × 1e6     `compare` puts them side by side)
    api_usd_per_1m_input  = p_in_effective;  api_usd_per_1m_output = p_out

GPU and energy columns stay empty: the API's hardware is not ours to price.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .hosted import find_hosted, hosted_prices, load_aliases
from .model import COST_COLUMNS, point_tokens, usd_per_million

HOSTED = "hosted"


def hosted_pricing(name: str) -> dict:
    """manifest["pricing"] for the hosted model `name` (ValueError with one line when unknown)."""
    h = find_hosted(name, hosted_prices(), load_aliases())[0]
    return {"kind": HOSTED, "key": h.key, "provider": h.provider, "input": h.input, "output": h.output,
            "cache_read": h.cache_read, "source": "hosted list prices (profiler/cost/data/hosted_prices.json)"}


def cached_prompt_columns(requests: pd.DataFrame) -> dict:
    """{"cached_prompt_frac": c} of a point's requests; {} when none reported cached tokens (so runs
    of APIs that never say keep the columns they always had)."""
    if "usage_cached_tokens" not in requests or not len(requests):
        return {}
    cached = np.asarray(requests["usage_cached_tokens"], dtype=np.int64)
    prompt = np.asarray(requests["usage_prompt_tokens"], dtype=np.int64)
    ok = (np.asarray(requests["error"], dtype=object) == "") & (cached >= 0) & (prompt > 0)
    if not ok.any():
        return {}
    return {"cached_prompt_frac": float(cached[ok].sum() / prompt[ok].sum())}


def add_hosted_cost_columns(points: pd.DataFrame, pricing: dict) -> pd.DataFrame:
    """Copy of `points` with COST_COLUMNS and `hosted_cost_usd` (formulas in the module docstring)."""
    df = points.copy()
    p_in, p_out = float(pricing["input"]), float(pricing["output"])
    p_cache = pricing.get("cache_read")
    p_cache = p_in if p_cache is None else float(p_cache)
    frac = df["cached_prompt_frac"].fillna(0.0) if "cached_prompt_frac" in df else pd.Series(0.0, index=df.index)
    tin, tout = point_tokens(df, "input"), point_tokens(df, "output")
    p_eff = (1.0 - frac) * p_in + frac * p_cache
    cost = [(i * pe + o * p_out) / 1e6 if math.isfinite(i) and math.isfinite(o) else math.nan
            for i, o, pe in zip(tin, tout, p_eff, strict=True)]
    for c in COST_COLUMNS:
        df[c] = math.nan
    df["hosted_cost_usd"] = cost
    df["usd_per_1m_output"] = [usd_per_million(c, o) for c, o in zip(cost, tout, strict=True)]
    df["usd_per_1m_input"] = [usd_per_million(c, i) for c, i in zip(cost, tin, strict=True)]
    df["usd_per_1m_blended"] = [usd_per_million(c, i + o) for c, i, o in zip(cost, tin, tout, strict=True)]
    df["api_usd_per_1m_input"] = p_eff.to_numpy(dtype=float)
    df["api_usd_per_1m_output"] = p_out
    return df
