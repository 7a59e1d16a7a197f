"""Self-hosted vs hosted API for the same token mix, and the break-even point.

For the chosen sweep point (input tokens I, output tokens O over its window W seconds,
on G GPUs at P $/GPU-hour), and a hosted model with prices p_in, p_out ($/1M):

    hosted_blended   = (I × p_in + O × p_out) / (I + O)                 $/1M tokens
    self_blended     = G × P × W / 3600 / (I + O) × 1e6                 $/1M tokens
    ratio            = self_blended / hosted_blended                     (< 1: self-hosting is cheaper at this load)
    gpu_usd_per_month = G × P × 730
    break_even_tokens_per_month = gpu_usd_per_month / (hosted_blended / 1e6)
        the monthly volume (same mix) above which GPUs rented 24×7, idle time included,
        cost less than the API
    capacity_tokens_per_month = (I + O) / W × 3600 × 730   (this point's throughput, all month)
    break_even_utilisation = break_even_tokens_per_month / capacity_tokens_per_month
        = (G × P) / (hosted cost of the tokens the point produces in one hour)
        = ratio
        the fraction of the month the deployment must run at this point's throughput
        to break even; > 1 means self-hosting at this point never beats the API.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from .hosted import HostedPrice, find_hosted, hosted_prices, load_aliases
from .model import point_tokens

HOURS_PER_MONTH = 730.0


@dataclass(frozen=True)
class HostedComparison:
    """One hosted model compared with one self-hosted point (formulas in the module docstring)."""

    key: str
    provider: str
    why: str  # "same model (alias)" or "--compare"
    hosted_usd_per_1m_input: float
    hosted_usd_per_1m_output: float
    hosted_usd_per_1m_blended: float
    self_usd_per_1m_blended: float
    ratio: float
    gpu_usd_per_month: float
    break_even_tokens_per_month: float
    break_even_tokens_per_day: float
    capacity_tokens_per_month: float
    break_even_utilisation: float

    def to_dict(self) -> dict:
        return asdict(self)


def compare_point(point: pd.Series, hosted: HostedPrice, gpus: float, usd_per_gpu_hour: float,
                  why: str = "") -> HostedComparison:
    """Compare one priced point with one hosted price (pure)."""
    row = point.to_frame().T
    i = float(point_tokens(row, "input").iloc[0])
    o = float(point_tokens(row, "output").iloc[0])
    i = 0.0 if math.isnan(i) else i
    o = 0.0 if math.isnan(o) else o
    window = float(point.get("window_s", math.nan))
    hb = hosted.blended(i, o)
    per_hour = gpus * usd_per_gpu_hour
    tokens = i + o
    self_b = per_hour * window / 3600.0 / tokens * 1e6 if tokens > 0 and window > 0 else math.nan
    monthly = per_hour * HOURS_PER_MONTH
    be = monthly / (hb / 1e6) if hb > 0 else math.nan
    cap = tokens / window * 3600.0 * HOURS_PER_MONTH if window > 0 else math.nan
    return HostedComparison(
        key=hosted.key, provider=hosted.provider, why=why, hosted_usd_per_1m_input=hosted.input,
        hosted_usd_per_1m_output=hosted.output, hosted_usd_per_1m_blended=hb,
        self_usd_per_1m_blended=self_b, ratio=self_b / hb if hb > 0 else math.nan,
        gpu_usd_per_month=monthly, break_even_tokens_per_month=be,
        break_even_tokens_per_day=be / (HOURS_PER_MONTH / 24.0),
        capacity_tokens_per_month=cap, break_even_utilisation=be / cap if cap > 0 else math.nan,
    )


def compare_hosted(point: pd.Series, gpus: float, usd_per_gpu_hour: float, model: str | None,
                   compare: list[str] | None = None, prices: dict[str, HostedPrice] | None = None,
                   aliases: dict | None = None) -> tuple[list[HostedComparison], list[str]]:
    """Comparisons for the run's model (its aliases; skipped with a notice if unknown) and
    every --compare model (unknown ones raise ValueError). Returns (rows, notices),
    rows sorted cheapest hosted first."""
    prices = hosted_prices() if prices is None else prices
    aliases = load_aliases() if aliases is None else aliases
    notices: list[str] = []
    seen: set[str] = set()
    rows: list[HostedComparison] = []
    if model:
        try:
            for h in find_hosted(model, prices, aliases):
                if h.key not in seen:
                    seen.add(h.key)
                    rows.append(compare_point(point, h, gpus, usd_per_gpu_hour, "same model"))
        except ValueError:
            notices.append(f"no hosted price known for {model}; add it to model_aliases.yaml or use --compare")
    for name in compare or []:
        for h in find_hosted(name, prices, aliases):
            if h.key not in seen:
                seen.add(h.key)
                rows.append(compare_point(point, h, gpus, usd_per_gpu_hour, "--compare"))
    rows.sort(key=lambda r: (r.why != "same model", r.hosted_usd_per_1m_blended))
    return rows, notices
