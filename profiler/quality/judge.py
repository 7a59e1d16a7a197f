"""The LLM judge: after a point ends (never while its load runs), each answer is sent to another
OpenAI-compatible endpoint with a grading prompt; the judge's reply must contain `SCORE: x`,
x in [0, 1]. Its tokens and time are counted apart from the measured point (its own cost)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from backends import control
from backends.http1 import parse_url
from backends.openai import OpenAICodec
from backends.records import RawStream
from profiler.errors import UserError
from profiler.loadgen import open_connection
from workloads.requests import RequestSpec

DEFAULT_PROMPT = """You grade an answer against a reference answer.
Question: {prompt}
Reference: {reference}
Answer: {answer}
Reply with one line "SCORE: 1" if the answer is correct or "SCORE: 0" if it is not \
(a fraction in between for a partly correct answer)."""
_SCORE = re.compile(r"score\s*[:=]\s*(-?[0-9]*\.?[0-9]+)", re.IGNORECASE)
TIMEOUT_S = 120.0


@dataclass(frozen=True)
class JudgeReply:
    score: float | None  # None: no score in the reply (or the request failed)
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    error: str = ""


def parse_score(text: str) -> float | None:
    """The last `SCORE: x` of a reply, when x is in [0, 1]."""
    found = _SCORE.findall(text)
    if not found:
        return None
    x = float(found[-1])
    return x if 0.0 <= x <= 1.0 else None


def reference_text(reference: object) -> str:
    if isinstance(reference, tuple | list):
        return " | ".join(map(str, reference))
    return f"{reference:g}" if isinstance(reference, float) else str(reference)


@dataclass(frozen=True)
class Judge:
    url: str
    model: str
    template: str = DEFAULT_PROMPT
    max_tokens: int = 32

    @classmethod
    def build(cls, url: str, model: str = "", prompt_file: str = "") -> Judge:
        parse_url(url)
        try:
            models = control.list_models(url)
        except control.ControlError as e:
            raise UserError(f"--judge-url: {e}") from None
        if not model:
            if not models:
                raise UserError(f"--judge-url {url} serves no model")
            model = models[0]
        elif model not in models:
            raise UserError(f"--judge-model {model!r} is not served at {url}; it serves: {', '.join(models)}")
        template = DEFAULT_PROMPT
        if prompt_file:
            try:
                template = Path(prompt_file).read_text(encoding="utf-8")
            except OSError as e:
                raise UserError(f"--judge-prompt {prompt_file}: cannot read it ({e.strerror or e})") from None
            if "{answer}" not in template:
                raise UserError(f"--judge-prompt {prompt_file}: the prompt has no {{answer}} placeholder")
        return cls(url, model, template)

    def prompt(self, question: str, answer: str, reference: object) -> str:
        return (self.template.replace("{prompt}", question).replace("{reference}", reference_text(reference))
                .replace("{answer}", answer))

    def ask_all(self, questions: list[tuple[str, str, object]]) -> list[JudgeReply]:
        """Grade (question, answer, reference) triples one after another on one connection."""
        codec = OpenAICodec(parse_url(self.url), self.model, api="chat", ignore_eos=False, temperature=0.0)
        conn = open_connection(codec, codec.endpoint, TIMEOUT_S)
        try:
            return [self._ask(codec, conn, q, a, r) for q, a, r in questions]
        finally:
            conn.close()

    def _ask(self, codec: OpenAICodec, conn, question: str, answer: str, reference: object) -> JudgeReply:
        text = self.prompt(question, answer, reference)
        payload = codec.encode(RequestSpec(0, text, len(text.split()), self.max_tokens, False))
        raw = RawStream()
        t0 = time.perf_counter()
        conn.stream(payload, raw, time.perf_counter_ns() + int(TIMEOUT_S * 1e9))
        p = codec.parse(raw)
        secs = time.perf_counter() - t0
        tokens = (p.usage_prompt_tokens or 0, p.usage_completion_tokens or 0)
        if p.error:
            return JudgeReply(None, p.text, *tokens, secs, f"judge request failed: {p.error_detail or p.error}")
        score = parse_score(p.text)
        err = "" if score is not None else f"judge returned no score: {p.text[:80]!r}"
        return JudgeReply(score, p.text, *tokens, secs, err)

    def check(self, question: str, reference: object) -> None:
        """Before the sweep: the judge must score one answer (the reference itself)."""
        reply = self.ask_all([(question, reference_text(reference), reference)])[0]
        if reply.score is None:
            raise UserError(f"judge {self.model} at {self.url} {reply.error.removeprefix('judge ')}; its reply "
                            "must contain 'SCORE: x' with x in [0, 1]")
