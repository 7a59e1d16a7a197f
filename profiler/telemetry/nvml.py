"""NVML sampling through `nvidia-ml-py` (`import pynvml`; not the deprecated `pynvml` package).

Per GPU and poll (units converted to ours):
| metric | NVML call | unit conversion |
|---|---|---|
| power_w | `nvmlDeviceGetFieldValues(h, [NVML_FI_DEV_POWER_INSTANT])`, else `nvmlDeviceGetPowerUsage` | mW / 1000 |
| energy_j | `nvmlDeviceGetTotalEnergyConsumption` (Volta+, since driver load) | mJ / 1000, reset/wrap corrected |
| gpu_util | `nvmlDeviceGetUtilizationRates(h).gpu` | % / 100 |
| mem_used_mib | `nvmlDeviceGetMemoryInfo(h).used` | bytes / 2**20 |
| sm_clock_mhz, mem_clock_mhz | `nvmlDeviceGetClockInfo(h, NVML_CLOCK_SM / NVML_CLOCK_MEM)` | MHz |
| temp_c | `nvmlDeviceGetTemperatureV(h, NVML_TEMPERATURE_GPU)`, else `nvmlDeviceGetTemperature` | degC |
| throttle_reasons | `nvmlDeviceGetCurrentClocksEventReasons`, else `...ClocksThrottleReasons` | bitmask |

`gpu_util` is NVML's duty cycle: the share of the last sample period (1/6 s to 1 s depending on
the product) in which at least one kernel was running.  It is NOT SM occupancy or SM activity: one
tiny kernel running all the time reads 1.0.  Use DCGM `sm_active` / `tensor_active` for that.

`nvmlDeviceGetPowerUsage` is a 1 s average on Ampere (except GA100) and newer; the
`NVML_FI_DEV_POWER_INSTANT` field value is instantaneous, so it is preferred where supported.

A call that raises NVMLError_NotSupported (or FunctionNotFound) on a GPU is dropped for that GPU
and never tried again; other NVML errors are counted in `errors` and the call is retried next poll.

GPU selection.  `gpus` are CUDA ordinals as the user sees them.  When CUDA_VISIBLE_DEVICES is set
in this process, ordinal i means its i-th entry, which may be an NVML index ("1") or a UUID
("GPU-8f2e...", a unique prefix is enough, as CUDA accepts); MIG entries are skipped with a
notice.  With no `gpus`, all devices listed by CUDA_VISIBLE_DEVICES are sampled, or every NVML
device when it is unset.  CUDA's default ordering is FASTEST_FIRST while NVML enumerates by PCI
bus, so index entries are only exact with CUDA_DEVICE_ORDER=PCI_BUS_ID (or a single GPU); UUIDs are
always exact.  The `gpu` column of each sample is the NVML (physical) index, which matches
dcgm-exporter's `gpu` label on the same host.
"""

from __future__ import annotations

import importlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

from profiler.telemetry.samples import CounterTracker, Sample

NO_GPU_NOTICE = "no NVIDIA GPU/NVML: GPU telemetry columns left empty"
_UINT64 = float(2**64)


def load_pynvml() -> ModuleType | None:
    """Import nvidia-ml-py's `pynvml`, or None when it is absent."""
    try:
        return importlib.import_module("pynvml")
    except Exception:  # ImportError, or a broken install: both mean "no NVML"
        return None


def _is_unsupported(nv: ModuleType, exc: BaseException) -> bool:
    codes = {getattr(nv, "NVML_ERROR_NOT_SUPPORTED", 3), getattr(nv, "NVML_ERROR_FUNCTION_NOT_FOUND", 13)}
    return getattr(exc, "value", None) in codes


