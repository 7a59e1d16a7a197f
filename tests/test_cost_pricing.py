"""Pricing resolution: precedence, catalog rules, overrides and one-line errors."""

import pytest

from profiler.cost.catalog import load_catalog
from profiler.cost.gpus import KNOWN_GPUS, canonical_gpu
from profiler.cost.pricing import Pricing, resolve_pricing


@pytest.mark.parametrize("name,gid", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"), ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA A100-SXM4-40GB", "a100-40gb"), ("NVIDIA H200", "h200"), ("NVIDIA B200", "b200"),
    ("NVIDIA L40S", "l40s"), ("NVIDIA L4", "l4"), ("NVIDIA A10G", "a10g"), ("NVIDIA H100 PCIe", "h100-pcie"),
    ("H100", "h100-sxm"), ("A100-80GB", "a100-80gb"), ("A100", "a100-40gb"), ("h100-sxm", "h100-sxm"),
    ("NVIDIA H100 80GB HBM3 MIG 1g.10gb", "h100-sxm"), ("Tesla T4", None), (None, None), ("", None),
])
def test_canonical_gpu(name, gid):
    assert canonical_gpu(name) == gid


def test_shipped_catalog_covers_gpus_and_providers():
    cat = load_catalog()
    gpus = {r.gpu for r in cat}
    assert {"h100-sxm", "h200", "b200", "a100-40gb", "a100-80gb", "l40s", "l4", "a10g"} <= gpus
    assert {"aws", "gcp", "azure", "lambda", "runpod"} <= {r.provider for r in cat}
    for r in cat:
        assert r.gpu in KNOWN_GPUS
        assert r.usd_per_gpu_hour == pytest.approx(r.on_demand_usd_per_hour / r.gpus_per_instance, rel=1e-5)
        assert r.source and r.as_of
    p5 = [r for r in cat if r.instance_type == "p5.48xlarge"][0]
    assert p5.usd_per_gpu_hour == 6.88 and "skypilot" in p5.source


def test_explicit_gpu_price_wins():
    p = resolve_pricing(gpu_price=2.5, gpu="h100-sxm", provider="aws", detected_gpu="NVIDIA A100-SXM4-80GB")
    assert p.usd_per_gpu_hour == 2.5 and p.gpu == "h100-sxm" and p.source == "--gpu-price"


def test_provider_takes_its_cheapest_row():
    p = resolve_pricing(gpu="h100-sxm", provider="aws")
    assert p.usd_per_gpu_hour == 6.88 and p.provider == "aws"
    s = resolve_pricing(gpu="h100-sxm", provider="AWS", pricing="spot")
    assert s.usd_per_gpu_hour == pytest.approx(1.28) and s.pricing == "spot"
    assert s.instance_type == "p5.48xlarge" and s.gpus_per_instance == 8


def test_no_provider_takes_median_across_providers():
    cat = load_catalog()
    per_provider = sorted(min(r.usd_per_gpu_hour for r in cat if r.gpu == "a100-80gb" and r.provider == prov)
                          for prov in {r.provider for r in cat if r.gpu == "a100-80gb"})
    p = resolve_pricing(gpu="a100-80gb")
    assert len(per_provider) % 2 == 1
    assert p.usd_per_gpu_hour == pytest.approx(per_provider[len(per_provider) // 2])
    assert p.provider == "median" and "median" in p.source


def test_detected_gpu_is_the_default():
    p = resolve_pricing(detected_gpu="NVIDIA H100 80GB HBM3", provider="lambda")
    assert p.gpu == "h100-sxm" and p.provider == "lambda"
    assert resolve_pricing(gpu="l4", detected_gpu="NVIDIA H100 80GB HBM3").gpu == "l4"


def test_nothing_known_gives_empty_price_and_notice():
    p = resolve_pricing()
    assert p.usd_per_gpu_hour is None and "cost columns" in p.notice
    q = resolve_pricing(detected_gpu="Tesla T4")
    assert q.usd_per_gpu_hour is None and "Tesla T4" in q.notice


def test_yaml_overrides_and_energy(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("gpus:\n  h100-sxm: {on_demand: 2.49, spot: 1.2}\n  NVIDIA L4: 0.3\n"
                 "provider: mycloud\nenergy_usd_per_kwh: 0.12\npue: 1.3\n")
    p = resolve_pricing(gpu="h100-sxm", prices_file=f)
    assert (p.usd_per_gpu_hour, p.provider, p.energy_usd_per_kwh, p.pue) == (2.49, "mycloud", 0.12, 1.3)
    assert resolve_pricing(gpu="h100-sxm", pricing="spot", prices_file=f).usd_per_gpu_hour == 1.2
    assert resolve_pricing(gpu="l4", prices_file=f).usd_per_gpu_hour == 0.3
    # GPUs the file does not list come from the catalog; flags beat the file
    b = resolve_pricing(gpu="b200", provider="aws", prices_file=f, energy_price=0.2, pue=1.1)
    assert b.usd_per_gpu_hour == pytest.approx(14.2416) and b.energy_usd_per_kwh == 0.2 and b.pue == 1.1
    # a file may add a GPU the catalog lacks
    f2 = tmp_path / "q.yaml"
    f2.write_text("gpus:\n  mi300x: 3.0\n")
    assert resolve_pricing(gpu="mi300x", prices_file=f2).usd_per_gpu_hour == 3.0


def test_csv_prices_file_replaces_catalog(tmp_path):
    f = tmp_path / "cat.csv"
    f.write_text("gpu,provider,instance_type,gpus_per_instance,usd_per_gpu_hour\nh100-sxm,acme,box8,8,1.5\n")
    p = resolve_pricing(gpu="h100-sxm", prices_file=f)
    assert p.usd_per_gpu_hour == 1.5


def _one_line(e):
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_errors_name_the_problem_and_the_choices(tmp_path):
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h300")
    msg = _one_line(e)
    assert "h300" in msg and "h100-sxm" in msg and "a10g" in msg
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h100-sxm", provider="coreweave")
    msg = _one_line(e)
    assert "coreweave" in msg and "aws" in msg and "lambda" in msg
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h100", pricing="reserved")
    assert "on_demand" in _one_line(e)
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [1, 2\n")
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h100-sxm", prices_file=bad)
    assert "invalid YAML" in _one_line(e) and "energy_usd_per_kwh" in str(e.value)
    bad.write_text("gpus:\n  h100-sxm: cheap\n")
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h100-sxm", prices_file=bad)
    assert "must be a number" in _one_line(e)
    bad.write_text("gpu: {h100-sxm: 1}\n")
    with pytest.raises(ValueError) as e:
        resolve_pricing(gpu="h100-sxm", prices_file=bad)
    assert "unknown keys" in _one_line(e) and "gpus" in str(e.value)
    with pytest.raises(ValueError):
        resolve_pricing(gpu="h100-sxm", prices_file=tmp_path / "missing.yaml")
    with pytest.raises(ValueError):
        resolve_pricing(gpu_price=-1)


def test_pricing_dict_roundtrip():
    p = resolve_pricing(gpu="h100-sxm", provider="aws", energy_price=0.1)
    assert Pricing.from_dict(p.to_dict()) == p
    assert Pricing.from_dict({}) is None
    assert Pricing.from_dict({"usd_per_gpu_hour": 2.0, "extra": 1}).usd_per_gpu_hour == 2.0
