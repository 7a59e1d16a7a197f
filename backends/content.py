"""What the hosted-API codecs (backends/anthropic.py, backends/responses.py) note per content
event, exactly as backends/openai.py does: its arrival, its tokens (-1: the API does not say per
event), its text, and bursts (a recv() that delivered more than one content event)."""

from __future__ import annotations

import os

from backends.records import ParsedStream
from backends.sse import SSEEvent


class Contents:
    __slots__ = ("out", "texts", "last_recv", "in_recv")

    def __init__(self, out: ParsedStream):
        self.out = out
        self.texts: list[str] = []
        self.last_recv = -1
        self.in_recv = 0

    def add(self, ev: SSEEvent, piece: str) -> None:
        out = self.out
        out.content_ns.append(ev.t_ns)
        out.content_tokens.append(-1)
        self.texts.append(piece)
        if ev.recv_index == self.last_recv:
            self.in_recv += 1
            if self.in_recv == 2:
                out.bursts += 1
        else:
            self.last_recv, self.in_recv = ev.recv_index, 1

    def finish(self) -> None:
        self.out.text = "".join(self.texts)


def as_int(x) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def api_key(env_name: str) -> str:
    """The key held by the environment variable `env_name` (read when a request is encoded; the
    key itself is never stored anywhere)."""
    return os.environ.get(env_name, "") if env_name else ""
