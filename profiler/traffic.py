"""Production-like traffic for a sweep point: prompt files, trace replay and prefix groups.

The sweep asks `build_point` for a point's requests when `active(spec)`; everything format- or
prompt-specific lives in `workloads/` (datasets, traces, prefixes). A point's extra raw facts
(`prefix`: shareable and prompt tokens; `trace`: file and speed) go to points.jsonl.

Lengths are counted with the local tokenizer when `--tokenizer` is given (exact), else as words
(approximate: the server's usage reports the true prompt length).
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from profiler.errors import UserError
from profiler.spec import SweepSpec
from workloads import datasets, prefixes, traces
from workloads.lengths import parse_length
from workloads.prompts import load_tokenizer, make_prompt
from workloads.requests import RequestSpec
from workloads.sessions import build_sessions, parse_think


def is_sessions(requests: list[RequestSpec]) -> bool:
    return bool(requests) and requests[0].session >= 0


def split_sessions(requests: list[RequestSpec], concurrency: int, workers: int):
    from profiler.sessions import split_sessions as split

    return split(requests, concurrency, workers)


def active(spec: SweepSpec) -> bool:
    return bool(spec.dataset or spec.trace or spec.prefix_groups or spec.turns > 1)


@lru_cache(maxsize=4)
def _tokenizer(path: str):
    return load_tokenizer(path) if path else None


@lru_cache(maxsize=2)
def _trace(spec_trace: str, window: str, limit: int) -> tuple[str, tuple[traces.TraceRow, ...]]:
    path, rows = traces.load_trace(spec_trace)
    span = traces.parse_window(window) if window else None
    return path, tuple(traces.window(rows, span, limit))


def trace_loads(spec: SweepSpec) -> list[float]:
    """The target rate of each point: the trace's mean rate times each speed."""
    _, rows = _trace(spec.trace, spec.trace_window, spec.requests or 0)
    base = traces.mean_rate(list(rows))
    return [base * s for s in spec.trace_speeds]


