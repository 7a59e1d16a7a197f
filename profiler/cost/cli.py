"""`inferprof cost | size | prices` and the pricing flags shared with `sweep`.

Wiring (profiler/cli.py): ``register(sub)`` adds the three subcommands, each with
``set_defaults(func=...)`` where func(args) -> exit code; ``add_pricing_args(sweep_parser)``
and ``pricing_from_args(args, detected_gpu)`` give the sweep its Pricing.
Bad input raises ValueError with one line (the main CLI prints it and exits 2);
``main(argv)`` here does the same for standalone use (python -m profiler.cost.cli).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from profiler.errors import UserError
from profiler.runread import parse_flag
from profiler.slo import format_slos, parse_slos

from . import fmt
from .catalog import load_catalog, write_catalog
from .compare_hosted import compare_hosted
from .gpus import canonical_gpu
from .hosted import SNAPSHOT_PATH, find_hosted, load_snapshot, update_snapshot
from .model import add_cost_columns, cheapest_slo_point, point_tokens
from .pricing import PRICES_YAML_DOC, PRICINGS, Pricing, resolve_pricing
from .roofline import add_sol_columns, gpu_spec, load_model_spec
from .run import apply_slos, detected_gpu, gpu_count, load_run, run_model
from .sizing import size_fleet
from .skypilot import import_skypilot

FORMATS = ("table", "json", "csv", "markdown")


def _pricing_kind(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace("ondemand", "on_demand")


def add_pricing_args(parser: argparse.ArgumentParser) -> None:
    """--gpu-price, --gpu, --provider, --pricing, --energy-price, --pue, --prices."""
    g = parser.add_argument_group("pricing (cost per token)")
    g.add_argument("--gpu-price", type=float, metavar="USD", help="$ per GPU-hour; overrides the price catalog")
    g.add_argument("--gpu", metavar="NAME", help="GPU type to price (h100-sxm, h200, b200, a100-80gb, a100-40gb, "
                   "l40s, l4, a10g or an NVML name); default: the GPU telemetry detected")
    g.add_argument("--provider", metavar="NAME", help="cheapest catalog price of this provider (aws, gcp, azure, "
                   "lambda, runpod, ...); default: median across providers")
    g.add_argument("--pricing", type=_pricing_kind, choices=PRICINGS, help="on_demand (default) or spot")
    g.add_argument("--energy-price", type=float, metavar="USD_PER_KWH", help="electricity $/kWh for energy cost")
    g.add_argument("--pue", type=float, help="power usage effectiveness multiplier on GPU energy (default 1.0)")
    g.add_argument("--prices", metavar="FILE", help="price overrides (.yaml, see `inferprof prices --yaml-help`) "
                   "or a catalog .csv (e.g. from --import-skypilot)")


def _pricing_given(args: argparse.Namespace) -> bool:
    return any(getattr(args, k, None) is not None for k in
               ("gpu_price", "gpu", "provider", "pricing", "energy_price", "pue", "prices"))


def pricing_from_args(args: argparse.Namespace, detected_gpu: str | None = None,
                      pricing: str | None = None) -> Pricing:
    """Pricing from the flags of add_pricing_args (ValueError on bad input)."""
    return resolve_pricing(
        gpu_price=getattr(args, "gpu_price", None), gpu=getattr(args, "gpu", None),
        provider=getattr(args, "provider", None),
        pricing=pricing or getattr(args, "pricing", None) or "on_demand",
        energy_price=getattr(args, "energy_price", None), pue=getattr(args, "pue", None),
        prices_file=getattr(args, "prices", None), detected_gpu=detected_gpu,
    )


def _run_pricing(args: argparse.Namespace, manifest: dict, detected: str | None) -> Pricing:
    """Flags win; else what the sweep recorded in manifest.json; else the catalog for the detected GPU."""
    if _pricing_given(args):
        return pricing_from_args(args, detected)
    recorded = Pricing.from_dict(manifest.get("pricing"))
    if recorded is not None and recorded.usd_per_gpu_hour is not None:
        return recorded
    return resolve_pricing(detected_gpu=detected)


def _pricing_line(p: Pricing) -> str:
    if p.usd_per_gpu_hour is None:
        s = "pricing: unknown $/GPU-hour (cost columns empty)"
    else:
        s = (f"pricing: ${p.usd_per_gpu_hour:.4g}/GPU-hour {p.pricing} for {p.gpu or 'GPU'} "
             f"({p.provider or '-'}; {p.source})")
    if p.energy_usd_per_kwh is not None:
        s += f"; energy ${p.energy_usd_per_kwh:g}/kWh × PUE {p.pue:g}"
    return s


def _records(df: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in df.to_dict(orient="records")]


def _slo_text(v: object) -> str:
    met = parse_flag(v)
    if met is pd.NA:
        return "-"
    return "yes" if met else "no"


def _columns(formatter: Callable[[object], str], **headers: str) -> list[fmt.Column]:
    """Table columns key -> header, in the order given, all shown with ``formatter``."""
    return [(key, header, formatter) for key, header in headers.items()]


POINT_TABLE: list[fmt.Column] = [
    ("point", "point", fmt.text),
    ("load", "load", lambda v: fmt.num(v, 2).rstrip("0").rstrip(".")),
    ("output_tok_per_s", "out tok/s", fmt.num),
    ("slo_met", "SLO", _slo_text),
    *_columns(fmt.money, usd_per_1m_output="$/1M out", usd_per_1m_input="$/1M in",
              usd_per_1m_blended="$/1M blend", api_usd_per_1m_input="API-style in",
              api_usd_per_1m_output="API-style out", energy_usd_per_1m_output="energy $/1M out"),
    ("sol_output_tok_per_s", "SoL tok/s", fmt.num),
    ("sol_fraction", "of SoL", fmt.pct),
    # runs measured with an eval set (profiler/quality/summary.py)
    ("useful_rate", "useful", fmt.pct),
    *_columns(fmt.money, usd_per_request="$/req", usd_per_useful_response="$/useful",
              hosted_usd_per_useful_response="hosted $/useful"),
]

HOSTED_TABLE: list[fmt.Column] = [
    *_columns(fmt.text, key="hosted model", why="why"),
    *_columns(fmt.money, hosted_usd_per_1m_input="$/1M in", hosted_usd_per_1m_output="$/1M out",
              hosted_usd_per_1m_blended="$/1M mix", self_usd_per_1m_blended="self $/1M mix"),
    ("ratio", "self/hosted", lambda v: fmt.num(v, 2) + "x" if fmt.num(v, 2) != "-" else "-"),
    ("break_even_tokens_per_day", "break-even tok/day", fmt.big),
    ("break_even_utilisation", "break-even util", fmt.pct),
]


# ---------------------------------------------------------------- cost
def cost_report(run_dir: str | Path, args: argparse.Namespace) -> dict:
    """Everything `inferprof cost` prints, as a dict (points with cost columns, cheapest, hosted)."""
    df, manifest = load_run(run_dir)
    notices: list[str] = []
    df = _found_point(run_dir, df, args, notices)
    slos = manifest.get("slos") or {}
    if getattr(args, "slo", None):
        slos = parse_slos(args.slo)
        df = apply_slos(df, slos)
    detected = detected_gpu(manifest, df)
    pricing = _run_pricing(args, manifest, detected)
    if pricing.notice:
        notices.append(pricing.notice)
    n_gpus = gpu_count(manifest, df)
    if n_gpus is None:
        n_gpus = 1.0
        notices.append("GPU count unknown (no telemetry); assuming 1 GPU")
    costed = add_cost_columns(df, pricing, n_gpus)
    from profiler.quality.summary import add_quality_cost

    costed = add_quality_cost(costed)  # repriced $/request and $/useful response (runs with an eval set)

    gpu_name = pricing.gpu or canonical_gpu(detected)
    model_ref = getattr(args, "model_config", None) or run_model(manifest)
    if model_ref and gpu_name:
        try:
            costed = add_sol_columns(costed, load_model_spec(model_ref), gpu_spec(gpu_name), n_gpus,
                                     getattr(args, "bw_efficiency", 1.0) or 1.0)
        except ValueError as e:
            if getattr(args, "model_config", None):
                raise
            notices.append(f"speed-of-light skipped: {e}")
    else:
        notices.append("speed-of-light skipped: model or GPU unknown (use --model-config and --gpu)")

    cheapest = cheapest_slo_point(costed)
    hosted_rows: list[dict] = []
    compare = [c.strip() for c in (getattr(args, "compare", None) or "").split(",") if c.strip()]
    mix = None
    if cheapest is not None:
        row = cheapest.to_frame().T
        i, o = float(point_tokens(row, "input").iloc[0]), float(point_tokens(row, "output").iloc[0])
        mix = {"input_tokens": i, "output_tokens": o}
        if pricing.usd_per_gpu_hour is not None:
            rows, more = compare_hosted(cheapest, n_gpus, pricing.usd_per_gpu_hour, run_model(manifest), compare)
            hosted_rows = [r.to_dict() for r in rows]
            notices += more
        else:
            notices.append("hosted comparison needs a $/GPU-hour (--gpu-price or --gpu)")
            for name in compare:  # still validate names: a typo should fail loudly
                find_hosted(name)
    elif len(costed):
        notices.append("no sweep point meets the SLOs" + (f" ({format_slos(slos)})" if slos else ""))
    return {
        "run": str(run_dir), "model": run_model(manifest), "gpus": n_gpus, "gpu": gpu_name,
        "slos": slos, "pricing": pricing.to_dict(), "points": _records(costed),
        "cheapest_slo_point": None if cheapest is None else {
            k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in cheapest.to_dict().items()},
        "token_mix": mix, "hosted": hosted_rows, "notices": notices,
    }


def _print_cost(rep: dict, style: str) -> None:
    if style == "json":
        print(fmt.to_json(rep))
        return
    cols = [c for c in POINT_TABLE if any(r.get(c[0]) is not None for r in rep["points"]) or c[0] in
            ("point", "usd_per_1m_output")]
    if style == "csv":
        print(fmt.render(rep["points"], cols, "csv"))
        return
    p = Pricing.from_dict(rep["pricing"])
    print(f"run: {rep['run']}  model: {rep['model'] or '-'}  GPUs: {rep['gpus']:g} x {rep['gpu'] or '?'}")
    print(_pricing_line(p))  # type: ignore[arg-type]
    if rep["slos"]:
        print(f"SLOs: {format_slos(rep['slos'])}")
    print()
    print(fmt.render(rep["points"], cols, style))
    c = rep["cheapest_slo_point"]
    if c is not None:
        print()
        print(f"cheapest SLO-meeting point: {c.get('point')} ({c.get('mode', 'load')} {c.get('load')}): "
              f"${fmt.money(c.get('usd_per_1m_output'))} per 1M output tokens, "
              f"${fmt.money(c.get('usd_per_1m_blended'))} per 1M tokens of its mix, "
              f"{fmt.num(c.get('output_tok_per_s'))} output tok/s")
    if rep["hosted"]:
        m = rep["token_mix"]
        tot = m["input_tokens"] + m["output_tokens"]
        share = m["input_tokens"] / tot if tot else math.nan
        print()
        print(f"hosted APIs for this token mix ({fmt.pct(share)} input / {fmt.pct(1 - share)} output); "
              "break-even = GPUs paid 24x7, 730 h/month:")
        print(fmt.render(rep["hosted"], HOSTED_TABLE, style))
        best = min(rep["hosted"], key=lambda r: r["hosted_usd_per_1m_blended"])
        util = best["break_even_utilisation"]
        verdict = ("self-hosting never beats it at this point (needs >100% utilisation)" if util > 1 else
                   f"self-hosting wins above {fmt.big(best['break_even_tokens_per_day'])} tokens/day "
                   f"({fmt.pct(util)} utilisation)")
        print(f"vs cheapest hosted ({best['key']}): {verdict}")
    for n in rep["notices"]:
        print(f"note: {n}")


def cmd_cost(args: argparse.Namespace) -> int:
    style = "json" if args.json else args.format
    _print_cost(cost_report(args.run_dir, args), style)
    return 0


# ---------------------------------------------------------------- size
def _float(text: str) -> float:
    try:
        return float(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _found_point(run_dir, df, args, notices: list[str]):
    """A search run (profiler/capacity.py) is costed at the point it found, unless --slo re-asks."""
    if getattr(args, "slo", None):
        return df
    from profiler.capacity_cli import restrict_to_found

    df, note = restrict_to_found(run_dir, df)
    if note:
        notices.append(note)
    return df


def size_report(run_dir: str | Path, args: argparse.Namespace) -> dict:
    """Everything `inferprof size` prints, as a dict."""
    df, manifest = load_run(run_dir)
    found_notes: list[str] = []
    df = _found_point(run_dir, df, args, found_notes)
    slos = parse_slos(args.slo) if getattr(args, "slo", None) else None
    detected = detected_gpu(manifest, df)
    primary = _run_pricing(args, manifest, detected)
    kind = primary.pricing
    other = "spot" if kind == "on_demand" else "on_demand"
    other_price = None
    if primary.gpu:
        try:
            args_other = argparse.Namespace(**{**vars(args), "gpu_price": None, "gpu": primary.gpu})
            other_price = pricing_from_args(args_other, detected, pricing=other).usd_per_gpu_hour
        except ValueError:
            other_price = None  # e.g. no spot market for this GPU/provider
    od = primary.usd_per_gpu_hour if kind == "on_demand" else other_price
    spot = primary.usd_per_gpu_hour if kind == "spot" else other_price
    n_gpus = gpu_count(manifest, df) or 1.0
    hosted = None
    notices = ([primary.notice] if primary.notice else []) + found_notes
    hosted_name = getattr(args, "hosted", None) or run_model(manifest)
    if hosted_name:
        try:
            hosted = find_hosted(hosted_name)[0]
        except ValueError:
            if getattr(args, "hosted", None):
                raise
            notices.append(f"no hosted price known for {hosted_name}; use --hosted MODEL")
    target_rps = args.rps
    if getattr(args, "useful_rps", None) is not None:  # capacity counted in useful responses
        from profiler.quality.summary import as_useful_rates

        df, target_rps = as_useful_rates(df), args.useful_rps
        notices.append("target in useful responses/s: each point's req/s counted × its useful_rate")
    s = size_fleet(df, target_rps=target_rps, tokens_per_day=args.tokens_per_day, headroom=args.headroom,
                   slos=slos, tokens_kind=args.tokens_kind, usd_per_gpu_hour=od, spot_usd_per_gpu_hour=spot,
                   gpus_per_instance=args.gpus_per_instance or primary.gpus_per_instance, hosted=hosted, gpus=n_gpus)
    return {"run": str(run_dir), "model": run_model(manifest), "gpu": primary.gpu, "slos": slos or manifest.get("slos"),
            "pricing": primary.to_dict(), "sizing": s.to_dict(), "notices": notices}


def _target_text(v: float) -> str:
    return fmt.big(v) if v >= 1000 else f"{v:g}"


def _print_size(rep: dict, style: str) -> None:
    if style == "json":
        print(fmt.to_json(rep))
        return
    s = rep["sizing"]
    unit = {"rps": "req/s", "output_tokens_per_day": "output tokens/day", "tokens_per_day": "tokens/day"}[s["target_kind"]]
    rows = [
        ("target", f"{_target_text(s['target'])} {unit}"),
        ("SLOs", format_slos(rep["slos"]) if rep["slos"] else "none (every point counts)"),
        ("sized on point", f"{s['point']} (load {s['load']:g}), {s['capacity_metric']} "
                           f"= {s['capacity_per_gpu']:.4g}/s per GPU"),
        ("headroom", fmt.pct(s["headroom"])),
        ("GPUs needed", f"{s['gpus_needed']} ({rep['gpu'] or 'GPU'})"),
        ("replicas", f"{s['replicas']} x {s['gpus_per_replica']} GPU"),
        ("instances", "-" if s["instances"] is None else f"{s['instances']} x {s['gpus_per_instance']} GPU "
                                                         f"({s['billed_gpus']} GPUs billed)"),
        ("on-demand $/month", fmt.money(s["usd_per_month_on_demand"])),
        ("spot $/month", fmt.money(s["usd_per_month_spot"])),
        ("tokens/month", f"{fmt.big(s['input_tokens_per_month'])} in, {fmt.big(s['output_tokens_per_month'])} out"),
        ("hosted $/month", "-" if s["hosted_key"] is None else
         f"{fmt.money(s['hosted_usd_per_month'])} ({s['hosted_key']})"),
    ]
    data = [{"k": k, "v": v} for k, v in rows]
    if style == "csv":
        print(fmt.render([{"k": k, "v": v} for k, v in s.items()], [("k", "field", fmt.text), ("v", "value", fmt.text)], "csv"))
        return
    if style == "markdown":
        print(fmt.render(data, [("k", "item", fmt.text), ("v", "value", fmt.text)], "markdown"))
    else:
        w = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k.ljust(w)}  {v}")
    for n in rep["notices"]:
        print(f"note: {n}")


def cmd_size(args: argparse.Namespace) -> int:
    _print_size(size_report(args.run_dir, args), "json" if args.json else args.format)
    return 0


# ---------------------------------------------------------------- prices
CATALOG_TABLE: list[fmt.Column] = [
    ("gpu", "gpu", fmt.text), ("provider", "provider", fmt.text), ("instance_type", "instance", fmt.text),
    ("gpus_per_instance", "GPUs", fmt.text), ("usd_per_gpu_hour", "$/GPU-h", fmt.money),
    ("spot_usd_per_gpu_hour", "spot $/GPU-h", fmt.money), ("region", "region", fmt.text),
    ("source", "source", fmt.text),
]
HOSTED_PRICE_TABLE: list[fmt.Column] = [
    ("key", "hosted model", fmt.text), ("provider", "provider", fmt.text), ("input", "$/1M in", fmt.money),
    ("output", "$/1M out", fmt.money), ("cache_read", "cached in", fmt.money),
    ("batch_input", "batch in", fmt.money), ("batch_output", "batch out", fmt.money),
]


UPDATE_FAILED = "inferprof prices: hosted prices not updated, old snapshot kept: {error}"
UPDATE_DONE = "updated {out}: {count} chat models from litellm {litellm_version} ({generated_at})"


def refresh_hosted_prices(out: Path, failed: str = UPDATE_FAILED, done: str = UPDATE_DONE) -> int:
    """Refresh the hosted price snapshot at ``out`` (`inferprof prices --update` and
    scripts/update_hosted_prices.py). Prints ``done`` and returns 0; on failure (the old snapshot
    is kept) prints ``failed`` to stderr and returns 1. Templates take {error} / {out}, {count},
    {litellm_version}, {generated_at}."""
    try:
        snap = update_snapshot(out)
    except (RuntimeError, OSError) as e:
        print(failed.format(error=e), file=sys.stderr)
        return 1
    print(done.format(out=out, count=snap["count"], litellm_version=snap["litellm_version"],
                      generated_at=snap["generated_at"]))
    return 0


def _import_skypilot(args: argparse.Namespace) -> int:
    """`prices --import-skypilot FILE...`: write the catalog CSV to --out, else print it."""
    missing = [f for f in args.import_skypilot if not Path(f).is_file()]
    if missing:
        raise UserError(f"file not found: {missing[0]}")
    rows = import_skypilot(args.import_skypilot)
    if args.out:
        write_catalog(rows, args.out)
        print(f"wrote {len(rows)} GPU price rows to {args.out} (use it with --prices {args.out})")
    else:
        print(fmt.render(rows, [(c, c, fmt.text) for c in CATALOG_TABLE_KEYS], "csv"))
    return 0


def _gpu_price_rows(args: argparse.Namespace) -> tuple[list[dict], dict | None]:
    """(catalog rows for --gpu / --provider, the Pricing --gpu would get as a dict, or None)."""
    catalog = load_catalog(args.prices) if args.prices and args.prices.endswith(".csv") else load_catalog()
    rows = [vars(r) for r in catalog]
    selected = None
    if args.gpu:
        p = resolve_pricing(gpu=args.gpu, provider=args.provider, pricing=args.pricing or "on_demand",
                            prices_file=args.prices)
        rows = [r for r in rows if r["gpu"] == p.gpu]
        selected = p.to_dict()
    if args.provider:
        rows = [r for r in rows if r["provider"] == args.provider.strip().lower()]
    return rows, selected


def _prices_report(args: argparse.Namespace) -> tuple[dict, dict]:
    """(what `inferprof prices` lists, as a dict; the hosted price snapshot)."""
    out: dict = {}
    if args.model:
        hp = find_hosted(args.model)
        out["hosted"] = [vars(h) for h in hp]
    if args.gpu or not args.model:
        rows, selected = _gpu_price_rows(args)
        if selected is not None:
            out["selected"] = selected
        out["gpus"] = rows
    snap = load_snapshot()
    out["hosted_snapshot"] = {"litellm_version": snap["litellm_version"], "generated_at": snap["generated_at"],
                              "count": snap["count"]}
    return out, snap


def _print_prices(out: dict, snap: dict, style: str, prices_file: str | None) -> None:
    if style == "json":
        print(fmt.to_json(out))
        return
    if "gpus" in out:
        cols = CATALOG_TABLE if style != "table" else [c for c in CATALOG_TABLE if c[0] != "source"]
        print(fmt.render(out["gpus"], cols, style))
        if "selected" in out:
            print(f"\n{_pricing_line(Pricing.from_dict(out['selected']))}")  # type: ignore[arg-type]
    if "hosted" in out:
        if "gpus" in out:
            print()
        print(fmt.render(out["hosted"], HOSTED_PRICE_TABLE, style))
    if style != "csv":
        print(f"\nhosted prices: litellm {snap['litellm_version']} snapshot of {snap['generated_at']} "
              f"({snap['count']} chat models); GPU prices: {Path(prices_file).name if prices_file else 'shipped catalog'}")


def cmd_prices(args: argparse.Namespace) -> int:
    style = "json" if args.json else args.format
    if args.yaml_help:
        print(PRICES_YAML_DOC, end="")
        return 0
    if args.update:
        return refresh_hosted_prices(Path(args.out) if args.out else SNAPSHOT_PATH)
    if args.import_skypilot:
        return _import_skypilot(args)
    _print_prices(*_prices_report(args), style, args.prices)
    return 0


CATALOG_TABLE_KEYS = ("gpu", "provider", "instance_type", "gpus_per_instance", "on_demand_usd_per_hour",
                      "spot_usd_per_hour", "usd_per_gpu_hour", "spot_usd_per_gpu_hour", "region", "source", "as_of")


# ---------------------------------------------------------------- registration
def register(subparsers) -> None:
    """Add `cost`, `size` and `prices` to an argparse subparsers object."""
    c = subparsers.add_parser("cost", help="$/1M tokens per sweep point, cheapest SLO point, hosted API comparison")
    c.add_argument("run_dir")
    c.add_argument("--compare", metavar="MODEL,...", help="also compare with these hosted models (litellm keys or HF ids)")
    c.add_argument("--slo", help="re-evaluate SLOs, e.g. ttft_p99=500ms,tpot_p99=50ms")
    c.add_argument("--model-config", metavar="PATH|NAME",
                   help="config.json (or folder) or known model name for the speed-of-light bound")
    c.add_argument("--bw-efficiency", type=float, default=1.0, help="achievable fraction of peak bandwidth (default 1.0)")
    c.add_argument("--format", choices=FORMATS, default="table")
    c.add_argument("--json", action="store_true", help="same as --format json")
    add_pricing_args(c)
    c.set_defaults(func=cmd_cost)

    s = subparsers.add_parser("size", help="GPUs/instances and $/month for a traffic target at the SLOs")
    s.add_argument("run_dir")
    t = s.add_mutually_exclusive_group(required=True)
    t.add_argument("--rps", type=_float, help="peak requests per second to serve")
    t.add_argument("--tokens-per-day", type=_float, help="tokens per day to serve (e.g. 5e9)")
    t.add_argument("--useful-rps", type=_float, help="useful responses per second to serve (runs with --eval)")
    s.add_argument("--tokens-kind", choices=("output", "total"), default="output",
                   help="what --tokens-per-day counts (default: output tokens)")
    s.add_argument("--slo", help="SLOs to size for, e.g. ttft_p99=500ms,tpot_p99=50ms (default: the run's)")
    s.add_argument("--headroom", type=float, default=0.2, help="fraction of capacity kept free (default 0.2)")
    s.add_argument("--gpus-per-instance", type=int, help="GPUs per server (default: from the price row, if known)")
    s.add_argument("--hosted", metavar="MODEL", help="hosted model to price the same traffic (default: the run's model)")
    s.add_argument("--format", choices=FORMATS, default="table")
    s.add_argument("--json", action="store_true", help="same as --format json")
    add_pricing_args(s)
    s.set_defaults(func=cmd_size)

    p = subparsers.add_parser("prices", help="list GPU and hosted API prices; refresh or import them")
    p.add_argument("--model", help="hosted prices of this model (litellm key, HF id or alias)")
    p.add_argument("--gpu", help="GPU rows of the catalog and the price that would be used")
    p.add_argument("--provider", help="only this provider's rows")
    p.add_argument("--pricing", type=_pricing_kind, choices=PRICINGS)
    p.add_argument("--prices", metavar="FILE", help="price overrides (.yaml) or a catalog .csv")
    p.add_argument("--update", action="store_true", help="refresh the hosted price snapshot from PyPI's litellm wheel")
    p.add_argument("--import-skypilot", nargs="+", metavar="FILE",
                   help="convert SkyPilot catalog vms.csv files (in folders named after the cloud)")
    p.add_argument("--out", help="output file for --import-skypilot / --update")
    p.add_argument("--yaml-help", action="store_true", help="print the --prices YAML schema")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.set_defaults(func=cmd_prices)


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: python -m profiler.cost.cli {cost,size,prices} ... (the main CLI's)."""
    from profiler.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
