"""Choosing the $/GPU-hour (and energy price) a run is costed with.

Precedence (first that applies wins):
1. ``gpu_price`` (``--gpu-price``): used as is.
2. ``prices_file`` YAML entry for the GPU (``--prices FILE.yaml``), see PRICES_YAML_DOC.
3. The catalog (shipped ``data/gpu_prices.csv``, or ``--prices FILE.csv`` in the same
   schema, e.g. made by ``inferprof prices --import-skypilot``):
   - with ``provider``: the CHEAPEST row of that provider for the GPU;
   - without: the MEDIAN over providers of each provider's cheapest row (one
     provider's many regions do not outweigh the others).
4. Nothing known: ``usd_per_gpu_hour=None`` (cost columns stay empty) and a notice.

The GPU is ``gpu`` (``--gpu``) or else the one telemetry detected (``detected_gpu``).
Bad user input (unknown GPU/provider, malformed file) raises ValueError with ONE line
naming the problem and the known choices; the CLI turns it into exit 2.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from profiler.errors import UserError

from .catalog import PriceRow, load_catalog
from .gpus import KNOWN_GPUS, canonical_gpu

PRICINGS = ("on_demand", "spot")

PRICES_YAML_DOC = """\
# inferprof --prices FILE.yaml (every key optional)
gpus:
  h100-sxm: {on_demand: 2.49, spot: 1.20}   # $/GPU-hour
  a100-80gb: 1.10                           # a bare number = on_demand
provider: my-cloud          # label shown in reports (default "prices-file")
energy_usd_per_kwh: 0.12    # enables energy cost columns
pue: 1.3                    # facility overhead multiplier on measured GPU energy
"""


@dataclass(frozen=True)
class Pricing:
    """What a run is costed with. usd_per_gpu_hour None means "unknown": no cost columns."""

    gpu: str | None = None
    provider: str | None = None
    pricing: str = "on_demand"
    usd_per_gpu_hour: float | None = None
    energy_usd_per_kwh: float | None = None
    pue: float = 1.0
    source: str = ""
    as_of: str = ""
    instance_type: str | None = None
    gpus_per_instance: int | None = None
    notice: str = ""

    def to_dict(self) -> dict:
        """JSON-able dict (what manifest.json["pricing"] holds)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict | None) -> Pricing | None:
        """Inverse of to_dict; unknown keys ignored, None for an empty dict."""
        if not d:
            return None
        fields = cls.__dataclass_fields__
        kw = {k: v for k, v in d.items() if k in fields}
        kw.setdefault("gpu", None)
        kw.setdefault("provider", None)
        if kw.get("pue") is None:
            kw["pue"] = 1.0
        return cls(**kw)


@dataclass(frozen=True)
class PricesFile:
    """A parsed --prices YAML."""

    gpus: dict[str, dict[str, float]]
    provider: str
    energy_usd_per_kwh: float | None
    pue: float | None
    path: str


def _positive(v: object, what: str, path: str) -> float:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise UserError(f"{path}: {what} must be a number, got {v!r}") from None
    if f < 0:
        raise UserError(f"{path}: {what} must be >= 0, got {f}")
    return f


def load_prices_yaml(path: Path | str) -> PricesFile:
    """Parse and validate a --prices YAML (schema in PRICES_YAML_DOC)."""
    p = str(path)
    try:
        with open(p) as fh:
            doc = yaml.safe_load(fh)
    except FileNotFoundError:
        raise UserError(f"prices file not found: {p}") from None
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" line {line + 1}" if line is not None else ""
        raise UserError(f"{p}: invalid YAML{where}; expected keys gpus, provider, energy_usd_per_kwh, pue") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UserError(f"{p}: top level must be a mapping with keys gpus, provider, energy_usd_per_kwh, pue")
    unknown = set(doc) - {"gpus", "provider", "energy_usd_per_kwh", "pue", "as_of", "source"}
    if unknown:
        raise UserError(f"{p}: unknown keys {sorted(unknown)}; known: gpus, provider, energy_usd_per_kwh, pue")
    gpus: dict[str, dict[str, float]] = {}
    raw_gpus = doc.get("gpus") or {}
    if not isinstance(raw_gpus, dict):
        raise UserError(f"{p}: gpus must map a GPU id to a price or {{on_demand: X, spot: Y}}")
    for name, val in raw_gpus.items():
        gid = canonical_gpu(str(name)) or str(name).strip().lower()
        if isinstance(val, dict):
            bad = set(val) - set(PRICINGS)
            if bad:
                raise UserError(f"{p}: gpus.{name} has unknown keys {sorted(bad)}; known: on_demand, spot")
            gpus[gid] = {k: _positive(v, f"gpus.{name}.{k}", p) for k, v in val.items()}
        else:
            gpus[gid] = {"on_demand": _positive(val, f"gpus.{name}", p)}
    energy = doc.get("energy_usd_per_kwh")
    pue = doc.get("pue")
    return PricesFile(
        gpus=gpus, provider=str(doc.get("provider") or "prices-file"),
        energy_usd_per_kwh=None if energy is None else _positive(energy, "energy_usd_per_kwh", p),
        pue=None if pue is None else _positive(pue, "pue", p), path=p,
    )


