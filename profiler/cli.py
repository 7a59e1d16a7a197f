"""`inferprof` command line: parses flags into specs and calls library functions.

A user error (`profiler.errors.UserError`, `workloads.errors.WorkloadError`,
`backends.errors.BackendError`) ends with one line on stderr and exit code 2. Anything else is a
bug: exit code 1, one line, and the traceback written to a log file the line names.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from profiler.capacity_cli import (
    add_search_args,
    answer_line,
    plan_for_resume,
    plan_from_args,
    search_summary,
)
from profiler.cost.cli import add_pricing_args, pricing_from_args
from profiler.cost.cli import register as register_cost
from profiler.errors import Interrupted, UserError
from profiler.faultflags import add_fault_args, fault_spec_fields, resume_from_args
from profiler.https import add_hosted_args, add_tls_args, hosted_pricing_for, tls_from_args
from profiler.predict_cli import register as register_predict
from profiler.report.cli import register as register_compare
from profiler.slo import parse_slos
from profiler.spec import SweepSpec, parse_duration, parse_number_list
from profiler.tables import FORMATS, SUMMARY, print_table, to_records

EXIT_USAGE = 2
EXIT_BUG = 1
TELEMETRY_FLAGS = ("no_telemetry", "metrics_url", "dcgm_url", "no_nvml", "gpus", "telemetry_period")
EMBEDDED_PRESET = "h100-llama3-8b"  # the sweep's embedded mock; `mock-server` alone: MOCK_DEFAULT_PRESET
TURN_COLUMNS = [("point", "pt", "{:.0f}"), ("concurrency", "sessions", "{:.0f}"), ("turn", "turn", "{:.0f}"),
                ("ok", "ok", "{:.0f}"), ("ttft_p50_ms", "TTFT p50 ms", "{:.1f}"), ("ttft_p99_ms", "TTFT p99 ms", "{:.1f}"),
                ("input_tokens_mean", "input tokens", "{:.0f}")]  # turns.csv as printed after a multi-turn sweep


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line instead of usage + message
        raise UserError(message)


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="endpoint base URL, e.g. http://127.0.0.1:8000 (default: start the embedded mock)")
    p.add_argument("--backend", default="openai", choices=["openai", "triton", "anthropic", "responses"],
                   help="endpoint protocol: openai (chat/completions), triton, anthropic (Messages API), "
                        "responses (OpenAI Responses API)")
    p.add_argument("--protocol", default="http", choices=["http", "grpc"], help="Triton transport")
    p.add_argument("--model", default="", help="served model name (default: the first the server lists)")
    p.add_argument("--api", default="chat", choices=["chat", "completions"])
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency", help="closed loop: requests in flight per point, e.g. 1,2,4,8")
    load.add_argument("--rate", help="open loop: request rates per point (req/s), e.g. 0.5,1,2")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per point (default: 8 x concurrency, at least 32; open loop: 20 s of arrivals)")
    p.add_argument("--duration", help="seconds per point instead of a request count, e.g. 60s")
    p.add_argument("--input-tokens", default="128", help="prompt length: N | uniform:A,B | normal:MEAN,STD | lognormal:MEDIAN,SIGMA")
    p.add_argument("--output-tokens", default="128", help="max_tokens (with ignore_eos), same forms as --input-tokens")
    p.add_argument("--arrival", default="poisson", choices=["poisson", "constant"], help="open-loop arrivals")
    p.add_argument("--max-concurrency", type=int, default=None, help="open loop: cap on requests in flight")
    p.add_argument("--tokenizer", default="", help="local tokenizer directory or tokenizer.json (exact prompt lengths)")
    p.add_argument("--slo", default="", help="e.g. ttft_p99=500ms,tpot_p99=50ms")
    p.add_argument("--warmup", type=float, default=None,
                   help="share of each point's first requests left out (default: found per point by MSER-5 on TTFT)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="load generator processes (default: sized to the machine)")
    p.add_argument("--request-timeout", default="600s", help="per-request deadline")
    p.add_argument("--transport", default="epoll", choices=["epoll", "threads"],
                   help="load generator: one epoll loop per worker (default) or one thread per stream")
    p.add_argument("--api-key-env", default="", help="name of an environment variable holding the API key (never stored)")
    p.add_argument("--no-ignore-eos", action="store_true",
                   help="do not send ignore_eos (for servers that reject it, e.g. `transformers serve`); "
                        "outputs may then end before --output-tokens")
    p.add_argument("--out", default="results", help="parent folder of the run folder (default results/)")
    p.add_argument("--json", action="store_true", help="print a JSON object with run_dir and the per-point summary")
    p.add_argument("--format", default="table", choices=FORMATS, help="format of the printed summary")
    p.add_argument("--preset", default=EMBEDDED_PRESET, help="embedded mock: performance preset")
    p.add_argument("--mock-arg", action="append", default=[], help="embedded mock: extra flag, e.g. --mock-arg=--fail-rate=0.1")
    p.add_argument("--no-report", action="store_true", help="skip report.html and plots")
    t = p.add_argument_group("telemetry")
    t.add_argument("--metrics-url", help="server Prometheus page (default: URL/metrics)")
    t.add_argument("--dcgm-url", help="a dcgm-exporter, e.g. http://gpu-node:9400/metrics")
    t.add_argument("--no-nvml", action="store_true", help="do not read local GPUs through NVML")
    t.add_argument("--gpus", help="NVML GPU indices to sample, e.g. 0,1 (default: all)")
    t.add_argument("--telemetry-period", default="100ms", help="sampling period (default 100ms)")
    t.add_argument("--no-telemetry", action="store_true", help="sample nothing besides the requests")
    add_fault_args(p)
    from profiler.quality.cli import add_quality_args

    add_quality_args(p)
    from profiler.traffic import add_args as add_traffic_args

    add_traffic_args(p)
    from profiler.raycli import add_args as add_ray_args

    add_ray_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="inferprof", description="GPU inference profiler: latency, throughput, power and cost sweeps")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = sub.add_parser("sweep", help="run a load sweep against an endpoint (default: the embedded mock)")
    _sweep_args(sweep)
    add_pricing_args(sweep)
    add_tls_args(sweep)
    add_hosted_args(sweep)
    add_search_args(sweep)
    from profiler.sweepconfig import add_config_arg

    add_config_arg(sweep)  # sweep files: the schema is read from every flag of this parser
    mock = sub.add_parser("mock-server", help="run the CPU mock server alone", add_help=False)
    mock.add_argument("mock_args", nargs=argparse.REMAINDER)
    report = sub.add_parser("report", help="recompute and print a run's per-point table")
    report.add_argument("run_dir")
    report.add_argument("--format", default="table", choices=FORMATS)
    report.add_argument("--html", action="store_true", help="also write report.html and plots")
    report.add_argument("--all-columns", action="store_true", help="print every points.csv column")
    register_cost(sub)
    register_compare(sub)
    from profiler.quality.cli import register as register_quality

    register_quality(sub)
    register_predict(sub)
    from profiler.matrix.cli import register as register_matrix

    register_matrix(sub)
    from profiler.ab_cli import register as register_ab

    register_ab(sub)
    return parser


def _spec_from_args(a) -> SweepSpec:
    if a.rate:
        mode, loads = "rate", parse_number_list(a.rate, "--rate", integer=False)
    else:
        mode, loads = "concurrency", parse_number_list(a.concurrency or "1,4,16,64", "--concurrency", integer=True)
    if a.requests is not None and a.requests <= 0:
        raise UserError("--requests must be positive")
    duration = parse_duration(a.duration) if a.duration else None
    if duration is not None and duration <= 0:
        raise UserError("--duration must be positive")
    if a.warmup is not None and not 0 <= a.warmup < 1:
        raise UserError("--warmup must be in [0, 1)")
    from workloads.lengths import parse_length

    parse_length(a.input_tokens)
    parse_length(a.output_tokens)
    from profiler.raycli import apply_args as apply_ray_args
    from profiler.traffic import apply_args as apply_traffic_args

    return apply_ray_args(a, apply_traffic_args(a, SweepSpec(mode=mode, loads=loads, requests=a.requests,
                     duration_s=duration, input_tokens=a.input_tokens, output_tokens=a.output_tokens,
                     arrival=a.arrival, max_concurrency=a.max_concurrency, warmup_frac=a.warmup, seed=a.seed,
                     workers=a.workers, request_timeout_s=parse_duration(a.request_timeout),
                     slos=parse_slos(a.slo), transport=a.transport, quality=_quality_cfg(a),
                     **fault_spec_fields(a))))


def _quality_cfg(a) -> dict | None:
    from profiler.quality.cli import quality_cfg

    return quality_cfg(a)


def cmd_sweep(a) -> int:
    from profiler.sweep import run_sweep

    resume = resume_from_args(a)  # --resume: spec and endpoint come from the run folder
    if resume is not None:
        spec, plan = resume.spec, plan_for_resume(resume)
    else:
        spec, plan = plan_from_args(a, _spec_from_args(a))
    _check_sweep_flags(a)
    console = Console(stderr=True, soft_wrap=True)
    mock = None
    try:
        url, mock, extra = _endpoint_url(a, console)
        target = _target(a, url, extra, console)
        telemetry = None if a.no_telemetry else (lambda: _telemetry(a, url, console))
        quality = _quality_plan(spec, target)
        run_dir, points = run_sweep(spec, target, a.out, console, command=sys.argv, telemetry=telemetry,
                                    pricing=_pricing(a, target, console), resume=resume, quality=quality,
                                    plan=plan)
        _after_sweep(a, spec, run_dir, console)
    finally:
        if mock is not None:
            mock.stop()
    _print_result(a, run_dir, points)
    return 0


def _check_sweep_flags(a) -> None:
    """Flags that can be checked before anything starts."""
    _telemetry_flags(a)
    pricing_from_args(a)  # bad price flags fail before the sweep, not after it
    if a.url and a.backend != "triton":
        from backends.http1 import parse_url

        parse_url(a.url)  # http:// or https:// only
    if a.tokenizer and not Path(a.tokenizer).exists():
        raise UserError(f"--tokenizer {a.tokenizer}: no such file or directory")
    from profiler.raycli import check as check_ray

    check_ray(a)  # last: it joins the cluster


def _endpoint_url(a, console: Console):
    """(url, the embedded mock or None, manifest extras): --url, or the embedded mock started now."""
    from profiler.sweepconfig import resolved

    extra: dict = {"config": resolved(a)}  # `inferprof sweep --config RUN_DIR/manifest.json` re-runs it
    extra["client"] = {"api_key_env": a.api_key_env, "tokenizer": a.tokenizer, "protocol": a.protocol,
                       "telemetry": {k: getattr(a, k) for k in TELEMETRY_FLAGS}}
    if a.no_ignore_eos:
        extra["ignore_eos"] = False  # the manifest says the output lengths were the server's choice
    if a.url:
        return a.url, None, extra
    from backends.mock.perfmodel import PRESETS
    from profiler.mockproc import MockProcess

    if a.preset not in PRESETS:
        raise UserError(f"unknown --preset {a.preset!r}: choose one of {', '.join(PRESETS)}")
    # serve under the name of the model the preset imitates, so hosted prices compare
    mock = MockProcess(["--preset", a.preset, "--model", PRESETS[a.preset].model, *a.mock_arg]).start()
    extra["server"] = {"kind": "inferprof mock", "preset": a.preset, "args": a.mock_arg}
    console.print(f"embedded mock server ({a.preset}) on {mock.url}")
    return mock.url, mock, extra


def _target(a, url: str, extra: dict, console: Console):
    """The endpoint, its TLS settings and its model, checked."""
    from profiler.endpoint import Target, resolve_model

    target = Target(url=url, model=a.model, api=a.api, backend=a.backend, api_key_env=a.api_key_env,
                    tokenizer=a.tokenizer, extra_manifest=extra, ignore_eos=not a.no_ignore_eos,
                    tls=tls_from_args(a, url))
    if target.tls is not None:
        extra["tls"] = target.tls.manifest()
        if target.tls.insecure:
            console.print("[bold red]warning:[/] --insecure: the server's certificate is NOT verified "
                          "(recorded in manifest.json)")
    if a.backend != "triton":
        resolve_model(target)
    else:
        from backends import triton

        triton.resolve(target, a.protocol)
    return target


def _pricing(a, target, console: Console):
    """The sweep's pricing, resolved once the GPU is known: a hosted API's price list, or GPU-hours."""
    hosted = hosted_pricing_for(a, target, console)

    def pricing(gpus: list[dict]) -> dict:
        if hosted is not None:
            return hosted
        detected = next((g.get("name") for g in gpus if g.get("name")), None)
        p = pricing_from_args(a, detected_gpu=detected)
        if p.notice:
            console.print(f"[yellow]note:[/] {p.notice}")
        return p.to_dict()
    return pricing


def _after_sweep(a, spec: SweepSpec, run_dir: Path, console: Console) -> None:
    """Per-turn table of a multi-turn sweep; report.html (a failure there keeps the measured run)."""
    if spec.turns > 1:
        from profiler.session_report import write_turns

        print_table(write_turns(run_dir), "table", TURN_COLUMNS, title="TTFT and input length by turn",
                    console=Console(stderr=True))
    if not a.no_report:
        from profiler.report import write_report

        try:
            write_report(run_dir)
        except Exception as e:  # a report failure must not lose the measured run
            console.print(f"[yellow]report not written:[/] {type(e).__name__}: {e}")


def _print_result(a, run_dir: Path, points) -> None:
    """The answer first (a capacity search's), then the table or JSON."""
    search = search_summary(run_dir, points)
    if a.json:
        out = {"run_dir": str(run_dir), "points": to_records(points)}
        if search is not None:
            out["search"] = search
        print(json.dumps(out, default=str))
        return
    if search is not None:
        print(answer_line(search))
    wide = None if sys.stdout.isatty() else 220  # a piped summary is read in an editor: don't squash it
    print_table(points, a.format, SUMMARY, title=f"inferprof {run_dir.name}",
                console=Console(width=wide) if a.format == "table" else None)
    print(run_dir)


def _quality_plan(spec: SweepSpec, target):
    """The eval set, scorers and judge, checked (the judge must score one answer) before any point."""
    if not spec.quality:
        return None
    from profiler.endpoint import make_codec
    from profiler.quality.plan import QualityPlan, check_codec

    plan = QualityPlan.build(spec.quality, check_judge=True)
    check_codec(make_codec(target), plan.items)
    return plan


def _telemetry_flags(a) -> tuple[list[int] | None, float]:
    gpus = _gpu_indices(a.gpus) if a.gpus else None
    period = parse_duration(a.telemetry_period)
    if not 0.001 <= period <= 60:
        raise UserError("--telemetry-period must be between 1ms and 60s")
    return gpus, period


def _gpu_indices(text: str) -> list[int]:
    """--gpus 0,1: NVML indices start at 0 (parse_number_list takes positive numbers only)."""
    try:
        gpus = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"invalid --gpus {text!r}: use GPU indices, e.g. 0,1") from None
    if not gpus or min(gpus) < 0:
        raise UserError(f"invalid --gpus {text!r}: use GPU indices (0 and up), e.g. 0,1")
    return gpus