def _parse_cvd(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def resolve_physical(entries: list[str], uuids: list[str]) -> tuple[list[int], list[str]]:
    """Map CUDA_VISIBLE_DEVICES entries (indices or UUID prefixes) to NVML indices.

    Returns (indices, notices).  Unknown or MIG entries are skipped with a notice, as CUDA stops
    at the first invalid entry we stop there too.
    """
    out: list[int] = []
    notices: list[str] = []
    for entry in entries:
        if entry.startswith("MIG-"):
            notices.append(f"CUDA_VISIBLE_DEVICES entry {entry}: MIG slices are not sampled by NVML here")
            continue
        if entry.lstrip("-").isdigit():
            idx = int(entry)
            if idx < 0 or idx >= len(uuids):
                notices.append(f"CUDA_VISIBLE_DEVICES entry {entry}: no such GPU; later entries ignored")
                break
            out.append(idx)
            continue
        key = entry if entry.startswith("GPU-") else "GPU-" + entry
        hits = [i for i, u in enumerate(uuids) if u.startswith(key)]
        if len(hits) != 1:
            notices.append(f"CUDA_VISIBLE_DEVICES entry {entry}: matches {len(hits)} GPUs; later entries ignored")
            break
        out.append(hits[0])
    return out, notices


@dataclass
class _Gpu:
    index: int
    handle: object
    name: str
    uuid: str
    dropped: set[str] = field(default_factory=set)


class NvmlSource:
    """Samples local GPUs through NVML.  Construct with `NvmlSource.open(...)`."""

    name = "nvml"

    def __init__(self, nv: ModuleType, gpus: list[_Gpu], driver: str, notices: list[str]):
        self._nv = nv
        self._gpus = gpus
        self._driver = driver
        self.notices = notices
        self.errors = 0
        self._energy = CounterTracker(modulus=_UINT64)  # raw mJ from a uint64 register

    @classmethod
    def open(cls, gpus: list[int] | None = None, env: dict[str, str] | None = None) -> tuple[NvmlSource | None, list[str]]:
        """Initialise NVML and pick devices; on any failure return (None, [one notice]), never raise."""
        nv = load_pynvml()
        if nv is None:
            return None, [NO_GPU_NOTICE + " (nvidia-ml-py not importable)"]
        try:
            nv.nvmlInit()
        except Exception as exc:
            return None, [f"{NO_GPU_NOTICE} (nvmlInit failed: {exc})"]
        try:
            count = int(nv.nvmlDeviceGetCount())
            if count <= 0:
                _safe_shutdown(nv)
                return None, [NO_GPU_NOTICE + " (NVML reports 0 devices)"]
            handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            uuids = [_text(nv.nvmlDeviceGetUUID(h)) for h in handles]
            env = dict(os.environ) if env is None else env
            visible = _parse_cvd(env.get("CUDA_VISIBLE_DEVICES"))
            notices: list[str] = []
            if visible is not None:
                physical, notices = resolve_physical(visible, uuids)
            else:
                physical = list(range(count))
            if gpus is not None:
                bad = [g for g in gpus if g < 0 or g >= len(physical)]
                if bad:
                    notices.append(f"--gpus {bad}: not visible (visible: {len(physical)} GPUs); ignored")
                physical = [physical[g] for g in gpus if 0 <= g < len(physical)]
            if not physical:
                _safe_shutdown(nv)
                return None, notices + [NO_GPU_NOTICE + " (no GPU selected)"]
            try:
                driver = _text(nv.nvmlSystemGetDriverVersion())
            except Exception:
                driver = ""
            chosen = [_Gpu(i, handles[i], _text(nv.nvmlDeviceGetName(handles[i])), uuids[i]) for i in physical]
            return cls(nv, chosen, driver, notices), list(notices)
        except Exception as exc:
            _safe_shutdown(nv)
            return None, [f"{NO_GPU_NOTICE} (NVML device query failed: {exc})"]

    def gpu_info(self) -> list[dict]:
        return [
            {"source": "nvml", "gpu": str(g.index), "index": g.index, "name": g.name, "uuid": g.uuid, "driver": self._driver}
            for g in self._gpus
        ]

    def close(self) -> None:
        _safe_shutdown(self._nv)

    def poll(self) -> list[Sample]:
        out: list[Sample] = []
        for g in self._gpus:
            t_ns = time.perf_counter_ns()
            for metric, read in self._readers():
                if metric in g.dropped:
                    continue
                try:
                    value = read(g)
                except Exception as exc:
                    if _is_unsupported(self._nv, exc) or isinstance(exc, AttributeError):
                        g.dropped.add(metric)
                        self.notices.append(f"GPU {g.index}: {metric} not supported by NVML; not sampled")
                    else:
                        self.errors += 1
                    continue
                if value is not None:
                    out.append(Sample(t_ns, "nvml", str(g.index), metric, float(value)))
        return out

    def _readers(self) -> list[tuple[str, Callable[[_Gpu], float | None]]]:
        return [
            ("power_w", self._power),
            ("energy_j", self._energy_j),
            ("gpu_util", lambda g: self._nv.nvmlDeviceGetUtilizationRates(g.handle).gpu / 100.0),
            ("mem_used_mib", lambda g: self._nv.nvmlDeviceGetMemoryInfo(g.handle).used / 2**20),
            ("sm_clock_mhz", lambda g: self._nv.nvmlDeviceGetClockInfo(g.handle, self._nv.NVML_CLOCK_SM)),
            ("mem_clock_mhz", lambda g: self._nv.nvmlDeviceGetClockInfo(g.handle, self._nv.NVML_CLOCK_MEM)),
            ("temp_c", self._temp),
            ("throttle_reasons", self._throttle),
        ]

    def _power(self, g: _Gpu) -> float | None:
        nv = self._nv
        if "power_instant" not in g.dropped:
            try:
                fv = nv.nvmlDeviceGetFieldValues(g.handle, [nv.NVML_FI_DEV_POWER_INSTANT])[0]
                if int(fv.nvmlReturn) == nv.NVML_SUCCESS:
                    return _field_value(nv, fv) / 1000.0
                raise nv.NVMLError(int(fv.nvmlReturn))
            except Exception as exc:
                if not (_is_unsupported(nv, exc) or isinstance(exc, AttributeError)):
                    raise
                g.dropped.add("power_instant")
                self.notices.append(
                    f"GPU {g.index}: instantaneous power field unsupported; using nvmlDeviceGetPowerUsage "
                    "(a 1 s average on Ampere and newer)"
                )
        return nv.nvmlDeviceGetPowerUsage(g.handle) / 1000.0

    def _energy_j(self, g: _Gpu) -> float:
        raw_mj = float(self._nv.nvmlDeviceGetTotalEnergyConsumption(g.handle))
        return self._energy.update(g.index, raw_mj) / 1000.0

    def _temp(self, g: _Gpu) -> float:
        nv = self._nv
        if "temp_v" not in g.dropped and hasattr(nv, "nvmlDeviceGetTemperatureV"):
            try:
                return nv.nvmlDeviceGetTemperatureV(g.handle, nv.NVML_TEMPERATURE_GPU)
            except Exception as exc:
                if not _is_unsupported(nv, exc):
                    raise
                g.dropped.add("temp_v")  # old driver: fall through to the deprecated call
        return nv.nvmlDeviceGetTemperature(g.handle, nv.NVML_TEMPERATURE_GPU)

    def _throttle(self, g: _Gpu) -> float:
        nv = self._nv
        if "reasons_new" not in g.dropped and hasattr(nv, "nvmlDeviceGetCurrentClocksEventReasons"):
            try:
                return nv.nvmlDeviceGetCurrentClocksEventReasons(g.handle)
            except Exception as exc:
                if not _is_unsupported(nv, exc):
                    raise
                g.dropped.add("reasons_new")
        return nv.nvmlDeviceGetCurrentClocksThrottleReasons(g.handle)


def _field_value(nv: ModuleType, fv) -> float:
    """Read a c_nvmlFieldValue_t union member according to its valueType."""
    members = {
        getattr(nv, "NVML_VALUE_TYPE_DOUBLE", 0): "dVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_INT", 1): "uiVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_LONG", 2): "ulVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_LONG_LONG", 3): "ullVal",
        getattr(nv, "NVML_VALUE_TYPE_SIGNED_LONG_LONG", 4): "sllVal",
        getattr(nv, "NVML_VALUE_TYPE_SIGNED_INT", 5): "siVal",
        getattr(nv, "NVML_VALUE_TYPE_UNSIGNED_SHORT", 6): "usVal",
    }
    return float(getattr(fv.value, members.get(int(fv.valueType), "uiVal")))


def _text(v: object) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _safe_shutdown(nv: ModuleType) -> None:
    try:
        nv.nvmlShutdown()
    except Exception:
        pass  # shutdown failure must never break a run
