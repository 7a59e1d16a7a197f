"""Command-line side of quality: the sweep's eval flags and `inferprof eval-set`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from profiler.errors import UserError


def add_quality_args(p: argparse.ArgumentParser) -> None:
    q = p.add_argument_group("quality (evaluation sets; README 'Quality')")
    q.add_argument("--eval", help="eval set JSONL: prompt|messages, reference, category, max_tokens, scorer")
    q.add_argument("--eval-sample", type=int, default=0, help="K items per point, seeded, mixed into the load "
                   "(default: every item at every point)")
    q.add_argument("--eval-max-tokens", type=int, default=256, help="max_tokens of items that set none")
    q.add_argument("--temperature", type=float, default=0.0, help="eval requests' temperature (default 0)")
    q.add_argument("--scorer", action="append", default=[], help="NAME=SCORER, e.g. accuracy=numeric, "
                   "format=json:schema.json, domain=mypkg.checks:score (repeatable)")
    q.add_argument("--useful", default="", help="thresholds, e.g. accuracy=1,format=0.5 (default 0.5 each)")
    q.add_argument("--prompt-template", help="file of templates separated by '---' lines, each with {prompt}")
    q.add_argument("--judge-url", help="OpenAI-compatible endpoint of an LLM judge (scores after each point)")
    q.add_argument("--judge-model", default="", help="the judge's model (default: the first it serves)")
    q.add_argument("--judge-prompt", default="", help="judge prompt file with {prompt} {reference} {answer}")
    q.add_argument("--judge-price", default="", help="judge $ per 1M input,output tokens, e.g. 0.15,0.6")


def _price(text: str) -> list[float] | None:
    if not text:
        return None
    try:
        v = [float(x) for x in text.split(",")]
    except ValueError:
        v = []
    if len(v) != 2 or not all(math.isfinite(x) and x >= 0 for x in v):
        raise UserError(f"--judge-price {text!r}: use INPUT,OUTPUT dollars per 1M tokens, e.g. 0.15,0.6")
    return v


def quality_cfg(a) -> dict | None:
    """The sweep's quality config from its flags (None without --eval)."""
    if not a.eval:
        flags = [f for f, v in (("--scorer", a.scorer), ("--judge-url", a.judge_url),
                                ("--prompt-template", a.prompt_template), ("--useful", a.useful)) if v]
        if flags:
            raise UserError(f"{flags[0]} needs --eval FILE")
        return None
    from profiler.quality.scorers import parse_useful

    if a.eval_max_tokens < 1:
        raise UserError("--eval-max-tokens must be >= 1")
    if not 0.0 <= a.temperature <= 2.0:
        raise UserError("--temperature must be in [0, 2]")
    return {"eval_file": a.eval, "sample": a.eval_sample, "max_tokens": a.eval_max_tokens,
            "temperature": a.temperature, "scorers": list(a.scorer), "useful": parse_useful(a.useful),
            "templates_file": a.prompt_template or "", "judge_url": a.judge_url or "",
            "judge_model": a.judge_model, "judge_prompt_file": a.judge_prompt, "judge_price": _price(a.judge_price)}


def cmd_eval_set(a) -> int:
    from workloads.evalsets import synthetic_items, write_jsonl

    items = synthetic_items(a.kind, a.n, a.seed)
    try:
        write_jsonl(items, a.out)
    except OSError as e:
        raise UserError(f"--out {a.out}: cannot write ({e.strerror or e})") from None
    print(f"{len(items)} {a.kind} items -> {Path(a.out)}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("eval-set", help="write a synthetic eval set (the format the mock answers)")
    p.add_argument("kind", choices=["arithmetic", "choice"])
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_eval_set)
