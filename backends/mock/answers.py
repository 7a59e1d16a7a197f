"""The mock's answer mode (`--accuracy P`): real answers for the synthetic eval format.

A request that stops naturally (no `ignore_eos`) is answered instead of filled with words:
- a judge prompt (lines `Reference: …` and `Answer: …`): `SCORE: 1` when the reference's words
  appear, in order and adjacent, among the answer's words (case and punctuation ignored), else
  `SCORE: 0`;
- a synthetic item (workloads/evalsets.py: `What is A op B?`, optionally with lines `A) x` ..
  `D) x`): correct with probability P, otherwise wrong. The draw is a hash of the seed and the
  item's question and options, so the same item under the same seed is always answered the same
  way (whatever the template around it). Arithmetic: `The answer is N.` (wrong: N + d, d in ±1..9);
  choice: `Answer: L` (wrong: another offered letter);
- anything else: `I do not know.`

One word = one token, as everywhere in the mock. The stream ends with finish_reason "stop", or
"length" when max_tokens cuts the answer short. Requests with `ignore_eos` (the load's synthetic
requests) are untouched, so the load shape stays as measured.
"""

from __future__ import annotations

import hashlib
import json
import re

from backends.mock.payloads import DONE, TERMINATOR, StreamPlan, frame, sse, usage_json
from workloads.evalsets import evaluate

_QUESTION = re.compile(r"What is (-?\d+) ([+\-*]) (-?\d+)\?")
_OPTION = re.compile(r"^([A-E])\) *(-?\d+) *$", re.MULTILINE)
_REFERENCE = re.compile(r"^Reference: *(.*)$", re.MULTILINE)
_ANSWER = re.compile(r"^Answer: *(.*)$", re.MULTILINE)
UNKNOWN = "I do not know."


def draw(seed: int, key: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, key)."""
    h = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s-]", " ", text.lower()).split()


def judge_reply(prompt: str) -> str | None:
    """`SCORE: 1|0` for a judge prompt, None for any other prompt."""
    refs, answers = _REFERENCE.findall(prompt), _ANSWER.findall(prompt)
    if not refs or not answers:
        return None
    ref, ans = _words(refs[-1]), _words(answers[-1])
    hit = bool(ref) and any(ans[i:i + len(ref)] == ref for i in range(len(ans) - len(ref) + 1))
    return f"SCORE: {int(hit)}"


def item_reply(prompt: str, accuracy: float, seed: int) -> str:
    """The answer to a synthetic item (module docstring), or UNKNOWN."""
    m = _QUESTION.search(prompt)
    if not m:
        return UNKNOWN
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = evaluate(a, op, b)
    options = [(letter, int(v)) for letter, v in _OPTION.findall(prompt)]
    key = m.group(0) + "|" + ",".join(f"{x}{v}" for x, v in options)
    right = draw(seed, key) < accuracy
    if options:
        letters = [x for x, v in options if v == value] if right else [x for x, v in options if v != value]
        if not letters:  # no option is the result (or all are): nothing right or wrong to say
            return UNKNOWN
        return f"Answer: {letters[int(draw(seed + 1, key) * len(letters))]}"
    if right:
        return f"The answer is {value}."
    d = 1 + int(draw(seed + 1, key) * 9)
    return f"The answer is {value + (d if draw(seed + 2, key) < 0.5 else -d)}."


def reply(prompt: str, accuracy: float, seed: int) -> str:
    judged = judge_reply(prompt)
    return judged if judged is not None else item_reply(prompt, accuracy, seed)


def tokens_of(text: str) -> list[str]:
    """The reply as tokens: one word each, later words with their leading space."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


def answer_plan(head: bytes, rid: str, created: int, model: str, chat: bool, prompt_tokens: int,
                pieces: list[str], finish: str, include_usage: bool) -> StreamPlan:
    """A stream of one token per chunk carrying `pieces`, the last chunk with `finish`."""
    obj = (f'{{"id":"{rid}","object":"{"chat.completion.chunk" if chat else "text_completion"}",'
           f'"created":{created},"model":{json.dumps(model)},')
    pre = obj + '"choices":[{"index":0,'
    chunks = []
    for i, piece in enumerate(pieces):
        fin = json.dumps(finish) if i == len(pieces) - 1 else "null"
        if chat:
            body = pre + f'"delta":{{"content":{json.dumps(piece)}}},"logprobs":null,"finish_reason":{fin}}}]}}'
        else:
            body = pre + f'"text":{json.dumps(piece)},"logprobs":null,"finish_reason":{fin}}}],"usage":null}}'
        chunks.append(frame(sse(body)))
    first = b""
    if chat:
        first = frame(sse(pre + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}'))
    tail = b""
    if include_usage:
        tail += frame(sse(obj + f'"choices":[],"usage":{usage_json(prompt_tokens, len(pieces))}}}'))
    return StreamPlan(head, first, chunks, [1] * len(chunks), tail + frame(DONE) + TERMINATOR)