def _telemetry(a, url: str, console: Console):
    from profiler.telemetry import TelemetrySession, build_sources

    gpus, period = _telemetry_flags(a)
    sources, notices = build_sources(url=url, metrics_url=a.metrics_url, dcgm_url=a.dcgm_url,
                                     nvml=not a.no_nvml, gpus=gpus)
    for note in notices:
        console.print(f"[yellow]note:[/] {note}")
    return TelemetrySession(sources, period_s=period, notices=notices)


def cmd_report(a) -> int:
    from profiler import runfolder as rf
    from profiler.points import summarize_run

    run_dir = Path(a.run_dir)
    if not (run_dir / rf.MANIFEST).exists():
        raise UserError(f"{run_dir} is not a run folder (no {rf.MANIFEST})")
    points = summarize_run(run_dir)
    try:  # points.csv is derived: rewrite it from the raw files (a read-only folder keeps its own)
        rf.write_points_csv(run_dir, points)
    except OSError:
        pass
    cols = None if a.all_columns else SUMMARY
    print_table(points, a.format, cols, title=f"inferprof {run_dir.name}",
                console=Console(width=None if sys.stdout.isatty() else 220))
    if a.html:
        from profiler.report import write_report

        print(write_report(run_dir))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["mock-server"]:
        from backends.mock.server import main as mock_main

        return mock_main(argv[1:])
    try:
        parser = build_parser()
        a = parser.parse_args(argv)
        if a.command == "sweep":
            from profiler.sweepconfig import apply_config

            return cmd_sweep(apply_config(parser, a, argv))
        if a.command == "report":
            return cmd_report(a)
        return a.func(a)
    except user_errors() as e:
        print(f"inferprof: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("inferprof: interrupted; finished points are kept in the run folder", file=sys.stderr)
        return 130
    except Interrupted as e:
        print(f"inferprof: {e}; the point under way was ended and recorded, finished points are kept "
              "(inferprof sweep --resume RUN_DIR goes on)", file=sys.stderr)
        return 128 + e.signum
    except Exception as e:  # a bug, not bad input: one line, the traceback in a log file
        if os.environ.get("INFERPROF_DEBUG"):
            raise
        log = write_traceback()
        print(f"inferprof: internal error: {type(e).__name__}: {e} (traceback: {log}; "
              "INFERPROF_DEBUG=1 shows it here)", file=sys.stderr)
        return EXIT_BUG


def user_errors() -> tuple[type[Exception], ...]:
    """The error classes a user can fix (see the module docstring)."""
    from backends.errors import BackendError
    from workloads.errors import WorkloadError

    return (UserError, WorkloadError, BackendError)


def write_traceback() -> str:
    """Write the current exception's traceback to a log file; return its path."""
    import tempfile
    import time
    import traceback

    base = Path(os.environ.get("INFERPROF_CACHE") or Path.home() / ".cache" / "inferprof") / "logs"
    text = f"inferprof {' '.join(sys.argv[1:])}\n{traceback.format_exc()}"
    for folder in (base, Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"inferprof-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
            path.write_text(text)
            return str(path)
        except OSError:
            continue
    return "unwritable; run again with INFERPROF_DEBUG=1"


if __name__ == "__main__":
    sys.exit(main())

