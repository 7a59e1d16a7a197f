"""Prompt text of a chosen token length, exact with a local tokenizer, approximate without.

Counts are of the raw prompt text WITHOUT special tokens (``add_special_tokens=False``) and
without any chat template: a server adds its BOS / template tokens on top, and its ``usage``
reports the true total.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workloads.errors import WorkloadError

__all__ = [
    "TokenCounter",
    "HFTokenizer",
    "TransformersTokenizer",
    "load_tokenizer",
    "word_list",
    "approx_prompt",
    "make_prompt",
    "complete_prompt",
    "calibrate_prompt",
]


@runtime_checkable
class TokenCounter(Protocol):
    """What prompt building needs from a tokenizer. Counts never include special tokens."""

    def count(self, text: str) -> int: ...

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` (read from a tokenizer.json) as a TokenCounter."""

    def __init__(self, tok, source: str = "") -> None:
        self._tok = tok
        self.source = source
        self.vocab_size = tok.get_vocab_size(with_added_tokens=True)
        self._safe: np.ndarray | None = None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def count(self, text: str) -> int:
        return len(self._tok.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def decode_batch(self, batch: list[list[int]]) -> list[str]:
        return self._tok.decode_batch(batch, skip_special_tokens=False)

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [list(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]

    def __repr__(self) -> str:
        return f"HFTokenizer({self.source!r}, vocab={self.vocab_size})"


class TransformersTokenizer:
    """A ``transformers`` tokenizer (folder without tokenizer.json) as a TokenCounter."""

    def __init__(self, tok, source: str = "") -> None:
        self._tok = tok
        self.source = source
        self.vocab_size = len(tok)
        self._safe: np.ndarray | None = None

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False))

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(
            [int(i) for i in ids], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def decode_batch(self, batch: list[list[int]]) -> list[str]:
        return [self.decode(ids) for ids in batch]

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def __repr__(self) -> str:
        return f"TransformersTokenizer({self.source!r}, vocab={self.vocab_size})"


def load_tokenizer(path: str | Path) -> TokenCounter:
    """Load a tokenizer from a LOCAL ``tokenizer.json`` file or a folder; never downloads.

    A folder with ``tokenizer.json`` is read with ``tokenizers.Tokenizer.from_file``; any other
    folder needs ``transformers`` (``AutoTokenizer.from_pretrained(path, local_files_only=True)``).
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise WorkloadError(f"tokenizer path {str(p)!r} does not exist (give a local folder or tokenizer.json)")
    from tokenizers import Tokenizer

    if p.is_file():
        try:
            return HFTokenizer(Tokenizer.from_file(str(p)), str(p))
        except Exception as e:  # the library raises its own Exception subclass
            raise WorkloadError(f"cannot read tokenizer file {str(p)!r}: {e}".splitlines()[0]) from e
    if (p / "tokenizer.json").is_file():
        return load_tokenizer(p / "tokenizer.json")
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise WorkloadError(
            f"no tokenizer.json in {str(p)!r}; install transformers to load other tokenizer formats"
        ) from None
    try:
        return TransformersTokenizer(AutoTokenizer.from_pretrained(str(p), local_files_only=True), str(p))
    except Exception as e:
        raise WorkloadError(f"cannot load a tokenizer from {str(p)!r}: {e}".splitlines()[0]) from e


@lru_cache(maxsize=1)
def word_list() -> tuple[str, ...]:
    """Shipped list of short, frequent, lowercase English words.

    Each is a single token when preceded by a space in common byte-level BPE vocabularies
    (GPT-2, cl100k/GPT-4, Llama 3), which is what makes ``approx_prompt`` close.
    """
    text = resources.files("workloads.data").joinpath("words.json").read_text(encoding="utf-8")
    return tuple(json.loads(text))


def approx_prompt(n_words: int, rng: np.random.Generator) -> str:
    """``n_words`` random words from ``word_list()``, each preceded by one space.

    Token count ~= n_words for the vocabularies above; not verified (exact=False).
    """
    if n_words <= 0:
        return ""
    words = word_list()
    return "".join(" " + words[i] for i in rng.integers(0, len(words), size=n_words))


_WORDLIKE = re.compile(r"^ ?[A-Za-z]+$")
# three copies of one word token must decode to three space-separated words: this keeps
# word-start tokens (" the" in byte-level BPE, "▁the" in SentencePiece) and drops word pieces
_WORD3 = re.compile(r"^ ?([A-Za-z]+) \1 \1$")


def _safe_ids(tok: TokenCounter) -> np.ndarray:
    """Token ids that are safe to concatenate: word-start tokens ``t`` of ASCII letters such that
    ``decode([t, t, t])`` is three space-separated words and ``encode`` of it gives back
    ``[t, t, t]``.

    Repeating the token checks both the start-of-text and the mid-text form, and rejects word
    pieces that would glue onto a neighbour (``"the"`` without a space) or that a tokenizer
    cannot reproduce from text. With a GPT-style pre-tokenizer (split before each space-word)
    any sequence of such tokens re-encodes to itself, so prompts are exact at the first try.
    Without ``vocab_size`` the candidates are the word-list words. Cached on the tokenizer.
    """
    cached = getattr(tok, "_safe", None)
    if cached is not None:
        return cached
    vocab_size = getattr(tok, "vocab_size", None)
    if vocab_size:
        cand = list(range(int(vocab_size)))
    else:
        cand = sorted({ids[0] for w in word_list() if len(ids := tok.encode(" " + w)) == 1})
    dec1 = _decode_many(tok, [[i] for i in cand])
    cand = [i for i, s in zip(cand, dec1, strict=True) if _WORDLIKE.match(s)]
    dec3 = _decode_many(tok, [[i, i, i] for i in cand])
    keep = [(i, d) for i, d in zip(cand, dec3, strict=True) if _WORD3.match(d)]
    enc3 = _encode_many(tok, [d for _, d in keep])
    safe = np.array([i for (i, _), e in zip(keep, enc3, strict=True) if e == [i, i, i]], dtype=np.int64)
    try:
        tok._safe = safe  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return safe


def _decode_many(tok: TokenCounter, batch: list[list[int]]) -> list[str]:
    f = getattr(tok, "decode_batch", None)
    return f(batch) if f else [tok.decode(b) for b in batch]


def _encode_many(tok: TokenCounter, texts: list[str]) -> list[list[int]]:
    f = getattr(tok, "encode_batch", None)
    return f(texts) if f else [tok.encode(t) for t in texts]


def _join(head: str, tail: str) -> str:
    # SentencePiece-style decoders drop the leading space of the first token; put it back so
    # the first new word does not glue onto the last word of head.
    if head and tail and not head[-1].isspace() and not tail[0].isspace():
        return head + " " + tail
    return head + tail


def complete_prompt(
    head: str,
    n_tokens: int,
    rng: np.random.Generator,
    tokenizer: TokenCounter,
    max_rounds: int = 48,
    head_count: int | None = None,
) -> tuple[str, bool]:
    """Extend ``head`` with random safe vocabulary tokens until the whole text counts exactly
    ``n_tokens``; return (text, exact).

    Body = decode(B[:k]) for a random id sequence B; start with ``k = n - count(head)`` and
    update ``k += n - count(text)`` (a secant step of slope ~1: each safe token adds ~1 token;
    merges across the boundary may add or remove a few). A repeated ``k`` means a cycle, so B is
    redrawn. After ``max_rounds`` the closest text is returned with exact=False.
    ``head_count`` (the known ``count(head)``) saves one encode when the caller reuses a head.
    """
    base = head_count if head_count is not None else (tokenizer.count(head) if head else 0)
    if n_tokens < base:
        raise WorkloadError(f"head already has {base} tokens > n_tokens={n_tokens}")
    if n_tokens == base:
        return head, True
    safe = _safe_ids(tokenizer)
    if len(safe) == 0:
        return _complete_with_words(head, n_tokens, rng, tokenizer, max_rounds)
    need = n_tokens - base
    ids = rng.choice(safe, size=need + 16)
    k, tried = need, set()
    best: tuple[int, str] | None = None
    for _ in range(max_rounds):
        if k > len(ids):
            ids = np.concatenate([ids, rng.choice(safe, size=k - len(ids) + 16)])
        text = _join(head, tokenizer.decode(ids[:k].tolist())) if k > 0 else head
        c = tokenizer.count(text)
        if c == n_tokens:
            return text, True
        if best is None or abs(c - n_tokens) < best[0]:
            best = (abs(c - n_tokens), text)
        tried.add(k)
        k = max(1, k + n_tokens - c)
        if k in tried:
            ids = rng.choice(safe, size=len(ids))
            tried.clear()
    assert best is not None
    return best[1], False


def _complete_with_words(
    head: str, n_tokens: int, rng: np.random.Generator, tokenizer: TokenCounter, max_rounds: int
) -> tuple[str, bool]:
    """Fallback for tokenizers with no safe word tokens: calibrate word-list words locally."""
    text, c = calibrate_prompt(n_tokens, tokenizer.count, rng, max_rounds=max_rounds, head=head)
    return text, c == n_tokens


def make_prompt(
    n_tokens: int, rng: np.random.Generator, tokenizer: TokenCounter | None = None
) -> tuple[str, bool]:
    """Random prompt text of ``n_tokens`` tokens; returns (prompt, exact).

    With a tokenizer: random ids from a safe subset of its vocabulary, decoded, re-encoded and
    corrected until ``tokenizer.count(prompt) == n_tokens`` (verified; exact=True). Without:
    ``approx_prompt(n_tokens)`` — n common English words, each preceded by a space, which is
    close to n tokens in GPT / Llama 3 vocabularies; exact=False, the server's usage gives
    the true count.
    """
    if n_tokens < 0:
        raise WorkloadError(f"n_tokens must be >= 0, got {n_tokens}")
    if tokenizer is None:
        return approx_prompt(n_tokens, rng), False
    return complete_prompt("", n_tokens, rng, tokenizer)


_FILLER = "the"  # from the word list; one token wherever English words are
_FILLER_MAX = 4


def calibrate_prompt(
    n_tokens: int,
    count_fn: Callable[[str], int],
    rng: np.random.Generator,
    max_rounds: int = 8,
    head: str = "",
) -> tuple[str, int]:
    """Adjust an approximate prompt with an external counter (e.g. vLLM ``/tokenize``).

    Starts from ``n_tokens - count(head)`` random word-list words after ``head``, then each
    round calls ``count_fn(text)`` once and adds or removes ``round(|diff| * words / tokens)``
    words at the end (at least one), where ``diff = n_tokens - count``. Stops when the count
    equals ``n_tokens`` or after ``max_rounds`` calls of ``count_fn`` (plus one to count a
    ``head``). Returns (prompt, its last measured count): the count always belongs to the
    returned text. ``count_fn`` must count the way the server will (e.g. with
    or without BOS); ``n_tokens`` is then in the same units.
    """
    if n_tokens < 1:
        raise WorkloadError(f"n_tokens must be >= 1, got {n_tokens}")
    if max_rounds < 1:
        raise WorkloadError(f"max_rounds must be >= 1, got {max_rounds}")
    words = word_list()
    calls, base = 0, 0
    if head:
        base = count_fn(head)  # one extra call so the first guess leaves room for the head
        calls += 1
    body = [words[i] for i in rng.integers(0, len(words), size=max(1, n_tokens - base))]
    text = head + "".join(" " + w for w in body)
    c = count_fn(text)
    calls += 1
    while c != n_tokens and calls < max_rounds:
        diff = n_tokens - c
        ratio = len(body) / max(1, c - base)
        step = max(1, round(abs(diff) * ratio))
        if 0 < diff <= _FILLER_MAX:
            # close to the target: words may be several tokens each, so finish with a filler
            # word that is one token in byte-level and SentencePiece vocabularies alike
            body += [_FILLER] * diff
        elif diff > 0:
            body += [words[i] for i in rng.integers(0, len(words), size=step)]
        elif len(body) > 1:
            body = body[: max(1, len(body) - step)]
        else:
            break  # one word is already too long; nothing left to remove
        text = head + "".join(" " + w for w in body)
        c = count_fn(text)
        calls += 1
    return text, c
