"""Seeded synthetic request sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workloads.errors import WorkloadError
from workloads.lengths import LengthDist
from workloads.prompts import TokenCounter, complete_prompt, make_prompt

# A duplicate prompt would let a prefix cache skip prefill; short prompts can collide by
# chance, so redraw a few times before accepting one.
_MAX_REDRAWS = 20


@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One synthetic request.

    ``input_tokens`` is the prompt's token count without special tokens or chat template:
    exact (counted with the tokenizer) when ``input_exact``, else the number of words of the
    approximate prompt. ``max_tokens`` is the requested output length.
    """

    index: int
    prompt: str
    input_tokens: int
    max_tokens: int
    input_exact: bool
    # chat turns (role, text) sent instead of one user turn holding `prompt` (datasets, sessions)
    messages: tuple[tuple[str, str], ...] = ()
    arrival_s: float = -1.0  # trace replay: send time in seconds from the point's start; -1 = none
    # multi-turn sessions (workloads/sessions.py): the session, the turn (0 = first) and the
    # think time (s) before this turn is sent; the turn's `prompt` is its new user text only
    session: int = -1
    turn: int = 0
    think_s: float = 0.0


def build_requests(
    n: int,
    input_len: LengthDist,
    output_len: LengthDist,
    seed: int,
    tokenizer: TokenCounter | None = None,
    prefix_tokens: int = 0,
) -> list[RequestSpec]:
    """Build ``n`` requests; the same arguments always give the same requests.

    As in vLLM's random dataset, ``prefix_tokens`` is a shared prefix ADDED before each
    request's own part: ``input_tokens = prefix_tokens + input_len sample``. Each request's
    own part is random, and prompts are distinct, so a prefix cache can only reuse the shared
    prefix. Independent random streams (``SeedSequence(seed).spawn``) for input lengths,
    output lengths, the prefix and the bodies mean changing one distribution does not reshuffle
    the others.
    """
    if n < 0:
        raise WorkloadError(f"n must be >= 0, got {n}")
    if prefix_tokens < 0:
        raise WorkloadError(f"prefix_tokens must be >= 0, got {prefix_tokens}")
    s_in, s_out, s_prefix, s_body = np.random.SeedSequence(seed).spawn(4)
    in_lens = input_len.sample(n, np.random.default_rng(s_in))
    out_lens = output_len.sample(n, np.random.default_rng(s_out))
    body_rng = np.random.default_rng(s_body)
    prefix, _ = make_prompt(prefix_tokens, np.random.default_rng(s_prefix), tokenizer)
    # the prefix's true count (equal to prefix_tokens unless make_prompt could not be exact)
    base = tokenizer.count(prefix) if tokenizer is not None and prefix else prefix_tokens

    seen: set[str] = set()
    out: list[RequestSpec] = []
    for i in range(n):
        target = base + in_lens[i]
        for _ in range(_MAX_REDRAWS):
            if tokenizer is None:
                body, _ = make_prompt(in_lens[i], body_rng)
                prompt, count, exact = prefix + body, target, False
            else:
                prompt, hit = complete_prompt(prefix, target, body_rng, tokenizer, head_count=base)
                count, exact = (target if hit else tokenizer.count(prompt)), True
            if prompt not in seen:
                break
        seen.add(prompt)
        out.append(RequestSpec(i, prompt, count, out_lens[i], exact))
    return out
