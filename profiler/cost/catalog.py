"""The GPU price catalog (``data/gpu_prices.csv`` or a user CSV in the same schema)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from profiler.errors import UserError

DATA_DIR = Path(__file__).resolve().parent / "data"
PRICES_CSV = DATA_DIR / "gpu_prices.csv"

CATALOG_COLUMNS = (
    "gpu", "provider", "instance_type", "gpus_per_instance", "on_demand_usd_per_hour",
    "spot_usd_per_hour", "usd_per_gpu_hour", "spot_usd_per_gpu_hour", "region", "source", "as_of",
)


@dataclass(frozen=True)
class PriceRow:
    """One catalog row. Per-GPU prices are instance prices / gpus_per_instance."""

    gpu: str
    provider: str
    instance_type: str
    gpus_per_instance: int
    on_demand_usd_per_hour: float | None
    spot_usd_per_hour: float | None
    usd_per_gpu_hour: float | None
    spot_usd_per_gpu_hour: float | None
    region: str
    source: str
    as_of: str

    def price(self, pricing: str) -> float | None:
        """$/GPU-hour for "on_demand" or "spot"."""
        return self.spot_usd_per_gpu_hour if pricing == "spot" else self.usd_per_gpu_hour


def _num(v: str | None) -> float | None:
    if v is None or str(v).strip() == "":
        return None
    return float(v)


def load_catalog(path: Path | str = PRICES_CSV) -> list[PriceRow]:
    """Read a catalog CSV by header. Raises ValueError (one line) on a bad file."""
    p = Path(path)
    with open(p, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("gpu", "provider", "usd_per_gpu_hour") if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{p}: not a GPU price catalog, missing columns {missing}; "
                             f"expected {', '.join(CATALOG_COLUMNS)}")
        rows = []
        for i, r in enumerate(reader, start=2):
            try:
                n = int(float(r.get("gpus_per_instance") or 1))
                rows.append(PriceRow(
                    gpu=r["gpu"].strip().lower(), provider=r["provider"].strip().lower(),
                    instance_type=r.get("instance_type", "") or "", gpus_per_instance=n,
                    on_demand_usd_per_hour=_num(r.get("on_demand_usd_per_hour")),
                    spot_usd_per_hour=_num(r.get("spot_usd_per_hour")),
                    usd_per_gpu_hour=_num(r.get("usd_per_gpu_hour")),
                    spot_usd_per_gpu_hour=_num(r.get("spot_usd_per_gpu_hour")),
                    region=r.get("region", "") or "", source=r.get("source", "") or "",
                    as_of=r.get("as_of", "") or "",
                ))
            except ValueError as e:
                raise UserError(f"{p}:{i}: bad number in price row ({e})") from e
    return rows


def write_catalog(rows: list[dict], path: Path | str) -> None:
    """Write rows (dicts with CATALOG_COLUMNS keys) as a catalog CSV."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(CATALOG_COLUMNS), lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CATALOG_COLUMNS})
