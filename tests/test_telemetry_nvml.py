"""NVML source against a fake NVML patched in at the module boundary (the `pynvml` functions)."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pynvml
import pytest

from profiler.telemetry import NO_GPU_NOTICE, TelemetrySession, build_sources
from profiler.telemetry.nvml import NvmlSource, resolve_physical

UUIDS = ["GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000"]
U64 = 2**64


def _unsupported():
    return pynvml.NVMLError(pynvml.NVML_ERROR_NOT_SUPPORTED)


class FakeNvml:
    """Two GPUs.  GPU 0 supports everything; GPU 1 lacks the instant-power field, SM/mem clocks
    and TemperatureV (old driver), and its energy counter resets then wraps."""

    def __init__(self):
        self.energy = {0: iter([1_000_000, 1_100_000, 1_200_000, 1_300_000]),
                       1: iter([5_000_000, 6_000_000, 200, U64 - 1000, 500])}
        self.calls: dict[str, int] = {}
        self.init_error: Exception | None = None
        self.shutdowns = 0

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def install(self, mp: pytest.MonkeyPatch) -> None:
        def init():
            if self.init_error is not None:
                raise self.init_error

        def field_values(h, ids):
            self._count("field_values")
            assert ids == [pynvml.NVML_FI_DEV_POWER_INSTANT]
            if h == 1:
                raise _unsupported()
            return [SimpleNamespace(nvmlReturn=pynvml.NVML_SUCCESS, valueType=pynvml.NVML_VALUE_TYPE_UNSIGNED_INT,
                                    value=SimpleNamespace(uiVal=250_500))]

        def clock(h, kind):
            self._count(f"clock{h}")
            if h == 1:
                raise _unsupported()
            return {pynvml.NVML_CLOCK_SM: 1980, pynvml.NVML_CLOCK_MEM: 2619}[kind]

        def temp_v(h, sensor):
            if h == 1:
                raise pynvml.NVMLError(pynvml.NVML_ERROR_FUNCTION_NOT_FOUND)
            return 61

        def shutdown():
            self.shutdowns += 1

        patches = {
            "nvmlInit": init,
            "nvmlShutdown": shutdown,
            "nvmlDeviceGetCount": lambda: 2,
            "nvmlDeviceGetHandleByIndex": lambda i: i,
            "nvmlDeviceGetUUID": lambda h: UUIDS[h],
            "nvmlDeviceGetName": lambda h: "NVIDIA Fake 80GB",
            "nvmlSystemGetDriverVersion": lambda: "550.90.07",
            "nvmlDeviceGetFieldValues": field_values,
            "nvmlDeviceGetPowerUsage": lambda h: 301_000,
            "nvmlDeviceGetTotalEnergyConsumption": lambda h: next(self.energy[h]),
            "nvmlDeviceGetUtilizationRates": lambda h: SimpleNamespace(gpu=87, memory=40),
            "nvmlDeviceGetMemoryInfo": lambda h: SimpleNamespace(total=80 * 2**30, free=0, used=(1000 + h) * 2**20),
            "nvmlDeviceGetClockInfo": clock,
            "nvmlDeviceGetTemperatureV": temp_v,
            "nvmlDeviceGetTemperature": lambda h, sensor: 55,
            "nvmlDeviceGetCurrentClocksEventReasons": lambda h: 0x4 if h == 0 else 0x1,
        }
        for name, fn in patches.items():
            mp.setattr(pynvml, name, fn)


@pytest.fixture
def fake(monkeypatch):
    f = FakeNvml()
    f.install(monkeypatch)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return f


def _by(samples, gpu, metric):
    return [s.value for s in samples if s.gpu == gpu and s.metric == metric]


def test_two_gpus_units_and_fallbacks(fake):
    src, notices = NvmlSource.open()
    assert src is not None and notices == []
    samples = src.poll()
    assert {s.source for s in samples} == {"nvml"}
    assert _by(samples, "0", "power_w") == [250.5]  # instant field, mW -> W
    assert _by(samples, "1", "power_w") == [301.0]  # fallback nvmlDeviceGetPowerUsage
    assert _by(samples, "0", "energy_j") == [1000.0]  # mJ -> J
    assert _by(samples, "0", "gpu_util") == [0.87]
    assert _by(samples, "1", "mem_used_mib") == [1001.0]
    assert _by(samples, "0", "sm_clock_mhz") == [1980.0] and _by(samples, "0", "mem_clock_mhz") == [2619.0]
    assert _by(samples, "1", "sm_clock_mhz") == []  # not supported on GPU 1
    assert _by(samples, "0", "temp_c") == [61.0] and _by(samples, "1", "temp_c") == [55.0]  # old call
    assert _by(samples, "0", "throttle_reasons") == [4.0]
    info = src.gpu_info()
    assert [(i["gpu"], i["uuid"], i["name"], i["driver"]) for i in info] == [
        ("0", UUIDS[0], "NVIDIA Fake 80GB", "550.90.07"),
        ("1", UUIDS[1], "NVIDIA Fake 80GB", "550.90.07"),
    ]
    assert any("GPU 1" in n and "sm_clock_mhz" in n for n in src.notices)


def test_unsupported_calls_dropped_after_first_failure(fake):
    src, _ = NvmlSource.open()
    for _ in range(3):
        src.poll()
    assert fake.calls["clock1"] == 2  # SM and MEM clock each failed once, then never asked again
    assert fake.calls["clock0"] == 6  # GPU 0: SM + MEM on every poll
    assert fake.calls["field_values"] == 3 + 1  # GPU 0 every poll, GPU 1 only the first time
    assert src.errors == 0


def test_energy_counter_reset_and_wrap(fake):
    src, _ = NvmlSource.open(gpus=[1])
    series = [_by(src.poll(), "1", "energy_j")[0] for _ in range(5)]
    # raw mJ: 5e6, 6e6, 200 (reset: continue from new value), 2^64-1000 (growth), 500 (wrap: +1500)
    assert series == pytest.approx([5000.0, 6000.0, 6000.2, 6000.2 + (U64 - 1000 - 200) / 1000, 6000.2 + (U64 - 1000 - 200) / 1000 + 1.5])
    assert all(b >= a for a, b in zip(series, series[1:], strict=False))


def test_other_nvml_errors_are_counted_and_retried(fake, monkeypatch):
    monkeypatch.setattr(pynvml, "nvmlDeviceGetUtilizationRates",
                        lambda h: (_ for _ in ()).throw(pynvml.NVMLError(pynvml.NVML_ERROR_UNKNOWN)))
    src, _ = NvmlSource.open(gpus=[0])
    src.poll()
    src.poll()
    assert src.errors == 2
    assert "gpu_util" not in src._gpus[0].dropped


def test_cuda_visible_devices_uuid_and_index(fake):
    src, _ = NvmlSource.open(env={"CUDA_VISIBLE_DEVICES": "GPU-bbbb2222"})
    assert [i["gpu"] for i in src.gpu_info()] == ["1"]
    src, _ = NvmlSource.open(gpus=[0], env={"CUDA_VISIBLE_DEVICES": "1,0"})
    assert [i["gpu"] for i in src.gpu_info()] == ["1"]
    idx, notices = resolve_physical(["0", "MIG-abc", "7", "1"], UUIDS)
    assert idx == [0] and len(notices) == 2


def test_nvml_absent_gives_one_notice_and_no_samples(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    sources, notices = build_sources(url=None, metrics_url=None, dcgm_url=None, nvml=True, gpus=None)
    assert sources == [] and len(notices) == 1 and notices[0].startswith(NO_GPU_NOTICE)
    with TelemetrySession(sources, period_s=0.01, notices=notices) as s:
        s.sample_now()
        assert s.drain() == []
    assert s.notices == notices


def test_nvml_init_failure_gives_one_notice(fake):
    fake.init_error = pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)
    sources, notices = build_sources(url=None, metrics_url=None, dcgm_url=None, nvml=True, gpus=None)
    assert sources == [] and len(notices) == 1 and notices[0].startswith(NO_GPU_NOTICE)


def test_session_samples_fake_nvml_and_shuts_down(fake):
    sources, notices = build_sources(url=None, metrics_url=None, dcgm_url=None, nvml=True, gpus=[0])
    assert len(sources) == 1
    fake.energy[0] = iter(range(0, 10**9, 1000))
    with TelemetrySession(sources, period_s=0.01, notices=notices) as s:
        s.sample_now()
        got = s.drain()
    assert {x.metric for x in got} >= {"power_w", "energy_j", "gpu_util"}
    assert s.gpu_info()[0]["uuid"] == UUIDS[0]
    s.stop()  # a second stop is harmless
    assert fake.shutdowns == 1
