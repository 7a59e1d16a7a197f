"""One reading of Triton LLM responses for both transports (generate_stream SSE and gRPC streaming).

Every response carries `text_output` and, when the model reports counts, `num_output_tokens` (tokens
in *this* response: a per-response delta, summed over the stream) and `num_input_tokens` (the
prompt length, repeated on every response by the vLLM backend: the last value wins).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backends.records import ERR_SERVER, ParsedStream


def short_error(message: object) -> str:
    """One line of a server error: the last line of a Python traceback, else the first line."""
    text = str(message).strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        return "server error"
    line = lines[-1] if lines[0].startswith("Traceback") else lines[0]
    return line.strip()[:200]


def as_int(v) -> int | None:
    if isinstance(v, list):  # a [1]-shaped output may come back as a one-element list
        v = v[0] if len(v) == 1 else None
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return int(v)


def as_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return "".join(as_text(x) for x in v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


@dataclass
class Accumulator:
    """Builds a ParsedStream from responses in arrival order."""

    out: ParsedStream
    texts: list[str] = field(default_factory=list)
    out_tokens: int | None = None
    pending_tokens: int = 0  # tokens of empty-text responses, carried to the next content event
    last_recv: int = -1
    in_recv: int = 0

    def error(self, message: object) -> None:
        if not self.out.error:
            self.out.error, self.out.error_detail = ERR_SERVER, short_error(message)

    def response(self, t_ns: int, recv_index: int, text: str, n_out: int | None, n_in: int | None,
                 finish_reason: str = "") -> None:
        self.out.event_ns.append(t_ns)
        if n_in is not None:
            self.out.usage_prompt_tokens = n_in
        if finish_reason:
            self.out.finish_reason = finish_reason
        if n_out is not None:
            self.out_tokens = (self.out_tokens or 0) + n_out
        if not text:
            # A token whose text is held back (a partial UTF-8 sequence, a stop string being
            # matched) still counts: give it to the next content event so the per-chunk
            # tokens add up to the server's total.
            if n_out:
                self.pending_tokens += n_out
            return
        self.out.content_ns.append(t_ns)
        self.out.content_tokens.append(-1 if n_out is None else n_out + self.pending_tokens)
        self.pending_tokens = 0
        self.texts.append(text)
        if recv_index == self.last_recv:
            self.in_recv += 1
            if self.in_recv == 2:
                self.out.bursts += 1
        else:
            self.last_recv, self.in_recv = recv_index, 1

    def finish(self) -> ParsedStream:
        self.out.text = "".join(self.texts)
        self.out.usage_completion_tokens = self.out_tokens
        return self.out
