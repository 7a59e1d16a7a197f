"""`inferprof predict` flags and output (the model is in ``profiler.predict``)."""

from __future__ import annotations

import json
import sys

import pandas as pd
from rich.console import Console

from backends.mock.specmodel import deployment
from profiler.errors import UserError
from profiler.predict import (
    ConfigResult,
    catalog_price,
    cheapest,
    check_inputs,
    gpu_id,
    predict_config,
    result_dict,
    validation_line,
)
from profiler.slo import parse_slos
from profiler.spec import parse_number_list
from profiler.tables import print_table

DTYPES = ("fp16", "bf16", "fp8")
COLUMNS = [("concurrency", "conc", "{:.0f}"), ("ttft_ms", "TTFT ms", "{:.1f}"), ("itl_ms", "ITL ms", "{:.2f}"),
           ("output_tok_per_s", "out tok/s", "{:.0f}"), ("slo", "SLO", "{}"),
           ("usd_per_1m_output", "$/1M out", "{:.3f}")]
SUMMARY = [("config", "configuration", "{}"), ("knee_conc", "knee conc", "{:.0f}"),
           ("ttft_ms", "TTFT ms", "{:.1f}"), ("itl_ms", "ITL ms", "{:.2f}"), ("tok_s", "out tok/s", "{:.0f}"),
           ("usd_gpu_h", "$/GPU-h", "{:.2f}"), ("usd_per_1m", "$/1M out", "{:.3f}"), ("note", "note", "{}")]


def register(subparsers) -> None:
    p = subparsers.add_parser("predict", help="estimate TTFT/ITL/throughput and $/1M tokens of GPU configurations "
                              "from specs, before renting one")
    p.add_argument("--gpu", default="h100-sxm", help="GPU id(s), comma-separated, e.g. h100-sxm,h200,a100-80gb,l40s")
    p.add_argument("--model", default="llama-3.1-8b", help="shipped model name / HF id, or a config.json path")
    p.add_argument("--tp", default="1", help="tensor-parallel size(s), e.g. 1,2,4")
    p.add_argument("--dtype", default="bf16", help="weight dtype(s): fp16, bf16, fp8 (comma-separated)")
    p.add_argument("--kv-dtype", help="KV-cache dtype (default bf16, vLLM's 'auto')")
    p.add_argument("--input-tokens", type=int, default=512)
    p.add_argument("--output-tokens", type=int, default=256)
    p.add_argument("--concurrency", default="1,4,16,64,256", help="closed-loop client counts")
    p.add_argument("--max-num-seqs", type=int, default=256, help="engine batch cap (vLLM default 256)")
    p.add_argument("--slo", help="e.g. ttft_p99=500ms,tpot_p99=50ms (checked against predicted means)")
    p.add_argument("--provider", help="price: cheapest row of this provider (default: median across providers)")
    p.add_argument("--pricing", choices=("on_demand", "spot"), default="on_demand")
    p.add_argument("--gpu-price", type=float, metavar="USD", help="$ per GPU-hour for every GPU compared")
    p.add_argument("--prices", metavar="FILE", help="price overrides (.yaml) or catalog .csv")
    p.add_argument("--json", action="store_true", help='print {"configs": [{..., "points": [...]}], ...}')
    p.set_defaults(func=cmd_predict)


def _list(text: str, flag: str) -> list[str]:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise UserError(f"{flag} is empty")
    return items


def _dtypes(text: str) -> list[str]:
    out = [d.lower() for d in _list(text, "--dtype")]
    bad = [d for d in out if d not in DTYPES]
    if bad:
        raise UserError(f"--dtype {bad[0]!r}: choose from {', '.join(DTYPES)}")
    return out


def run_predictions(a) -> tuple[list[ConfigResult], dict]:
    gpus = _list(a.gpu, "--gpu")
    tps = parse_number_list(a.tp, "--tp", integer=True)
    concs = parse_number_list(a.concurrency, "--concurrency", integer=True)
    check_inputs(a.input_tokens, a.output_tokens, concs, tps)
    if a.max_num_seqs < 1:
        raise UserError("--max-num-seqs must be >= 1")
    slos = parse_slos(a.slo)
    dtypes = _dtypes(a.dtype)
    for gpu in gpus:  # every name checked before any work: a typo is one line, exit 2
        deployment(gpu_id(gpu), a.model, 1, dtypes[0], a.kv_dtype)
    results = []
    for gpu in gpus:
        price = catalog_price(gpu_id(gpu), a.provider, a.pricing, a.gpu_price, a.prices)
        for dtype in dtypes:
            for tp in tps:
                results.append(predict_config(gpu, a.model, int(tp), dtype, a.kv_dtype, a.input_tokens,
                                              a.output_tokens, [int(c) for c in concs], slos, price,
                                              a.max_num_seqs))
    return results, slos


def _label(r: ConfigResult) -> str:
    return f"{r.gpu} x{r.tp} {r.dtype} (kv {r.kv_dtype})"


def _summary(results: list[ConfigResult]) -> pd.DataFrame:
    rows = []
    for r in results:
        k = r.knee
        rows.append({"config": _label(r), "knee_conc": k.concurrency if k else None,
                     "ttft_ms": k.ttft_ms if k else None, "itl_ms": k.itl_ms if k else None,
                     "tok_s": k.output_tok_per_s if k else None, "usd_gpu_h": r.usd_per_gpu_hour,
                     "usd_per_1m": k.usd_per_1m_output if k else None,
                     "note": "" if r.fits and k else (r.note.split(": ", 1)[-1] if not r.fits
                                                           else "no point meets the SLO")})
    return pd.DataFrame(rows)


def _points(r: ConfigResult) -> pd.DataFrame:
    df = pd.DataFrame([p.__dict__ for p in r.points])
    df["slo"] = df["slo_met"].map({True: "met", False: "missed", None: ""})
    return df


def cmd_predict(a) -> int:
    results, slos = run_predictions(a)
    best = cheapest(results)
    caveat = validation_line()
    if a.json:
        doc = {"estimate": True, "validation": caveat, "model": results[0].model,
               "input_tokens": a.input_tokens, "output_tokens": a.output_tokens, "slos_ms": {
                   k: v * 1e3 for k, v in slos.items()},
               "configs": [result_dict(r) for r in results],
               "cheapest": None if best is None else {"gpu": best.gpu, "tp": best.tp, "dtype": best.dtype,
                                                      "kv_dtype": best.kv_dtype, **result_dict(best)["knee"]}}
        if len(results) == 1:
            doc["points"] = doc["configs"][0]["points"]
        print(json.dumps(doc, indent=1, allow_nan=False, default=str))
        return 0
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(f"[bold]{caveat}[/bold]")
    if slos:
        console.print("SLOs are checked against predicted MEANS; a percentile SLO needs headroom above these.")
    for r in results:
        if r.fits and len(results) <= 2:
            print_table(_points(r), "table", COLUMNS, title=f"{r.model} on {_label(r)}: {r.note}", console=console)
    print_table(_summary(results), "table", SUMMARY,
                title=f"{results[0].model}, {a.input_tokens} in / {a.output_tokens} out: knee per configuration",
                console=console)
    if best is not None:
        k = best.knee
        console.print(f"cheapest{' meeting the SLOs' if slos else ''}: {_label(best)} at concurrency "
                      f"{k.concurrency}: ${k.usd_per_1m_output:.3f} per 1M output tokens (estimate)")
    elif slos:
        console.print("no configuration meets the SLOs (or none has a price)")
    return 0