def _resolve_gpu(gpu: str | None, known: list[str]) -> str:
    gid = canonical_gpu(gpu) or str(gpu).strip().lower()
    if gid not in known:
        raise UserError(f"unknown GPU {gpu!r}; known GPUs: {', '.join(known)}")
    return gid


def _pick_row(rows: list[PriceRow], pricing: str) -> PriceRow | None:
    priced = [r for r in rows if r.price(pricing) is not None]
    return min(priced, key=lambda r: (r.price(pricing), r.provider, r.instance_type)) if priced else None


def _check_flags(pricing: str, gpu_price: float | None, energy_price: float | None, pue: float | None) -> None:
    """UserError for a pricing kind or flag value out of range."""
    if pricing not in PRICINGS:
        raise UserError(f"unknown pricing {pricing!r}; choose one of: {', '.join(PRICINGS)}")
    if gpu_price is not None and gpu_price < 0:
        raise UserError(f"--gpu-price must be >= 0, got {gpu_price}")
    if energy_price is not None and energy_price < 0:
        raise UserError(f"--energy-price must be >= 0, got {energy_price}")
    if pue is not None and pue < 1.0:
        raise UserError(f"--pue must be >= 1.0, got {pue}")


def _price_sources(prices_file: str | Path | None) -> tuple[PricesFile | None, list[PriceRow]]:
    """(the --prices YAML if one was given, the catalog: a --prices .csv or the shipped one)."""
    yaml_file: PricesFile | None = None
    catalog_path: str | Path | None = None
    if prices_file is not None:
        if str(prices_file).lower().endswith(".csv"):
            catalog_path = prices_file
        else:
            yaml_file = load_prices_yaml(prices_file)
    try:
        catalog = load_catalog(catalog_path) if catalog_path else load_catalog()
    except FileNotFoundError:
        raise UserError(f"prices file not found: {catalog_path}") from None
    return yaml_file, catalog


def _common_fields(pricing: str, energy_price: float | None, pue: float | None,
                   yaml_file: PricesFile | None) -> dict:
    """The Pricing fields every rule shares: pricing kind, energy price and PUE (flags win over the YAML)."""
    energy = energy_price if energy_price is not None else (yaml_file.energy_usd_per_kwh if yaml_file else None)
    pue_v = pue if pue is not None else (yaml_file.pue if yaml_file and yaml_file.pue is not None else 1.0)
    return {"pricing": pricing, "energy_usd_per_kwh": energy, "pue": pue_v}


def _known_gpus(catalog: list[PriceRow], yaml_file: PricesFile | None) -> list[str]:
    """GPU ids with a price anywhere, KNOWN_GPUS first in their order, then the rest by name."""
    return sorted({r.gpu for r in catalog} | set(KNOWN_GPUS) | set(yaml_file.gpus if yaml_file else {}),
                  key=lambda g: (g not in KNOWN_GPUS, KNOWN_GPUS.index(g) if g in KNOWN_GPUS else 0, g))


def _gpu_id(gpu: str | None, detected_gpu: str | None, known: list[str]) -> tuple[str | None, str]:
    """(GPU id to price, notice): --gpu (UserError when unknown), else the detected GPU if in the catalog."""
    if gpu is not None:
        return _resolve_gpu(gpu, known), ""
    if detected_gpu:
        gid = canonical_gpu(detected_gpu)
        if gid is None:
            return None, f"detected GPU {detected_gpu!r} is not in the price catalog"
        return gid, ""
    return None, ""


