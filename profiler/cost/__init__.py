"""Cost side of inferprof: $/GPU-hour and energy into $/1M tokens, hosted API comparison,
break-even, fleet sizing and a speed-of-light bound. Formulas: profiler/cost/README.md."""

from .compare_hosted import HostedComparison, compare_hosted, compare_point
from .gpus import KNOWN_GPUS, canonical_gpu
from .hosted import HostedPrice, find_hosted, hosted_prices
from .model import (
    COST_COLUMNS,
    add_cost_columns,
    cheapest_slo_point,
    energy_cost_usd,
    gpu_cost_usd,
    usd_per_1m_blended,
    usd_per_1m_input,
    usd_per_1m_output,
)
from .pricing import Pricing, resolve_pricing
from .roofline import add_sol_columns, decode_bound_tok_per_s, gpu_spec, load_model_spec
from .sizing import Sizing, size_fleet

__all__ = [
    "COST_COLUMNS", "KNOWN_GPUS", "HostedComparison", "HostedPrice", "Pricing", "Sizing",
    "add_cost_columns", "add_sol_columns", "canonical_gpu", "cheapest_slo_point", "compare_hosted",
    "compare_point", "decode_bound_tok_per_s", "energy_cost_usd", "find_hosted", "gpu_cost_usd",
    "gpu_spec", "hosted_prices", "load_model_spec", "resolve_pricing", "size_fleet",
    "usd_per_1m_blended", "usd_per_1m_input", "usd_per_1m_output",
]
