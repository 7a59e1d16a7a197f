"""`inferprof predict`: JSON shape, comparison and cheapest configuration, the estimate caveat,
one-line exit 2 on bad input; `mock-server --gpu` serves a spec configuration over real HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from profiler import cli


def run_cli(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_points_per_configuration(capsys):
    rc, out, _ = run_cli(capsys, "predict", "--gpu", "h100-sxm", "--model", "llama-3.1-8b", "--tp", "1",
                         "--dtype", "bf16", "--input-tokens", "512", "--output-tokens", "128",
                         "--concurrency", "1,8,64", "--json")
    assert rc == 0
    doc = json.loads(out)
    assert [p["concurrency"] for p in doc["points"]] == [1, 8, 64]
    for p in doc["points"]:
        assert {"concurrency", "ttft_ms", "itl_ms", "output_tok_per_s"} <= set(p)
        assert p["ttft_ms"] > 0 and p["itl_ms"] > 0 and p["output_tok_per_s"] > 0
    tput = [p["output_tok_per_s"] for p in doc["points"]]
    assert tput == sorted(tput)
    assert doc["estimate"] is True and doc["validation"].startswith("ESTIMATE")
    assert doc["configs"][0]["points"] == doc["points"]


def test_comparison_finds_the_cheapest_configuration_meeting_the_slo(capsys):
    rc, out, _ = run_cli(capsys, "predict", "--gpu", "h100-sxm,h200,a100-80gb,l40s", "--tp", "1,2,4",
                         "--model", "meta-llama/Llama-3.1-70B-Instruct", "--dtype", "fp8",
                         "--concurrency", "1,16,64", "--slo", "ttft_p99=2s,tpot_p99=60ms", "--json")
    assert rc == 0
    doc = json.loads(out)
    configs = doc["configs"]
    assert len(configs) == 12 and {(c["gpu"], c["tp"]) for c in configs} >= {("l40s", 1), ("h200", 4)}
    assert not next(c for c in configs if (c["gpu"], c["tp"]) == ("l40s", 1))["fits"]  # 70 GB of weights
    met = [c for c in configs if c["knee"] and c["knee"]["usd_per_1m_output"] is not None]
    assert met
    best = doc["cheapest"]
    assert best["usd_per_1m_output"] == min(c["knee"]["usd_per_1m_output"] for c in met)
    for c in met:
        k = c["knee"]
        assert k["slo_met"] and k["ttft_ms"] <= 2000 and k["itl_ms"] <= 60
        assert k["usd_per_1m_output"] == pytest.approx(
            c["usd_per_gpu_hour"] * c["tp"] / (k["output_tok_per_s"] * 3600) * 1e6, rel=1e-3)


def test_table_says_it_is_an_estimate(capsys):
    rc, out, _ = run_cli(capsys, "predict", "--gpu", "h200", "--model", "qwen2.5-7b", "--concurrency", "1,4")
    assert rc == 0
    assert "ESTIMATE" in out and "validation" in out and "Measure before you buy" in out
    assert "median |error|" in out  # the shipped efficiency.json records its cross-validation


@pytest.mark.parametrize(("argv", "needle"), [
    (("--gpu", "h300"), "unknown GPU 'h300'; known GPUs: h100-sxm"),
    (("--gpu", "h100-sxm,nope"), "unknown GPU 'nope'"),
    (("--model", "llama-9b"), "unknown model 'llama-9b'"),
    (("--model", "/no/such/config.json"), "unknown model"),
    (("--dtype", "int3"), "--dtype 'int3'"),
    (("--concurrency", "0,4"), "--concurrency"),
    (("--tp", "x"), "--tp"),
    (("--slo", "ttft_p77=1s"), "invalid SLO"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    rc, out, err = run_cli(capsys, "predict", *argv)
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1
    assert out == ""


def test_mock_server_serves_a_spec_configuration():
    cmd = [sys.executable, "-m", "profiler", "mock-server", "--port", "0", "--gpu", "h200", "--tp", "2",
           "--dtype", "fp8", "--model", "meta-llama/Llama-3.1-70B-Instruct"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("LISTENING"), line
        base = f"http://127.0.0.1:{int(line.split()[1])}"
        models = json.load(urllib.request.urlopen(base + "/v1/models", timeout=10))
        assert models["data"][0]["id"] == "meta-llama/Llama-3.1-70B-Instruct"
        dcgm = urllib.request.urlopen(base + "/dcgm/metrics", timeout=10).read().decode()
        assert 'modelName="NVIDIA H200"' in dcgm and 'gpu="1"' in dcgm and 'gpu="2"' not in dcgm
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_mock_server_bad_gpu_is_one_line_exit_2():
    r = subprocess.run([sys.executable, "-m", "profiler", "mock-server", "--port", "0", "--gpu", "tpu"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown GPU 'tpu'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
