"""`inferprof predict`: which GPU, TP size and precision to rent, estimated from specs.

For each configuration (GPU x TP x dtype) the spec model (``backends.mock.specmodel``) gives the
engine's step costs and ``backends.mock.steady.closed_loop`` the steady state of N closed-loop
clients with fixed lengths: mean TTFT, mean ITL and output tokens/s per concurrency. Then:

- SLOs (``--slo``, the sweep's syntax) are checked against these **means** (ttft against TTFT,
  tpot/itl/itl_token against ITL, e2e against TTFT + (O-1) x ITL), whatever statistic they name:
  a percentile SLO is checked optimistically, and the output says so.
- knee = the highest-throughput concurrency meeting every SLO (all points when there is none).
- $/1M output tokens = $/GPU-hour x TP / (output tok/s x 3600) x 1e6, at the knee, with the
  catalog price (``profiler.cost.pricing``: median across providers unless --provider/--gpu-price).
- cheapest = the configuration with the lowest $/1M at its knee.

Every figure is an estimate; the validation error of the fit (``efficiency.json``, written by
``benchmarks/predict/cv.py``) is printed with it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass

from backends.errors import BackendError
from backends.mock import steady
from backends.mock.specmodel import deployment, spec_preset
from backends.mock.specs import EFFICIENCY_JSON
from profiler.cost.gpus import canonical_gpu
from profiler.cost.pricing import resolve_pricing
from profiler.errors import UserError
from profiler.slo import slo_list


@dataclass(frozen=True)
class PredictedPoint:
    concurrency: int
    ttft_ms: float
    itl_ms: float
    output_tok_per_s: float
    e2e_ms: float
    slo_met: bool | None  # None: no SLO given
    usd_per_1m_output: float | None


@dataclass(frozen=True)
class ConfigResult:
    gpu: str
    tp: int
    dtype: str
    kv_dtype: str
    model: str
    fits: bool
    note: str
    usd_per_gpu_hour: float | None
    points: tuple[PredictedPoint, ...] = ()
    knee: PredictedPoint | None = None


def gpu_id(name: str) -> str:
    """Spec-table id of a GPU name (NVML, SkyPilot or id spelling)."""
    return canonical_gpu(name) or str(name).strip().lower()


def slo_met(slos: dict[str, float], ttft_ms: float, itl_ms: float, e2e_ms: float) -> bool | None:
    """All SLOs met by the predicted means (module docstring); None when there are none."""
    if not slos:
        return None
    value = {"ttft": ttft_ms, "e2e": e2e_ms, "tpot": itl_ms, "itl": itl_ms, "itl_token": itl_ms}
    return all(value[s.metric] <= s.limit_s * 1e3 for s in slo_list(slos))


def usd_per_1m(usd_per_gpu_hour: float | None, gpus: int, tok_s: float) -> float | None:
    if usd_per_gpu_hour is None or not tok_s > 0:
        return None
    return usd_per_gpu_hour * gpus / (tok_s * 3600.0) * 1e6


def predict_config(gpu: str, model: str, tp: int, dtype: str, kv_dtype: str | None, isl: int, osl: int,
                   concurrencies: list[int], slos: dict[str, float], price: float | None,
                   max_num_seqs: int = 256) -> ConfigResult:
    """Predicted points of one configuration (``fits=False`` with a note when it cannot run)."""
    gid = gpu_id(gpu)
    kv = kv_dtype or "bf16"  # vLLM's --kv-cache-dtype auto: the activation dtype, even with FP8 weights
    d = deployment(gid, model, tp, dtype, kv)  # unknown names: BackendError, exit 2
    base = dict(gpu=gid, tp=tp, dtype=dtype, kv_dtype=kv, model=d.arch.name, usd_per_gpu_hour=price)
    try:
        p = spec_preset(d, max_num_seqs=max_num_seqs, max_model_len=1 << 30)
    except BackendError as e:
        return ConfigResult(fits=False, note=str(e), **base)
    if isl + osl > p.kv_tokens:
        return ConfigResult(fits=False, note=f"one request ({isl + osl} tokens) exceeds the KV cache "
                            f"({p.kv_tokens} tokens)", **base)
    points = []
    for n in concurrencies:
        ttft, itl, x = (float(v) for v in steady.closed_loop(p, n, isl, osl))
        e2e = ttft + (osl - 1) * itl
        points.append(PredictedPoint(n, ttft * 1e3, itl * 1e3, x, e2e * 1e3,
                                     slo_met(slos, ttft * 1e3, itl * 1e3, e2e * 1e3), usd_per_1m(price, tp, x)))
    ok = [q for q in points if q.slo_met is not False]
    knee = max(ok, key=lambda q: q.output_tok_per_s) if ok else None
    note = f"KV cache {p.kv_tokens} tokens; batch cap {int(steady.batch_cap(p, isl, osl))}"
    return ConfigResult(fits=True, note=note, points=tuple(points), knee=knee, **base)


def catalog_price(gpu: str, provider: str | None, pricing: str, gpu_price: float | None,
                  prices_file: str | None) -> float | None:
    """$/GPU-hour for a GPU id (None when the catalog has no price for it)."""
    try:
        return resolve_pricing(gpu_price=gpu_price, gpu=gpu, provider=provider, pricing=pricing,
                               prices_file=prices_file).usd_per_gpu_hour
    except UserError:
        if provider or prices_file:
            raise  # the user asked for that provider/file: say why it has no price
        return None


def cheapest(results: list[ConfigResult]) -> ConfigResult | None:
    priced = [r for r in results if r.knee and r.knee.usd_per_1m_output is not None]
    return min(priced, key=lambda r: r.knee.usd_per_1m_output) if priced else None


def validation_line(path=EFFICIENCY_JSON) -> str:
    """One sentence with the cross-validation error stored next to the fitted terms."""
    try:
        v = json.loads(path.read_text()).get("validation", {})
    except (FileNotFoundError, ValueError):
        v = {}
    if not v:
        return ("ESTIMATE from datasheet specs, not a measurement; its validation error is not recorded. "
                "Measure before you buy.")
    parts = []
    for fold, label in (("gpu", "leave-one-GPU-out"), ("model", "leave-one-model-out")):
        m = v.get(fold)
        if m:
            parts.append(f"{label}: median |error| TTFT {m['TTFT'][0]:.0%}, ITL {m['ITL'][0]:.0%}, "
                         f"tok/s {m['tok/s'][0]:.0%} (90th pct {m['TTFT'][1]:.0%}/{m['ITL'][1]:.0%}/"
                         f"{m['tok/s'][1]:.0%})")
    return ("ESTIMATE from datasheet specs and efficiency terms fitted on public benchmarks, not a "
            "measurement; validation on held-out data: " + "; ".join(parts) + ". Measure before you buy.")


def result_dict(r: ConfigResult) -> dict:
    d = asdict(r)
    for p in d["points"]:
        for k in ("ttft_ms", "itl_ms", "output_tok_per_s", "e2e_ms", "usd_per_1m_output"):
            if p[k] is not None and math.isfinite(p[k]):
                p[k] = round(p[k], 3)
    return d


def check_inputs(isl: int, osl: int, concurrencies: list[int], tps: list[int]) -> None:
    if isl < 1 or osl < 1:
        raise UserError("--input-tokens and --output-tokens must be >= 1")
    if not concurrencies or min(concurrencies) < 1:
        raise UserError("--concurrency needs positive integers, e.g. 1,8,32,128")
    if min(tps) < 1 or max(tps) > 64:
        raise UserError("--tp must be 1..64")