def _yaml_pricing(yaml_file: PricesFile, gid: str, provider: str | None, notice: str, common: dict) -> Pricing:
    """Rule 2: the --prices YAML entry for the GPU (UserError when it lacks this pricing kind)."""
    pricing = common["pricing"]
    price = yaml_file.gpus[gid].get(pricing)
    if price is None:
        raise UserError(f"{yaml_file.path}: gpus.{gid} has no {pricing} price; it has: "
                         f"{', '.join(yaml_file.gpus[gid])}")
    return Pricing(gpu=gid, provider=provider or yaml_file.provider, usd_per_gpu_hour=price,
                   source=f"prices file {yaml_file.path}", notice=notice, **common)


def _provider_pricing(rows: list[PriceRow], gid: str, provider: str, notice: str, common: dict) -> Pricing:
    """Rule 3 with a provider: its cheapest catalog row for the GPU (UserError when it has none)."""
    pricing = common["pricing"]
    prov = provider.strip().lower()
    providers = sorted({r.provider for r in rows})
    rows = [r for r in rows if r.provider == prov]
    if not rows:
        raise UserError(f"no {gid} price for provider {provider!r}; providers with {gid}: "
                         f"{', '.join(providers) or 'none'}")
    row = _pick_row(rows, pricing)
    if row is None:
        raise UserError(f"provider {prov} has no {pricing} price for {gid}; try --pricing on_demand or --gpu-price")
    return Pricing(gpu=gid, provider=row.provider, usd_per_gpu_hour=row.price(pricing),
                   source=f"catalog: cheapest {row.provider} row ({row.instance_type}, {row.region}): {row.source}",
                   as_of=row.as_of, instance_type=row.instance_type,
                   gpus_per_instance=row.gpus_per_instance, notice=notice, **common)


def _median_pricing(rows: list[PriceRow], gid: str, notice: str, common: dict) -> Pricing:
    """Rule 3 without a provider: the median of each provider's cheapest row (no price: empty columns)."""
    pricing = common["pricing"]
    per_provider = [r for r in (_pick_row([x for x in rows if x.provider == p], pricing)
                                for p in sorted({x.provider for x in rows})) if r is not None]
    if not per_provider:
        return Pricing(gpu=gid, provider=None, source="none",
                       notice=(notice + "; " if notice else "") +
                       f"no {pricing} price for {gid} in the catalog; cost columns left empty "
                       "(use --gpu-price or --prices)", **common)
    med = statistics.median(r.price(pricing) for r in per_provider)  # type: ignore[misc]
    names = ", ".join(f"{r.provider} {r.price(pricing):.2f}" for r in per_provider)
    sizes = {r.gpus_per_instance for r in per_provider}
    return Pricing(gpu=gid, provider="median", usd_per_gpu_hour=round(med, 6),
                   source=f"catalog: median of cheapest row per provider ({names})",
                   as_of=max(r.as_of for r in per_provider),
                   gpus_per_instance=max(sizes) if len(sizes) == 1 else None, notice=notice, **common)


def resolve_pricing(
    *,
    gpu_price: float | None = None,
    gpu: str | None = None,
    provider: str | None = None,
    pricing: str = "on_demand",
    energy_price: float | None = None,
    pue: float | None = None,
    prices_file: str | Path | None = None,
    detected_gpu: str | None = None,
) -> Pricing:
    """Pick the Pricing (see the module docstring for the precedence rules).

    Catalog rule: with a provider, the cheapest row of that provider for the GPU; without,
    the median across providers of each provider's cheapest row.
    """
    _check_flags(pricing, gpu_price, energy_price, pue)
    yaml_file, catalog = _price_sources(prices_file)
    common = _common_fields(pricing, energy_price, pue, yaml_file)
    gid, notice = _gpu_id(gpu, detected_gpu, _known_gpus(catalog, yaml_file))
    if gpu_price is not None:
        return Pricing(gpu=gid, provider=provider or "user", usd_per_gpu_hour=float(gpu_price),
                       source="--gpu-price", notice=notice, **common)
    if yaml_file and gid in yaml_file.gpus:
        return _yaml_pricing(yaml_file, gid, provider, notice, common)
    if gid is None:
        return Pricing(gpu=None, provider=provider, source="none",
                       notice=(notice or "no GPU given or detected")
                       + "; cost columns left empty (use --gpu-price or --gpu)", **common)
    rows = [r for r in catalog if r.gpu == gid]
    if provider is not None:
        return _provider_pricing(rows, gid, provider, notice, common)
    return _median_pricing(rows, gid, notice, common)
