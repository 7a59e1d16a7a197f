"""Import SkyPilot catalog ``vms.csv`` files into our GPU price catalog schema.

SkyPilot's files (repo skypilot-org/skypilot-catalog, ``catalogs/v8/<cloud>/vms.csv``)
order columns differently per cloud, so rows are read by header. ``Price`` and
``SpotPrice`` are per INSTANCE-hour; we divide by ``AcceleratorCount``. Rows with an
empty ``Price`` (not rentable on demand, e.g. AWS capacity-block-only p5e) are skipped;
rows are per availability zone, and we keep one row per (instance type, region) with
the lowest price of its zones.

GCP quirk: a2/a3/a4/g2 machine rows carry only the host VM price (empty
AcceleratorName); GPU prices are separate rows with an empty InstanceType
(``,,,<Accel>,<count>,...``). Total = host row + accelerator row for the same
accelerator name, count and region (zone-level prices are reduced to the region
minimum first). The GPU behind a host type comes from ``GCP_HOST_GPUS``; n1 hosts
(any GPU can be attached) are not imported.
"""

from __future__ import annotations

import csv
import datetime as _dt
import re
from collections.abc import Iterable
from pathlib import Path

from profiler.errors import UserError

from .gpus import canonical_gpu

CLOUDS = ("aws", "gcp", "azure", "lambda", "runpod", "vast", "nebius", "oci", "fluidstack", "cudo",
          "paperspace", "hyperbolic", "do", "ibm", "scp", "kubernetes")

# GCP machine family prefix -> SkyPilot accelerator name. Count = the "-<N>g" suffix,
# or for g2 the vCPU table below.
GCP_HOST_GPUS = (
    (r"^a2-highgpu-(\d+)g$", "A100"),
    (r"^a2-megagpu-(\d+)g$", "A100"),
    (r"^a2-ultragpu-(\d+)g$", "A100-80GB"),
    (r"^a3-highgpu-(\d+)g$", "H100"),
    (r"^a3-edgegpu-(\d+)g(-nolssd)?$", "H100"),
    (r"^a3-megagpu-(\d+)g$", "H100-MEGA"),
    (r"^a3-ultragpu-(\d+)g$", "H200"),
    (r"^a4-highgpu-(\d+)g$", "B200"),
)
# g2-standard-<vCPUs> -> number of L4 GPUs (GCP G2 machine table)
G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}


def _num(v: str | None) -> float | None:
    if v is None or str(v).strip() == "":
        return None
    try:
        return float(v)
    except ValueError:
        return None


def gcp_host_accelerator(instance_type: str) -> tuple[str, int] | None:
    """(SkyPilot accelerator name, count) fixed by a GCP machine type, or None."""
    for pat, accel in GCP_HOST_GPUS:
        m = re.match(pat, instance_type)
        if m:
            return accel, int(m.group(1))
    m = re.match(r"^g2-standard-(\d+)$", instance_type)
    if m and int(m.group(1)) in G2_L4_COUNT:
        return "L4", G2_L4_COUNT[int(m.group(1))]
    return None


def _gpu_id(accel: str, instance_type: str) -> str:
    gid = canonical_gpu(accel)
    if gid == "h100-sxm" and "pcie" in instance_type.lower():
        gid = "h100-pcie"
    return gid or accel.strip().lower()


