"""`inferprof cost | size | prices` on a hand-made run folder."""

import json
from pathlib import Path

import pandas as pd
import pytest

from profiler.cost import cli

FIX = Path(__file__).parent / "fixtures" / "skypilot"
H100 = "NVIDIA H100 80GB HBM3"


def make_run(tmp_path: Path, pricing: dict | None = None) -> Path:
    """8 × H100 serving Llama 3.1 8B; point 0 meets ttft_p99 <= 500 ms, point 1 does not."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    base = {"mode": "concurrency", "rate_target": None, "errors": 0, "window_s": 100.0, "ttft_p50_ms": 100.0,
            "tpot_p50_ms": 10.0, "itl_p99_ms": 30.0, "e2e_p99_ms": 3000.0, "power_mean_w": 5600.0,
            "energy_j": 560_000.0, "gpu_count": 8, "gpu_name": H100}
    pts = [
        {**base, "point": 0, "load": 128, "concurrency": 128, "requests": 5000, "ok": 5000, "input_tokens": 1_000_000,
         "output_tokens": 2_000_000, "input_tok_per_s": 10_000.0, "output_tok_per_s": 20_000.0, "req_per_s": 50.0,
         "ttft_p99_ms": 200.0, "tpot_p99_ms": 20.0, "goodput_req_per_s": 49.0, "slo_met": True},
        {**base, "point": 1, "load": 512, "concurrency": 512, "requests": 10000, "ok": 10000, "input_tokens": 2_000_000,
         "output_tokens": 4_000_000, "input_tok_per_s": 20_000.0, "output_tok_per_s": 40_000.0, "req_per_s": 100.0,
         "ttft_p99_ms": 900.0, "tpot_p99_ms": 40.0, "goodput_req_per_s": 60.0, "slo_met": False},
    ]
    pd.DataFrame(pts).to_csv(run / "points.csv", index=False)
    manifest = {"endpoint": {"model": "meta-llama/Llama-3.1-8B-Instruct"}, "slos": {"ttft_p99": 0.5},
                "gpus": [{"name": H100}] * 8, "pricing": pricing or {}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_cost_json_values(tmp_path, capsys):
    run = make_run(tmp_path)
    rc, out, err = run_cli(capsys, "cost", run, "--gpu-price", "6.88", "--energy-price", "0.1", "--json")
    assert rc == 0, err
    rep = json.loads(out)
    p0 = rep["points"][0]
    # 8 × $6.88 × 100 s / 3600 = $1.5289 for 2M output tokens → $0.7644 per 1M
    assert p0["gpu_cost_usd"] == pytest.approx(8 * 6.88 * 100 / 3600)
    assert p0["usd_per_1m_output"] == pytest.approx(0.7644, abs=1e-4)
    assert p0["usd_per_1m_blended"] == pytest.approx(0.7644 * 2 / 3, abs=1e-4)
    # 560 kJ = 0.1556 kWh × $0.1 = $0.01556 per 2M output → $0.00778 per 1M
    assert p0["energy_usd_per_1m_output"] == pytest.approx(560_000 / 3.6e6 * 0.1 / 2, rel=1e-6)
    assert rep["cheapest_slo_point"]["point"] == 0  # point 1 is cheaper but misses the SLO
    assert 0 < p0["sol_fraction"] < 1  # speed-of-light from the shipped Llama 3.1 8B table
    deepinfra = [h for h in rep["hosted"] if h["key"] == "deepinfra/meta-llama/Meta-Llama-3.1-8B-Instruct"][0]
    # mix 1M in / 2M out at $0.03 / $0.05 → (0.03 + 2 × 0.05) / 3 = $0.0433 per 1M
    assert deepinfra["hosted_usd_per_1m_blended"] == pytest.approx(0.13 / 3)
    assert deepinfra["break_even_utilisation"] == pytest.approx((1.52889 / 3) / (0.13 / 3), rel=1e-4)


def test_cost_table_and_compare(tmp_path, capsys):
    run = make_run(tmp_path)
    rc, out, _ = run_cli(capsys, "cost", run, "--gpu-price", "6.88", "--compare", "gpt-4o-mini")
    assert rc == 0
    assert "0.764" in out and "cheapest SLO-meeting point: 0" in out
    assert "gpt-4o-mini" in out and "break-even" in out
    rc, out, _ = run_cli(capsys, "cost", run, "--gpu-price", "6.88", "--format", "markdown")
    assert rc == 0 and "| point |" in out
    rc, out, _ = run_cli(capsys, "cost", run, "--gpu-price", "6.88", "--format", "csv")
    rows = [line.split(",") for line in out.strip().splitlines()]
    assert rows[0][0] == "point" and len(rows) == 3


def test_cost_slo_override_changes_cheapest(tmp_path, capsys):
    run = make_run(tmp_path)
    rc, out, _ = run_cli(capsys, "cost", run, "--gpu-price", "6.88", "--slo", "ttft_p99=1s", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["cheapest_slo_point"]["point"] == 1
    assert rep["cheapest_slo_point"]["usd_per_1m_output"] == pytest.approx(0.7644 / 2, abs=1e-4)


def test_cost_uses_recorded_pricing_then_catalog(tmp_path, capsys):
    run = make_run(tmp_path, pricing={"gpu": "h100-sxm", "provider": "lambda", "usd_per_gpu_hour": 2.99})
    rep = json.loads(run_cli(capsys, "cost", run, "--json")[1])
    assert rep["pricing"]["usd_per_gpu_hour"] == 2.99
    run2 = make_run(tmp_path / "b")
    rep = json.loads(run_cli(capsys, "cost", run2, "--provider", "aws", "--json")[1])
    assert rep["pricing"]["usd_per_gpu_hour"] == 6.88 and rep["pricing"]["gpu"] == "h100-sxm"  # detected GPU


def test_size_rps(tmp_path, capsys):
    run = make_run(tmp_path)
    rc, out, err = run_cli(capsys, "size", run, "--rps", "120", "--gpu-price", "6.88", "--json")
    assert rc == 0, err
    s = json.loads(out)["sizing"]
    # point 0: goodput 49 / 8 GPUs = 6.125 per GPU; ceil(120 / (6.125 × 0.8)) = 25 → 4 replicas of 8
    assert s["point"] == 0 and s["gpus_needed"] == 25 and s["replicas"] == 4 and s["billed_gpus"] == 32
    assert s["usd_per_month_on_demand"] == pytest.approx(32 * 6.88 * 730)
    assert s["usd_per_month_spot"] is not None and s["usd_per_month_spot"] < s["usd_per_month_on_demand"]
    assert s["hosted_usd_per_month"] > 0
    rc, out, _ = run_cli(capsys, "size", run, "--rps", "120", "--gpu-price", "6.88")
    assert "GPUs needed" in out and "25" in out and "160,716.80" in out


def test_size_tokens_per_day_with_slo_and_instances(tmp_path, capsys):
    run = make_run(tmp_path)
    rc, out, err = run_cli(capsys, "size", run, "--tokens-per-day", "5e9", "--slo", "ttft_p99=500ms,tpot_p99=50ms",
                           "--provider", "aws", "--headroom", "0.2", "--json")
    assert rc == 0, err
    s = json.loads(out)["sizing"]
    # 5e9 / 86400 = 57,870 tok/s; 20,000 / 8 = 2,500 per GPU; ceil(57870 / 2000) = 29 → 4 × p5.48xlarge
    assert s["capacity_per_gpu"] == pytest.approx(2500) and s["gpus_needed"] == 29
    assert (s["instances"], s["gpus_per_instance"], s["billed_gpus"]) == (4, 8, 32)
    assert s["usd_per_month_on_demand"] == pytest.approx(32 * 6.88 * 730)
    assert s["usd_per_month_spot"] == pytest.approx(32 * 1.28 * 730)


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    run = make_run(tmp_path)
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus: [1, 2\n")
    cases = [
        (("cost", tmp_path / "missing"), "run folder not found"),
        (("cost", run, "--gpu", "h300"), "known GPUs: h100-sxm"),
        (("cost", run, "--prices", bad), "invalid YAML"),
        (("cost", run, "--gpu-price", "1", "--compare", "gpt-4o-minii"), "close matches"),
        (("cost", run, "--slo", "ttft_p77=1s"), "invalid SLO"),
        (("size", run), "required"),
        (("size", run, "--rps", "10", "--slo", "ttft_p99=1ms"), "no sweep point meets"),
    ]
    for argv, needle in cases:
        rc, out, err = run_cli(capsys, *argv)
        assert rc == 2, argv
        assert needle in err, (argv, err)
        assert len(err.strip().splitlines()) == 1, err


def test_prices_listing_and_import(tmp_path, capsys):
    rc, out, _ = run_cli(capsys, "prices", "--gpu", "NVIDIA H100 80GB HBM3", "--json")
    rep = json.loads(out)
    assert rc == 0 and rep["selected"]["usd_per_gpu_hour"] == 6.88
    assert {r["gpu"] for r in rep["gpus"]} == {"h100-sxm"}
    rc, out, _ = run_cli(capsys, "prices", "--model", "openai/gpt-oss-120b")
    assert rc == 0 and "deepinfra/openai/gpt-oss-120b" in out and "litellm" in out
    dest = tmp_path / "cat.csv"
    rc, out, _ = run_cli(capsys, "prices", "--import-skypilot", *sorted(FIX.glob("*/vms.csv")), "--out", dest)
    assert rc == 0 and "wrote 10" in out
    rc, out, _ = run_cli(capsys, "prices", "--gpu", "a100-40gb", "--provider", "lambda", "--prices", dest, "--json")
    assert json.loads(out)["selected"]["usd_per_gpu_hour"] == pytest.approx(1.29)
    rc, out, _ = run_cli(capsys, "prices", "--yaml-help")
    assert "energy_usd_per_kwh" in out


def test_prices_update_failure_exits_1(tmp_path, capsys, monkeypatch):
    def boom(out):
        raise RuntimeError("pip download litellm failed: no network")

    monkeypatch.setattr(cli, "update_snapshot", boom)
    rc, out, err = run_cli(capsys, "prices", "--update", "--out", tmp_path / "hp.json")
    assert rc == 1 and "old snapshot kept" in err and len(err.strip().splitlines()) == 1


def test_register_and_pricing_args_for_sweep():
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    sweep = sub.add_parser("sweep")
    cli.add_pricing_args(sweep)
    args = parser.parse_args(["sweep", "--gpu", "h200", "--provider", "aws", "--pricing", "on-demand"])
    p = cli.pricing_from_args(args, detected_gpu=H100)
    assert p.gpu == "h200" and p.usd_per_gpu_hour == pytest.approx(7.912)
    args = parser.parse_args(["sweep"])
    assert cli.pricing_from_args(args, detected_gpu=H100).gpu == "h100-sxm"
    for name in ("cost", "size", "prices"):
        assert callable(parser.parse_args([name, "x", "--rps", "1"] if name == "size" else
                                          [name] + (["x"] if name == "cost" else [])).func)
