"""Ground-truth log of the mock server: request arrival and real send time of every content chunk.

CSV columns ``id,chunk,send_ns,tokens``: ``id`` is the response id the client sees in each SSE
event's ``"id"`` field (``cmpl-17``, ``chatcmpl-17``; ``trt-17`` for Triton, which has no id on the
wire); ``chunk = -1`` is the row of the request itself (``send_ns`` = when the request was fully
read, ``tokens`` = its prompt tokens); ``chunk = i >= 0`` is content chunk i, ``send_ns`` =
``time.perf_counter_ns()`` right after its ``transport.write``, ``tokens`` = generated tokens in it.
Rows are kept in compact arrays (about 28 bytes each) and written at shutdown.
"""

from __future__ import annotations

import os
from array import array
from pathlib import Path


class ChunkLog:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.req = array("l")
        self.chunk = array("l")
        self.ns = array("q")
        self.tokens = array("l")

    def new_request(self, rid: str, arrival_ns: int, prompt_tokens: int) -> int:
        """Registers a request; returns its index for ``add``."""
        idx = len(self.ids)
        self.ids.append(rid)
        self.add(idx, -1, arrival_ns, prompt_tokens)
        return idx

    def add(self, idx: int, chunk: int, ns: int, tokens: int) -> None:
        self.req.append(idx)
        self.chunk.append(chunk)
        self.ns.append(ns)
        self.tokens.append(tokens)

    def __len__(self) -> int:
        return len(self.ns)

    def csv_bytes(self) -> bytes:
        ids = self.ids
        lines = ["id,chunk,send_ns,tokens\n"]
        lines += [
            f"{ids[r]},{c},{t},{k}\n"
            for r, c, t, k in zip(self.req, self.chunk, self.ns, self.tokens, strict=True)
        ]
        return "".join(lines).encode()

    def write(self, path: str | Path) -> None:
        """Atomic write (temp file + rename)."""
        path = Path(path)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.write_bytes(self.csv_bytes())
        tmp.replace(path)