def _min(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _reduce_by_region(rows: Iterable[dict], key_fields: tuple[str, ...]) -> dict[tuple, dict]:
    """Per key (incl. region): the lowest Price and lowest SpotPrice across zones."""
    out: dict[tuple, dict] = {}
    for r in rows:
        k = tuple(r[f] for f in key_fields)
        cur = out.get(k)
        if cur is None:
            out[k] = dict(r)
        else:
            cur["Price"] = _min(cur["Price"], r["Price"])
            cur["SpotPrice"] = _min(cur["SpotPrice"], r["SpotPrice"])
    return out


def _out_row(cloud: str, instance: str, accel: str, count: int, price: float | None,
             spot: float | None, region: str, source: str, as_of: str) -> dict:
    return {
        "gpu": _gpu_id(accel, instance), "provider": cloud, "instance_type": instance,
        "gpus_per_instance": count,
        "on_demand_usd_per_hour": None if price is None else round(price, 6),
        "spot_usd_per_hour": None if spot is None else round(spot, 6),
        "usd_per_gpu_hour": None if price is None else round(price / count, 6),
        "spot_usd_per_gpu_hour": None if spot is None else round(spot / count, 6),
        "region": region, "source": source, "as_of": as_of,
    }


def read_vms_csv(path: Path | str) -> list[dict]:
    """Rows of a vms.csv with numeric Price/SpotPrice/AcceleratorCount (None if empty)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        need = {"InstanceType", "AcceleratorName", "AcceleratorCount", "Price", "Region"}
        missing = need - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{path}: not a SkyPilot vms.csv, missing columns {sorted(missing)}")
        rows = []
        for r in reader:
            rows.append({
                "InstanceType": (r.get("InstanceType") or "").strip(),
                "AcceleratorName": (r.get("AcceleratorName") or "").strip(),
                "AcceleratorCount": _num(r.get("AcceleratorCount")),
                "Price": _num(r.get("Price")),
                "SpotPrice": _num(r.get("SpotPrice")),
                "Region": (r.get("Region") or "").strip(),
            })
    return rows


def import_rows(rows: list[dict], cloud: str, source: str, as_of: str) -> list[dict]:
    """Catalog rows from parsed vms.csv rows of one cloud (pure)."""
    out: list[dict] = []
    if cloud == "gcp":
        hosts = [r for r in rows if r["InstanceType"] and not r["AcceleratorName"] and r["Price"] is not None]
        accels = [r for r in rows if not r["InstanceType"] and r["AcceleratorName"] and r["AcceleratorCount"]]
        accel_by = _reduce_by_region(accels, ("AcceleratorName", "AcceleratorCount", "Region"))
        host_by = _reduce_by_region(hosts, ("InstanceType", "Region"))
        for (itype, region), h in sorted(host_by.items()):
            acc = gcp_host_accelerator(itype)
            if acc is None:
                continue
            name, count = acc
            a = accel_by.get((name, float(count), region))
            if a is None or a["Price"] is None:
                continue  # GPU not sold on demand in this region
            price = h["Price"] + a["Price"]
            spot = h["SpotPrice"] + a["SpotPrice"] if h["SpotPrice"] is not None and a["SpotPrice"] is not None else None
            out.append(_out_row(cloud, itype, name, count, price, spot, region,
                                f"{source} (host {h['Price']:g} + {count}x{name} {a['Price']:g})", as_of))
        # Instance rows that already carry their accelerator (some catalogs mix both)
        rows = [r for r in rows if r["InstanceType"] and r["AcceleratorName"]]
    gpu_rows = [r for r in rows if r["InstanceType"] and r["AcceleratorName"]
                and r["AcceleratorCount"] and r["Price"] is not None]
    for (itype, region), r in sorted(_reduce_by_region(gpu_rows, ("InstanceType", "Region")).items()):
        count = int(r["AcceleratorCount"])
        if count < 1:
            continue  # fractional GPUs (e.g. AWS g6f) have no whole-GPU price
        out.append(_out_row(cloud, itype, r["AcceleratorName"], count, r["Price"], r["SpotPrice"],
                            region, source, as_of))
    return out


def cloud_from_path(path: Path | str) -> str:
    """The cloud of a vms.csv from its parent folder name (catalogs/v8/<cloud>/vms.csv)."""
    parent = Path(path).resolve().parent.name.lower()
    if parent in CLOUDS:
        return parent
    stem = Path(path).stem.lower()
    for c in CLOUDS:
        if stem.startswith(c + "_") or stem.startswith(c + "-") or stem == c:
            return c
    raise UserError(f"cannot tell the cloud of {path}: put it in a folder named after the cloud "
                     f"(e.g. gcp/vms.csv) or name it <cloud>_vms.csv; known clouds: {', '.join(CLOUDS)}")


def import_skypilot(paths: Iterable[Path | str], as_of: str | None = None) -> list[dict]:
    """Catalog rows (CATALOG_COLUMNS dicts) from SkyPilot vms.csv files."""
    as_of = as_of or _dt.date.today().isoformat()
    out: list[dict] = []
    for p in paths:
        cloud = cloud_from_path(p)
        out.extend(import_rows(read_vms_csv(p), cloud, f"skypilot-catalog {cloud}/vms.csv", as_of))
    return out
