"""Multi-turn sessions: each session's next turn is the whole conversation so far (its user
turns and the server's real answers, appended at run time by profiler/sessions.py) plus a new
user turn, sent after a think time.

A session of N turns is N `RequestSpec`s with `session = s`, `turn = 0..N-1` and
`index = s * N + turn`. Turn 0's prompt is the workload's request (synthetic, a prompt file's or
a prefix group's); each later turn's new user text has `input_len` tokens and its own
`max_tokens`. `input_tokens` of turn t is the expected length of everything sent:
sum over earlier turns of (user tokens + max_tokens) + this turn's user tokens, exact when the
server's answers have exactly max_tokens tokens (ignore_eos) and one token per word (the mock);
the server's usage reports the true count.

Think time forms (`parse_think`): `S` seconds (fixed, e.g. `0.5`), `uniform:A,B`,
`exponential:MEAN`; drawn per turn with a seeded generator (turn 0 has none).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from workloads.errors import WorkloadError
from workloads.lengths import LengthDist
from workloads.prompts import TokenCounter, make_prompt
from workloads.requests import RequestSpec

_NUM = r"\s*(\d+(?:\.\d*)?|\.\d+)\s*"


@dataclass(frozen=True)
class ThinkTime:
    kind: str  # fixed | uniform | exponential
    a: float
    b: float = 0.0

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "fixed":
            return np.full(n, self.a)
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b, size=n)
        return rng.exponential(self.a, size=n)


def parse_think(text: str) -> ThinkTime:
    """'0.5' | 'uniform:0.2,1' | 'exponential:0.5' (seconds)."""
    t = text.strip().lower()
    if m := re.fullmatch(_NUM, t):
        return ThinkTime("fixed", float(m.group(1)))
    if m := re.fullmatch(r"uniform:" + _NUM + "," + _NUM, t):
        a, b = float(m.group(1)), float(m.group(2))
        if a <= b:
            return ThinkTime("uniform", a, b)
    if m := re.fullmatch(r"exponential:" + _NUM, t):
        return ThinkTime("exponential", float(m.group(1)))
    raise WorkloadError(f"invalid think time {text!r}: use S, uniform:A,B or exponential:MEAN (seconds)")


def build_sessions(first: list[RequestSpec], turns: int, input_len: LengthDist, output_len: LengthDist,
                   think: ThinkTime, seed: int, tokenizer: TokenCounter | None = None) -> list[RequestSpec]:
    """Every turn of one session per request of `first` (its turn 0), session-major."""
    if turns < 1:
        raise WorkloadError(f"--turns must be >= 1, got {turns}")
    s_in, s_out, s_think, s_body = np.random.SeedSequence([seed, 23]).spawn(4)
    n_more = len(first) * (turns - 1)
    in_lens = input_len.sample(n_more, np.random.default_rng(s_in))
    out_lens = output_len.sample(n_more, np.random.default_rng(s_out))
    thinks = think.sample(n_more, np.random.default_rng(s_think))
    body_rng = np.random.default_rng(s_body)
    out: list[RequestSpec] = []
    k = 0
    for s, r in enumerate(first):
        user = r.input_tokens
        sent = user + r.max_tokens
        out.append(RequestSpec(s * turns, r.prompt, user, r.max_tokens, r.input_exact, r.messages, session=s))
        for t in range(1, turns):
            text, exact = make_prompt(in_lens[k], body_rng, tokenizer)
            out.append(RequestSpec(s * turns + t, text, sent + in_lens[k], out_lens[k], False, session=s, turn=t,
                                   think_s=float(thinks[k])))
            sent += in_lens[k] + out_lens[k]
            k += 1
    return out
