"""SkyPilot vms.csv importer on small files in SkyPilot's exact per-cloud formats."""

import shutil
from pathlib import Path

import pytest

from profiler.cost.catalog import load_catalog, write_catalog
from profiler.cost.skypilot import cloud_from_path, gcp_host_accelerator, import_skypilot

FIX = Path(__file__).parent / "fixtures" / "skypilot"


def _by(rows, instance, region=None):
    hits = [r for r in rows if r["instance_type"] == instance and (region is None or r["region"] == region)]
    assert len(hits) == 1, hits
    return hits[0]


def test_aws_per_gpu_price_zone_minimum_and_skips():
    rows = import_skypilot([FIX / "aws" / "vms.csv"], as_of="2026-11-23")
    p5 = _by(rows, "p5.48xlarge")
    assert p5["gpu"] == "h100-sxm" and p5["provider"] == "aws" and p5["gpus_per_instance"] == 8
    assert p5["usd_per_gpu_hour"] == pytest.approx(55.04 / 8)  # 6.88
    assert p5["spot_usd_per_hour"] == pytest.approx(10.24)  # cheapest AZ of two
    assert p5["spot_usd_per_gpu_hour"] == pytest.approx(1.28)
    names = {r["instance_type"] for r in rows}
    assert "p5e.48xlarge" not in names  # empty Price: capacity blocks only
    assert "m5.large" not in names  # no GPU
    assert _by(rows, "g6e.xlarge", "us-east-2")["spot_usd_per_gpu_hour"] == pytest.approx(0.53)
    assert all(r["as_of"] == "2026-11-23" for r in rows)


def test_gcp_host_plus_accelerator_rows_joined_by_region():
    rows = import_skypilot([FIX / "gcp" / "vms.csv"])
    a2 = _by(rows, "a2-highgpu-1g", "us-central1")
    assert a2["gpu"] == "a100-40gb"
    assert a2["on_demand_usd_per_hour"] == pytest.approx(0.73948 + 2.93391)
    assert a2["spot_usd_per_hour"] == pytest.approx(0.36975 + 1.4341)
    a3 = _by(rows, "a3-highgpu-8g", "us-east4")
    assert a3["gpu"] == "h100-sxm" and a3["gpus_per_instance"] == 8
    assert a3["usd_per_gpu_hour"] == pytest.approx((9.46006 + 78.37241) / 8)
    g2 = _by(rows, "g2-standard-4")
    assert g2["gpu"] == "l4" and g2["spot_usd_per_hour"] is None  # accelerator spot empty
    assert g2["on_demand_usd_per_hour"] == pytest.approx(0.14707 + 0.56004)
    # europe-west4 host has no A100 accelerator row there; n1 hosts, TPUs, T4 alone: skipped
    assert not [r for r in rows if r["region"] == "europe-west4"]
    assert {r["instance_type"] for r in rows} == {"a2-highgpu-1g", "a3-highgpu-8g", "g2-standard-4"}


def test_gcp_host_table():
    assert gcp_host_accelerator("a2-ultragpu-8g") == ("A100-80GB", 8)
    assert gcp_host_accelerator("a3-megagpu-8g") == ("H100-MEGA", 8)
    assert gcp_host_accelerator("g2-standard-48") == ("L4", 4)
    assert gcp_host_accelerator("n1-standard-8") is None


def test_runpod_and_lambda_headers():
    rows = import_skypilot([FIX / "runpod" / "vms.csv", FIX / "lambda" / "vms.csv"])
    rp = _by(rows, "2x_A100-80GB_SECURE")
    assert rp["gpu"] == "a100-80gb" and rp["usd_per_gpu_hour"] == pytest.approx(1.39)
    assert rp["spot_usd_per_gpu_hour"] == pytest.approx(1.39)
    la = _by(rows, "gpu_8x_a100")
    assert la["gpu"] == "a100-40gb" and la["usd_per_gpu_hour"] == pytest.approx(1.29)
    assert la["spot_usd_per_hour"] is None  # Lambda has no spot
    assert _by(rows, "gpu_1x_a6000")["gpu"] == "a6000"  # unknown GPUs keep a lowercase id
    assert "cpu_4x_general" not in {r["instance_type"] for r in rows}


def test_roundtrip_to_catalog_and_cloud_detection(tmp_path):
    rows = import_skypilot(sorted(FIX.glob("*/vms.csv")))
    out = tmp_path / "cat.csv"
    write_catalog(rows, out)
    cat = load_catalog(out)
    assert len(cat) == len(rows)
    assert {r.provider for r in cat} == {"aws", "gcp", "runpod", "lambda"}
    # a file named <cloud>_vms.csv works too; an anonymous one says how to name it
    shutil.copy(FIX / "lambda" / "vms.csv", tmp_path / "lambda_vms.csv")
    assert cloud_from_path(tmp_path / "lambda_vms.csv") == "lambda"
    shutil.copy(FIX / "lambda" / "vms.csv", tmp_path / "vms.csv")
    with pytest.raises(ValueError, match="known clouds"):
        cloud_from_path(tmp_path / "vms.csv")


def test_not_a_vms_csv(tmp_path):
    bad = tmp_path / "aws" / "vms.csv"
    bad.parent.mkdir()
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing columns"):
        import_skypilot([bad])
