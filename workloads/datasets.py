"""Prompt files: ShareGPT JSON and JSONL, read into prompts with their recorded answer lengths.

Formats (../shared/reference/formats.md §1):

- ``sharegpt``: the whole file is one JSON array of ``{"id", "conversations": [{"from", "value"}]}``
  (the key ``conversation`` is accepted too, as SGLang does; a turn given as a JSON string is
  decoded, as inference-perf does). The prompt is the FIRST ``human`` turn and the answer the
  ``gpt`` turn right after it; entries without that pair are skipped (vLLM, SGLang and AIPerf
  take ``conversations[0]`` whatever its role, so a leading ``system`` turn becomes their prompt).
- ``jsonl``: one JSON object per line with ``prompt`` (string) or ``messages``
  (``[{"role", "content"}]``) and optionally ``max_tokens`` (int >= 1). Blank lines are skipped.

``FILE:format`` names the format; without it a ``.jsonl`` file is JSONL and anything else is
read by its first character (``[``: ShareGPT, ``{``: JSONL). Every problem with a file is a
`WorkloadError` naming the file, the line and the problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.errors import WorkloadError

FORMATS = ("sharegpt", "jsonl")


@dataclass(frozen=True, slots=True)
class Entry:
    """One usable prompt of a file."""

    line: int  # where it starts in the file (1-based)
    prompt: str  # the text sent (the last user turn for `messages`)
    messages: tuple[tuple[str, str], ...]  # chat turns to send; () = `prompt` as one user turn
    answer: str  # the recorded answer ("" when the file has none)
    max_tokens: int  # from the file (JSONL `max_tokens`); 0 = size it from `answer` or the flag


@dataclass(frozen=True)
class LengthFilter:
    """Keep entries whose prompt and answer lengths fit; vLLM's ShareGPT defaults (prompt >= 4,
    answer >= 4, prompt <= 1024, prompt + answer <= 2048 tokens). An answer length of 0 (none
    recorded) is not filtered on."""

    min_tokens: int = 4
    max_input: int = 1024
    max_total: int = 2048

    def keep(self, n_in: int, n_out: int) -> bool:
        if n_in < self.min_tokens or n_in > self.max_input or n_in + n_out > self.max_total:
            return False
        return n_out == 0 or n_out >= self.min_tokens


def split_source(text: str, formats: tuple[str, ...]) -> tuple[str, str]:
    """'data.json:sharegpt' -> ('data.json', 'sharegpt'); 'data.json' -> ('data.json', '')."""
    path, sep, fmt = text.rpartition(":")
    if sep and fmt in formats:
        return path, fmt
    if sep and fmt and "/" not in fmt and "." not in fmt and not Path(text).exists():
        raise WorkloadError(f"{text}: unknown format {fmt!r}: choose one of {', '.join(formats)}")
    return text, ""


def read_text(path: str) -> str:
    p = Path(path)
    if not p.is_file():
        raise WorkloadError(f"{path}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise WorkloadError(f"{path}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise WorkloadError(f"{path}: the file is empty")
    return text


def load_entries(source: str) -> tuple[str, list[Entry]]:
    """Read a prompt file ``FILE[:format]``; returns (path, its usable entries in file order)."""
    path, fmt = split_source(source, FORMATS)
    text = read_text(path)
    if not fmt:
        fmt = "jsonl" if path.endswith(".jsonl") or text.lstrip()[0] == "{" else "sharegpt"
    entries = list(_sharegpt(path, text) if fmt == "sharegpt" else _jsonl(path, text))
    if not entries:
        raise WorkloadError(f"{path}: no usable prompt in the file ({fmt})")
    return path, entries


def iter_array(path: str, text: str) -> Iterator[tuple[int, object]]:
    """(line, element) of a top-level JSON array, decoded one element at a time so an error can
    name the line of the element it is in."""
    dec = json.JSONDecoder()
    pos, line = _skip_ws(text, 0), 1
    if pos >= len(text) or text[pos] != "[":
        raise WorkloadError(f"{path}: line {_line(text, pos)}: a ShareGPT file is one JSON array; it starts with "
                            f"{text[pos:pos + 1]!r}")
    pos, last = _skip_ws(text, pos + 1), 0
    while pos < len(text) and text[pos] != "]":
        line += text.count("\n", last, pos)
        last = pos
        try:
            obj, pos = dec.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise WorkloadError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
        yield line, obj
        pos = _skip_ws(text, pos)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
        elif pos < len(text) and text[pos] != "]":
            raise WorkloadError(f"{path}: line {_line(text, pos)}: expected ',' or ']' between entries")
    if pos >= len(text):
        raise WorkloadError(f"{path}: line {_line(text, pos)}: the JSON array is not closed")
    if text[pos + 1:].strip():
        raise WorkloadError(f"{path}: line {_line(text, pos + 1)}: text after the JSON array")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _sharegpt(path: str, text: str) -> Iterator[Entry]:
    for line, obj in iter_array(path, text):
        where = f"{path}: line {line}"
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: a ShareGPT entry must be an object, got {type(obj).__name__}")
        conv = obj.get("conversations", obj.get("conversation"))
        if not isinstance(conv, list):
            raise WorkloadError(f"{where}: the entry has no 'conversations' list")
        turns = [_turn(where, t) for t in conv]
        for k, (who, value) in enumerate(turns[:-1]):
            if who == "human":
                if turns[k + 1][0] == "gpt":
                    yield Entry(line, value, (), turns[k + 1][1], 0)
                break


def _turn(where: str, t) -> tuple[str, str]:
    if isinstance(t, str):  # a turn stored as a JSON string (inference-perf issue #429)
        try:
            t = json.loads(t)
        except ValueError:
            raise WorkloadError(f"{where}: a turn is a string that is not JSON") from None
    if not isinstance(t, dict) or not isinstance(t.get("from"), str) or not isinstance(t.get("value"), str):
        raise WorkloadError(f"{where}: each turn needs string 'from' and 'value'")
    return t["from"], t["value"]


def json_lines(path: str, text: str) -> Iterator[tuple[int, str, object]]:
    """(line number, "FILE: line N" for messages, parsed value) of each non-blank JSONL line;
    a line that is not JSON is one WorkloadError naming the file and line."""
    for line, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        where = f"{path}: line {line}"
        try:
            yield line, where, json.loads(raw)
        except ValueError as e:
            raise WorkloadError(f"{where}: invalid JSON ({getattr(e, 'msg', e)})") from None


def _jsonl(path: str, text: str) -> Iterator[Entry]:
    for line, where, obj in json_lines(path, text):
        if not isinstance(obj, dict):
            raise WorkloadError(f"{where}: each line must be a JSON object")
        yield _jsonl_entry(where, line, obj)


def _jsonl_entry(where: str, line: int, obj: dict) -> Entry:
    mt = obj.get("max_tokens", 0)
    if "max_tokens" in obj and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise WorkloadError(f"{where}: 'max_tokens' must be an integer >= 1, got {mt!r}")
    if isinstance(obj.get("prompt"), str):
        return Entry(line, obj["prompt"], (), "", mt)
    msgs = obj.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise WorkloadError(f"{where}: needs 'prompt' (string) or 'messages' (non-empty list)")
    turns = []
    for m in msgs:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise WorkloadError(f"{where}: each message needs string 'role' and 'content'")
        turns.append((m["role"], m["content"]))
    return Entry(line, turns[-1][1], tuple(turns), "", mt)


def select(entries: list[Entry], count: Callable[[str], int], flt: LengthFilter, seed: int,
           max_prompts: int = 0) -> list[tuple[Entry, int, int]]:
    """(entry, prompt tokens, answer tokens) of the entries that pass `flt`, in a seeded
    shuffled order, at most `max_prompts` of them (0 = all). The prompt length of a `messages`
    entry counts every turn."""
    order = np.random.default_rng(seed).permutation(len(entries))
    out = []
    for k in order:
        e = entries[int(k)]
        n_in = sum(count(t) for _, t in e.messages) if e.messages else count(e.prompt)
        n_out = e.max_tokens or (count(e.answer) if e.answer else 0)
        if flt.keep(n_in, n_out):
            out.append((e, n_in, n_out))
            if max_prompts and len(out) >= max_prompts:
                break
    return out


def word_count(text: str) -> int:
    """Tokens approximated as whitespace-separated words (no tokenizer given)."""
    return len(text.split())