def build_point(spec: SweepSpec, target, n: int, notices: list[str], seed: int,
                point: int) -> tuple[list[RequestSpec], dict]:
    """(requests, extra raw facts) of one point. With --turns N > 1 the point has
    max(concurrency, ceil(n / N)) sessions whose first turns are the requests the other options
    would build."""
    if spec.turns <= 1:
        return _first_turns(spec, target, n, notices, seed, point)
    n_sessions = max(int(spec.loads[point]), -(-n // spec.turns))
    first, facts = _first_turns(spec, target, n_sessions, notices, seed, point)
    reqs = build_sessions(first, spec.turns, parse_length(spec.input_tokens), parse_length(spec.output_tokens),
                          parse_think(spec.think_time), seed, _tokenizer(target.tokenizer))
    facts["sessions"] = {"sessions": len(first), "turns": spec.turns, "think_time": spec.think_time}
    # a later turn could reuse everything sent and answered before it (exact with ignore_eos
    # answers and the mock's words; a chat template adds a few tokens per turn on a real server)
    shareable = sum(p.input_tokens + p.max_tokens for p, r in zip(reqs, reqs[1:], strict=False) if r.turn > 0)
    shareable += (facts.get("prefix") or {}).get("shareable_tokens", 0)  # shared first turns
    facts["prefix"] = {"shareable_tokens": shareable, "prompt_tokens": sum(r.input_tokens for r in reqs)}
    return reqs, facts


def _first_turns(spec: SweepSpec, target, n: int, notices: list[str], seed: int,
                 point: int) -> tuple[list[RequestSpec], dict]:
    tokenizer_path = target.tokenizer
    tok = _tokenizer(tokenizer_path)
    if not (spec.dataset or spec.trace or spec.prefix_groups):
        from profiler.endpoint import build_workload

        return build_workload(spec, target, n, notices, seed), {}
    if spec.trace:
        return _trace_point(spec, tok, seed, point)
    if spec.dataset:
        return _dataset_point(spec, tokenizer_path, n, notices, point), {}
    reqs, shareable = prefixes.group_requests(n, spec.prefix_groups, spec.prefix_tokens,
                                              parse_length(spec.input_tokens), parse_length(spec.output_tokens),
                                              seed, tok)
    return reqs, {"prefix": {"groups": spec.prefix_groups, "prefix_tokens": spec.prefix_tokens,
                             "shareable_tokens": shareable,
                             "prompt_tokens": sum(r.input_tokens for r in reqs)}}


@lru_cache(maxsize=2)
def _pool(source: str, tokenizer_path: str, flt: datasets.LengthFilter, seed: int, max_prompts: int):
    path, entries = datasets.load_entries(source)
    tok = _tokenizer(tokenizer_path)
    count = tok.count if tok is not None else datasets.word_count
    pool = datasets.select(entries, count, flt, seed, max_prompts)
    if not pool:
        raise UserError(f"{path}: none of {len(entries)} prompts passes the length filter "
                        f"({flt.min_tokens} <= tokens, prompt <= {flt.max_input}, prompt + answer <= {flt.max_total})")
    return path, len(entries), pool


def _dataset_point(spec: SweepSpec, tokenizer_path: str, n: int, notices: list[str], point: int) -> list[RequestSpec]:
    """`n` prompts of the file's filtered, shuffled pool; point k starts where point k-1 ended, so
    points do not repeat prompts until the pool is used up. `max_tokens` = the recorded answer's
    length (or the file's `max_tokens`) unless --dataset-output-tokens is given; --output-tokens
    when the file has neither."""
    flt = datasets.LengthFilter(*spec.dataset_filter)
    path, total, pool = _pool(spec.dataset, tokenizer_path, flt, spec.seed, spec.max_prompts)
    tok = _tokenizer(tokenizer_path)
    override = parse_length(spec.dataset_output_tokens) if spec.dataset_output_tokens else None
    fallback = parse_length(spec.output_tokens)
    rng = np.random.default_rng([spec.seed, point, 3])
    start = (point * n) % len(pool)
    out = []
    for j in range(n):
        e, n_in, n_out = pool[(start + j) % len(pool)]
        max_tokens = (override.sample(1, rng)[0] if override else n_out) or fallback.sample(1, rng)[0]
        out.append(RequestSpec(j, e.prompt, n_in, int(max_tokens), tok is not None, e.messages))
    if point == 0:
        notices.append(f"{path}: {len(pool)} of {total} prompts pass the length filter"
                       + ("" if tok is not None else " (lengths counted as words: give --tokenizer for tokens)"))
    if n > len(pool):
        notices.append(f"point {point}: {n} requests from {len(pool)} prompts: prompts repeat "
                       "(a prefix cache serves the repeats)")
    return out


def _trace_point(spec: SweepSpec, tok, seed: int, point: int) -> tuple[list[RequestSpec], dict]:
    path, rows = _trace(spec.trace, spec.trace_window, spec.requests or 0)
    speed = spec.trace_speeds[point]
    blocks = prefixes.BlockText(traces.MOONCAKE_BLOCK, seed)
    out = []
    for j, r in enumerate(rows):
        if r.hash_ids:
            prompt, exact = blocks.prompt(r.hash_ids, r.input_tokens), False
        else:
            prompt, exact = make_prompt(r.input_tokens, np.random.default_rng([seed, j]), tok)
        out.append(RequestSpec(j, prompt, r.input_tokens, r.output_tokens, exact, arrival_s=r.t_s / speed))
    shareable = prefixes.shared_block_tokens([(r.hash_ids, r.input_tokens) for r in rows], traces.MOONCAKE_BLOCK)
    facts = {"trace": {"file": path, "speed": speed, "requests": len(rows), "span_s": rows[-1].t_s / speed}}
    if any(r.hash_ids for r in rows):
        facts["prefix"] = {"shareable_tokens": shareable, "prompt_tokens": sum(r.input_tokens for r in rows)}
    return out, facts


_PREFIX_COUNTER = re.compile(r"^vllm:(?:gpu_)?prefix_cache_(hits|queries)(?:_total)?(?:\{[^}]*\})?\s+(\S+)",
                             re.MULTILINE)


def prefix_cache_delta(before: str | None, after: str | None) -> dict:
    """{"server_prefix_cache": {"hits", "queries"}}: the growth of the server's prefix-cache
    counters (tokens; vLLM's names, summed over label sets) between the scrapes just before and
    just after a point; {} when the server has none."""
    if not before or not after:
        return {}
    a, b = _prefix_counters(before), _prefix_counters(after)
    if not a or not b:
        return {}
    return {"server_prefix_cache": {k: b.get(k, 0.0) - a.get(k, 0.0) for k in ("hits", "queries")}}


def _prefix_counters(page: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for kind, value in _PREFIX_COUNTER.findall(page):
        try:
            out[kind] = out.get(kind, 0.0) + float(value)
        except ValueError:
            continue
    return out


def arrival_offsets(requests: list[RequestSpec]) -> list[float] | None:
    """A trace point's send times (s from the point's start); None for other workloads."""
    if requests and requests[0].arrival_s >= 0:
        return [r.arrival_s for r in requests]
    return None


def add_args(p) -> None:
    """The sweep's traffic flags (profiler/cli.py)."""
    g = p.add_argument_group("production-like traffic")
    g.add_argument("--dataset", default="", help="prompt file FILE[:sharegpt|jsonl] (ShareGPT JSON or JSONL)")
    g.add_argument("--dataset-output-tokens", default="",
                   help="max_tokens instead of the recorded answer lengths (same forms as --output-tokens)")
    g.add_argument("--dataset-filter", default="4,1024,2048",
                   help="MIN,MAX_PROMPT,MAX_TOTAL tokens a prompt file's entries must fit (vLLM's defaults)")
    g.add_argument("--max-prompts", type=int, default=0, help="use at most N prompts of the file (seeded sample)")
    g.add_argument("--trace", default="", help="replay a trace FILE[:azure|mooncake|burstgpt] (open loop)")
    g.add_argument("--trace-speed", default="1", help="time scale(s) of the replay, one point each, e.g. 1,2")
    g.add_argument("--trace-window", default="", help="START,END seconds of the trace to replay")
    g.add_argument("--prefix-groups", type=int, default=0, help="G shared system prompts (with --prefix-tokens)")
    g.add_argument("--prefix-tokens", type=int, default=0, help="tokens of each shared prefix")
    g.add_argument("--turns", type=int, default=1, help="N > 1: multi-turn sessions of N turns (closed loop: "
                   "--concurrency counts sessions); later turns add --input-tokens of new user text")
    g.add_argument("--think-time", default="0", help="seconds between a session's turns: S | uniform:A,B | "
                   "exponential:MEAN")


def apply_args(a, spec: SweepSpec) -> SweepSpec:
    """Fill `spec`'s traffic fields from the flags and check them (a bad file fails here, before
    any server starts)."""
    from dataclasses import replace

    from profiler.spec import parse_number_list

    filt = tuple(int(x) for x in parse_number_list(a.dataset_filter, "--dataset-filter", integer=True))
    if len(filt) != 3:
        raise UserError("--dataset-filter takes three numbers: MIN,MAX_PROMPT,MAX_TOTAL")
    if a.max_prompts < 0:
        raise UserError("--max-prompts must be >= 0")
    if (a.prefix_groups > 0) != (a.prefix_tokens > 0):
        raise UserError("--prefix-groups and --prefix-tokens go together, both >= 1")
    if sum(map(bool, (a.dataset, a.trace, a.prefix_groups))) > 1:
        raise UserError("choose one of --dataset, --trace and --prefix-groups")
    if a.dataset_output_tokens:
        parse_length(a.dataset_output_tokens)
    if a.turns < 1:
        raise UserError("--turns must be >= 1")
    parse_think(a.think_time)
    if a.turns > 1 and (spec.mode != "concurrency" or spec.duration_s or a.trace):
        raise UserError("--turns runs a closed loop of sessions: use --concurrency, without --rate, --duration "
                        "or --trace")
    spec = replace(spec, dataset=a.dataset, dataset_output_tokens=a.dataset_output_tokens, dataset_filter=filt,
                   max_prompts=a.max_prompts, trace=a.trace, trace_window=a.trace_window,
                   prefix_groups=max(0, a.prefix_groups), prefix_tokens=max(0, a.prefix_tokens), turns=a.turns,
                   think_time=a.think_time)
    if spec.dataset:
        _pool(spec.dataset, a.tokenizer, datasets.LengthFilter(*filt), spec.seed, spec.max_prompts)
    if spec.trace:
        if a.concurrency or a.rate or spec.duration_s:
            raise UserError("--trace sets the arrival times: drop --concurrency, --rate and --duration "
                            "(use --trace-speed)")
        spec = replace(spec, mode="rate", trace_speeds=parse_number_list(a.trace_speed, "--trace-speed", False))
        spec.loads = trace_loads(spec)
    return spec
