"""Evaluation sets: the user's own test items (JSONL), prompt templates, and the documented
synthetic arithmetic / multiple-choice format the mock server can answer.

An eval file has one JSON object per line:

    {"id": "q1", "prompt": "What is 2 + 3?", "reference": 5, "category": "add",
     "max_tokens": 32, "scorer": "numeric"}

`prompt` (a string) or `messages` (an OpenAI chat list) is required; `reference` is a string, a
list of acceptable strings, or a number; `id`, `category`, `max_tokens` and `scorer` are
optional. Every problem is a WorkloadError naming the file and line.

Synthetic format (what `inferprof eval-set` writes and `backends/mock/answers.py` answers):
- arithmetic: ``What is A + B?`` (also ``-`` and ``*``), integers, reference the number;
- choice: the same kind of question followed by lines ``A) x`` .. ``D) x``, exactly one of them
  the result; reference the letter.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from workloads.errors import WorkloadError

KNOWN_KEYS = {"id", "prompt", "messages", "reference", "category", "max_tokens", "scorer"}
LETTERS = "ABCD"
OPS = ("+", "-", "*")


@dataclass(frozen=True)
class EvalItem:
    """One item of an eval set; `reference` is a str, a tuple of str, or a float."""

    id: str
    prompt: str  # the user text (for `messages`: the last user message's content)
    messages: tuple | None  # the chat history when the item gave one (the prompt is its last user turn)
    reference: object
    category: str = ""
    max_tokens: int | None = None
    scorer: str = ""


def _fail(where: str, msg: str) -> WorkloadError:
    return WorkloadError(f"eval file {where}: {msg}")


def _reference(v: object, where: str) -> object:
    if isinstance(v, bool) or v is None:
        raise _fail(where, "`reference` must be a string, a list of strings, or a number")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
        return tuple(v)
    raise _fail(where, "`reference` must be a string, a non-empty list of strings, or a number")


def _messages(v: object, where: str) -> tuple[tuple, str]:
    ok = isinstance(v, list) and v and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in v)
    if not ok:
        raise _fail(where, "`messages` must be a non-empty list of {role, content} strings")
    users = [m["content"] for m in v if m["role"] == "user"]
    if not users:
        raise _fail(where, "`messages` has no user message")
    return tuple((m["role"], m["content"]) for m in v), users[-1]


def parse_item(obj: object, where: str, index: int) -> EvalItem:
    """One validated item from one decoded JSON line."""
    if not isinstance(obj, dict):
        raise _fail(where, "each line must be a JSON object")
    unknown = set(obj) - KNOWN_KEYS
    if unknown:
        raise _fail(where, f"unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(KNOWN_KEYS))}")
    if ("prompt" in obj) == ("messages" in obj):
        raise _fail(where, "give exactly one of `prompt` or `messages`")
    if "reference" not in obj:
        raise _fail(where, "missing `reference`")
    messages = None
    if "prompt" in obj:
        if not isinstance(obj["prompt"], str) or not obj["prompt"].strip():
            raise _fail(where, "`prompt` must be a non-empty string")
        prompt = obj["prompt"]
    else:
        messages, prompt = _messages(obj["messages"], where)
    mt = obj.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or mt < 1):
        raise _fail(where, "`max_tokens` must be a whole number >= 1")
    for key in ("category", "scorer", "id"):
        if key in obj and not isinstance(obj[key], str | int) or isinstance(obj.get(key), bool):
            raise _fail(where, f"`{key}` must be a string")
    return EvalItem(id=str(obj.get("id", index)), prompt=prompt, messages=messages,
                    reference=_reference(obj["reference"], where), category=str(obj.get("category", "")),
                    max_tokens=mt, scorer=str(obj.get("scorer", "")))


def read_eval(path: str | Path) -> list[EvalItem]:
    """The items of an eval JSONL file (blank lines skipped); ids must be unique."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WorkloadError(f"eval file {p}: cannot read it ({e.__class__.__name__})") from None
    items: list[EvalItem] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{p}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise _fail(where, f"not JSON ({e.msg})") from None
        item = parse_item(obj, where, len(items))
        if item.id in seen:
            raise _fail(where, f"duplicate id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise WorkloadError(f"eval file {p}: no items")
    return items


def read_templates(path: str | Path) -> list[str]:
    """Prompt templates: a text file of templates separated by lines `---`, each with `{prompt}`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise WorkloadError(f"template file {p}: cannot read it ({e.__class__.__name__})") from None
    parts, cur = [], []
    for line in text.splitlines():
        if line.strip() == "---":
            parts.append("\n".join(cur))
            cur = []
        else:
            cur.append(line)
    parts.append("\n".join(cur))
    templates = [t.strip("\n") for t in parts if t.strip()]
    if not templates:
        raise WorkloadError(f"template file {p}: no templates")
    for i, t in enumerate(templates):
        if "{prompt}" not in t:
            raise WorkloadError(f"template file {p}: template {i} has no {{prompt}} placeholder")
    return templates


def render(template: str, prompt: str) -> str:
    """The template with `{prompt}` replaced (plain replace: other braces stay as written)."""
    return template.replace("{prompt}", prompt)


# -- the synthetic format ------------------------------------------------------------------------

def arithmetic_question(a: int, op: str, b: int) -> str:
    return f"What is {a} {op} {b}?"


def evaluate(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def _operands(rng: np.random.Generator, op: str) -> tuple[int, int]:
    hi = 13 if op == "*" else 100
    return int(rng.integers(0, hi)), int(rng.integers(0, hi))


def synthetic_items(kind: str, n: int, seed: int) -> list[dict]:
    """`n` items of the synthetic format as JSON-ready dicts (with categories and scorers)."""
    if kind not in ("arithmetic", "choice"):
        raise WorkloadError(f"unknown eval set kind {kind!r}: choose arithmetic or choice")
    if n < 1:
        raise WorkloadError("--n must be >= 1")
    rng = np.random.default_rng(seed)
    names = {"+": "add", "-": "sub", "*": "mul"}
    out, seen = [], set()
    for i in range(n):
        for _ in range(20):  # distinct questions (one item's answer is one draw), while they last
            op = OPS[int(rng.integers(0, 3))]
            a, b = _operands(rng, op)
            if (a, op, b) not in seen:
                break
        seen.add((a, op, b))
        value = evaluate(a, op, b)
        q = arithmetic_question(a, op, b)
        if kind == "arithmetic":
            out.append({"id": f"arith-{i}", "prompt": q, "reference": value, "category": names[op],
                        "max_tokens": 16, "scorer": "numeric"})
            continue
        options = _options(rng, value)
        letter = LETTERS[options.index(value)]
        lines = "\n".join(f"{LETTERS[j]}) {v}" for j, v in enumerate(options))
        out.append({"id": f"choice-{i}", "prompt": f"{q}\n{lines}", "reference": letter,
                    "category": names[op], "max_tokens": 8, "scorer": "choice"})
    return out


def _options(rng: np.random.Generator, value: int) -> list[int]:
    """Four distinct options, exactly one the value, at a seeded position."""
    wrong: set[int] = set()
    while len(wrong) < 3:
        d = int(rng.integers(1, 20)) * (1 if rng.random() < 0.5 else -1)
        wrong.add(value + d)
    opts = sorted(wrong)
    opts.insert(int(rng.integers(0, 4)), value)
    return opts


def write_jsonl(items: list[dict], path: str | Path) -> None:
    Path(path).write_text("".join(json.dumps(it) + "\n" for it in items), encoding="utf-8")
