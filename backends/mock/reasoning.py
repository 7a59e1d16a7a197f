"""The mock's reasoning mode (`--reasoning-tokens DIST`): a chat stream thinks before it answers.

Of a request's `n` generated tokens (max_tokens, ignore_eos), the first `r = min(draw, n - 1)`
are reasoning, streamed one token per chunk as `delta: {"<field>": word}` (`reasoning_content`
by default, vLLM's name before 2026; `reasoning` is today's), and the remaining `n - r` are the
answer, `delta: {"content": word}`. The usage chunk reports
`completion_tokens_details.reasoning_tokens = r` (OpenAI's field; `completion_tokens` counts
both parts). `draw` comes from a seeded `workloads.lengths` distribution, one per request in
arrival order. Completions and Triton requests are not affected.
"""

from __future__ import annotations

import json

import numpy as np

from backends.mock.payloads import DONE, TERMINATOR, StreamPlan, _object_json, frame, sse
from backends.mock.tokens import WORDS

FIELDS = ("reasoning_content", "reasoning")


class ReasoningDraws:
    def __init__(self, spec: str, seed: int, field: str = "reasoning_content") -> None:
        from workloads.lengths import parse_length

        self.dist = parse_length(spec)
        self.rng = np.random.default_rng([seed, 11])
        self.field = field

    def draw(self, n_tokens: int) -> int:
        return max(0, min(int(self.dist.sample(1, self.rng)[0]), n_tokens - 1))


def reasoning_stream(head: bytes, rid: str, created: int, model: str, prompt_tokens: int, n_tokens: int,
                     reasoning: int, field: str, include_usage: bool) -> StreamPlan:
    """A chat StreamPlan: role chunk, `reasoning` reasoning chunks, then the answer chunks."""
    obj = _object_json(rid, "chat.completion.chunk", created, model)
    pre = obj + '"choices":[{"index":0,'
    role = frame(sse(pre + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}'))
    chunks = []
    for i in range(n_tokens):
        key = field if i < reasoning else "content"
        fin = '"length","stop_reason":null' if i == n_tokens - 1 else "null"
        word = json.dumps(WORDS[i % len(WORDS)])
        chunks.append(frame(sse(pre + f'"delta":{{"{key}":{word}}},"logprobs":null,"finish_reason":{fin}}}]}}')))
    tail = b""
    if include_usage:
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + n_tokens,
                 "completion_tokens": n_tokens, "completion_tokens_details": {"reasoning_tokens": reasoning}}
        tail = frame(sse(obj + '"choices":[],"usage":' + json.dumps(usage, separators=(",", ":")) + "}"))
    return StreamPlan(head, role, chunks, [1] * n_tokens, tail + frame(DONE) + TERMINATOR)
