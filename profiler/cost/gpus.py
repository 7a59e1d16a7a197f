"""Canonical GPU ids and the alias map from NVML/DCGM/SkyPilot names.

Every price and spec table in inferprof keys GPUs by a short lowercase id
(``h100-sxm``, ``a100-80gb`` ...). Telemetry reports marketing names such as
``NVIDIA H100 80GB HBM3``; SkyPilot uses ``H100`` / ``A100-80GB``. ``canonical_gpu``
maps all of them to one id, or returns None when it cannot tell.
"""

from __future__ import annotations

import re

# Ids we ship prices and/or specs for. Order is the display order.
KNOWN_GPUS: tuple[str, ...] = (
    "h100-sxm", "h100-pcie", "h100-nvl", "h200", "b200",
    "a100-40gb", "a100-80gb", "l40s", "l4", "a10g",
)

# Exact names (after _norm) -> id. NVML names come from nvmlDeviceGetName, DCGM's
# modelName label is the same string; SkyPilot AcceleratorName values are included.
_ALIASES: dict[str, str] = {
    # H100
    "nvidia h100 80gb hbm3": "h100-sxm",
    "h100 80gb hbm3": "h100-sxm",
    "nvidia h100 sxm5 80gb": "h100-sxm",
    "h100": "h100-sxm",
    "h100-sxm": "h100-sxm",
    "h100 sxm": "h100-sxm",
    "h100-sxm5": "h100-sxm",
    "h100-mega": "h100-sxm",  # GCP a3-megagpu: same SXM part, faster NICs
    "h100-80gb": "h100-sxm",
    "nvidia h100 pcie": "h100-pcie",
    "h100 pcie": "h100-pcie",
    "h100-pcie": "h100-pcie",
    "nvidia h100 nvl": "h100-nvl",
    "h100 nvl": "h100-nvl",
    "h100-nvl": "h100-nvl",
    # H200 / B200
    "nvidia h200": "h200",
    "nvidia h200 141gb hbm3e": "h200",
    "h200": "h200",
    "h200-141gb": "h200",
    "nvidia b200": "b200",
    "b200": "b200",
    # A100
    "nvidia a100-sxm4-80gb": "a100-80gb",
    "nvidia a100 80gb pcie": "a100-80gb",
    "nvidia a100-pcie-80gb": "a100-80gb",
    "a100-80gb": "a100-80gb",
    "a100 80gb": "a100-80gb",
    "a100 pcie": "a100-80gb",  # RunPod GpuInfo name for its 80GB PCIe part
    "nvidia a100-sxm4-40gb": "a100-40gb",
    "nvidia a100-pcie-40gb": "a100-40gb",
    "nvidia a100 40gb pcie": "a100-40gb",
    "a100": "a100-40gb",  # SkyPilot's plain "A100" is the 40GB part
    "a100-40gb": "a100-40gb",
    # Ada / Ampere inference parts
    "nvidia l40s": "l40s",
    "l40s": "l40s",
    "nvidia l4": "l4",
    "l4": "l4",
    "nvidia a10g": "a10g",
    "a10g": "a10g",
}


def _norm(name: str) -> str:
    return re.sub(r"\s+", " ", name.strip().lower().replace("_", " "))


def canonical_gpu(name: str | None) -> str | None:
    """Map an NVML/DCGM/SkyPilot/user GPU name to a canonical id, or None.

    Exact alias first; then a few patterns that survive vendor suffixes
    (e.g. "NVIDIA H100 80GB HBM3 MIG 1g.10gb").
    """
    if name is None:
        return None
    key = _norm(str(name))
    if not key or key == "nan":
        return None
    if key in _ALIASES:
        return _ALIASES[key]
    if key in KNOWN_GPUS:
        return key
    k = key.removeprefix("nvidia ").replace(" ", "-")
    if k in _ALIASES:
        return _ALIASES[k]
    patterns = (
        (r"h100.*nvl", "h100-nvl"),
        (r"h100.*pcie", "h100-pcie"),
        (r"h100", "h100-sxm"),
        (r"h200", "h200"),
        (r"b200", "b200"),
        (r"a100.*80", "a100-80gb"),
        (r"a100", "a100-40gb"),
        (r"l40s", "l40s"),
        (r"a10g", "a10g"),
        (r"(^|-)l4($|-)", "l4"),
    )
    for pat, gid in patterns:
        if re.search(pat, k):
            return gid
    return None
