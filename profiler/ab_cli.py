"""`inferprof ab` command line (profiler/ab.py)."""

from __future__ import annotations

import json
from pathlib import Path

from profiler.errors import UserError
from profiler.spec import SweepSpec, parse_duration
from workloads.lengths import parse_length


def register(subparsers) -> None:
    p = subparsers.add_parser("ab", help="sequential A/B test of two targets (always-valid mSPRT)",
                              description="One workload to A and B in rounds (random arm order per round), "
                                          "tested after each round; stops on a decision, on a difference shown "
                                          "smaller than --min-effect, or when --budget pairs are spent.")
    p.add_argument("--a", required=True, metavar="URL[#MODEL]")
    p.add_argument("--b", required=True, metavar="URL[#MODEL]")
    p.add_argument("--metric", default="ttft", choices=("ttft", "e2e", "tpot"), help="per-request metric (ms)")
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--round", type=int, default=20, help="requests per arm per round (default 20)")
    p.add_argument("--budget", type=int, default=400, help="most pairs (default 400)")
    p.add_argument("--min-effect", type=float, default=0.0,
                   help="ms: stop once the difference is shown within ±this (default 0: never)")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--min-pairs", type=int, default=40, help="no decision before this many pairs (default 40)")
    p.add_argument("--input-tokens", default="64")
    p.add_argument("--output-tokens", default="32")
    p.add_argument("--a-output-tokens", default="", help="arm A's own output length (default --output-tokens)")
    p.add_argument("--b-output-tokens", default="", help="arm B's own output length (default --output-tokens)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--request-timeout", default="120s")
    p.add_argument("--out", default="results")
    p.add_argument("--json", action="store_true", help="print ab.json's result as JSON")
    p.set_defaults(func=cmd_ab)


def _check(a) -> None:
    if a.concurrency < 1 or a.round < 1 or a.budget < 2 or a.min_pairs < 2:
        raise UserError("--concurrency and --round must be >= 1, --budget and --min-pairs >= 2")
    if not 0 < a.alpha < 1:
        raise UserError("--alpha must be in (0, 1)")
    if a.min_effect < 0:
        raise UserError("--min-effect must be >= 0")
    for text in (a.input_tokens, a.output_tokens, a.a_output_tokens or "1", a.b_output_tokens or "1"):
        parse_length(text)


def cmd_ab(a) -> int:
    from profiler.ab import AbPlan, Arm, parse_target, run_ab
    from profiler.choose.sequential import SeqConfig

    _check(a)
    arms = (Arm("A", parse_target(a.a), a.a_output_tokens or a.output_tokens),
            Arm("B", parse_target(a.b), a.b_output_tokens or a.output_tokens))
    spec = SweepSpec(mode="concurrency", loads=[a.concurrency], requests=a.round, input_tokens=a.input_tokens,
                     output_tokens=a.output_tokens, warmup_frac=0.0, seed=a.seed,
                     request_timeout_s=parse_duration(a.request_timeout))
    seq = SeqConfig(alpha=a.alpha, horizon=a.budget, min_effect=a.min_effect, min_n=a.min_pairs, max_n=a.budget)
    plan = AbPlan(metric=a.metric, concurrency=a.concurrency, round_requests=a.round, seed=a.seed, seq=seq)
    log = (lambda s: None) if a.json else print
    ab_dir = run_ab(arms, spec, plan, a.out, log)
    info = json.loads((Path(ab_dir) / "ab.json").read_text())
    if a.json:
        print(json.dumps({"ab_dir": str(ab_dir), **info["result"]}))
    else:
        r = info["result"]
        print(f"{a.metric}: {r['verdict']} after {r['pairs_sent']} pairs; a fixed-sample test with 80% power "
              f"at this effect needs {r['fixed_n_at_observed_effect']} pairs\n{ab_dir}")
    return 0
