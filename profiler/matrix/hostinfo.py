"""What the matrix ran on: `nvidia-smi` GPUs and the cloud instance (AWS/GCP metadata service).

The metadata probes use 1 s timeouts and run in a thread joined for 4 s (name resolution is not
covered by urlopen's timeout); INFERPROF_NO_IMDS=1 never contacts them. Traffic to 169.254.169.254
and metadata.google.internal only happens on a cloud instance, where they answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import urllib.request

NVSMI_QUERY = ["nvidia-smi", "--query-gpu=index,name,driver_version,memory.total", "--format=csv"]
IMDS = "http://169.254.169.254"
GCP_META = "http://metadata.google.internal/computeMetadata/v1/instance/"


def nvidia_smi() -> tuple[str | None, list[dict]]:
    """nvidia-smi's CSV text and its rows as dicts; (None, []) without a working nvidia-smi."""
    if not shutil.which("nvidia-smi"):
        return None, []
    try:
        text = subprocess.run(NVSMI_QUERY, capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None, []
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2:
        return text or None, []
    keys = [k.strip() for k in lines[0].split(",")]
    return text, [dict(zip(keys, (v.strip() for v in ln.split(",")), strict=False)) for ln in lines[1:]]


def gpu_indices(rows: list[dict]) -> list[int]:
    out = []
    for i, r in enumerate(rows):
        try:
            out.append(int(r.get("index", i)))
        except ValueError:
            out.append(i)
    return out


def _get(url: str, headers: dict | None = None, method: str = "GET") -> str:
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    with urllib.request.urlopen(req, timeout=1) as r:
        return r.read().decode().strip()


def _aws() -> dict:
    tok = _get(IMDS + "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, "PUT")
    h = {"X-aws-ec2-metadata-token": tok}
    return {"provider": "aws", "instance_type": _get(IMDS + "/latest/meta-data/instance-type", h),
            "region": _get(IMDS + "/latest/meta-data/placement/region", h)}


def _gcp() -> dict:
    h = {"Metadata-Flavor": "Google"}
    zone = _get(GCP_META + "zone", h).rsplit("/", 1)[-1]
    return {"provider": "gcp", "instance_type": _get(GCP_META + "machine-type", h).rsplit("/", 1)[-1],
            "zone": zone, "region": zone.rsplit("-", 1)[0]}


def cloud_instance() -> dict | None:
    """Provider, instance type and region from the metadata service; None off-cloud."""
    if os.environ.get("INFERPROF_NO_IMDS") == "1":
        return None
    for probe in (_aws, _gcp):
        box: dict = {}

        def run(probe=probe, box=box) -> None:
            try:
                box["v"] = probe()
            except Exception:  # any failure means "not this cloud"
                pass

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(4.0)
        if box.get("v"):
            return box["v"]
    return None


def host_info() -> dict:
    text, rows = nvidia_smi()
    return {"nvidia_smi": text, "nvidia_smi_gpus": rows, "cloud": cloud_instance(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}
