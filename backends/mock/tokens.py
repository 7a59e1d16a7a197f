"""Token accounting of the mock server: what counts as a token, and the text it generates.

Prompt tokens = the number of whitespace-separated words of the prompt (``len(text.split())``).
For chat requests, the words of every message's content (string content, or the ``text`` of each
``{"type": "text"}`` part) are summed; no chat-template overhead is added. A completion prompt given
as a list of token ids counts one token per id. This count is what ``usage.prompt_tokens``,
``/tokenize`` and the KV-cache reservation use.

Generated tokens are words from ``WORDS`` taken in order (token ``i`` is ``WORDS[i % len(WORDS)]``);
each token is one word whose text begins with a space, e.g. ``" alpha"``.
"""

from __future__ import annotations

import zlib
from typing import Any

WORDS: tuple[str, ...] = tuple(
    " " + w
    for w in (
        "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november "
        "oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu red orange "
        "yellow green blue indigo violet black white silver gold copper iron zinc tin lead "
        "north south east west spring summer autumn winter river mountain forest desert ocean "
        "island valley canyon meadow glacier harbor bridge tower garden"
    ).split()
)


class PromptError(ValueError):
    """The request's prompt or messages have a shape the mock does not accept."""


def count_words(text: str) -> int:
    """Tokens of a text: ``len(text.split())``."""
    return len(text.split())


def prompt_tokens(prompt: Any) -> int:
    """Tokens of a completions ``prompt``: a string, a one-element list of strings, or token ids."""
    if isinstance(prompt, str):
        return count_words(prompt)
    if isinstance(prompt, list):
        if all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            return len(prompt)
        if len(prompt) == 1 and isinstance(prompt[0], str):
            return count_words(prompt[0])
        if len(prompt) == 1 and isinstance(prompt[0], list):
            return prompt_tokens(prompt[0])
        raise PromptError("the mock serves one prompt per request (a string or a list of token ids)")
    raise PromptError("'prompt' must be a string or a list of token ids")


def message_text(messages: Any) -> str:
    """All message contents joined by newlines (chat)."""
    if not isinstance(messages, list) or not messages:
        raise PromptError("'messages' must be a non-empty list")
    parts: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            raise PromptError("each message must be an object")
        content = m.get("content")
        if content is None:
            continue
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for p in content:
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str):
                    parts.append(p["text"])
        else:
            raise PromptError("message 'content' must be a string or a list of parts")
    return "\n".join(parts)


def chat_prompt_tokens(messages: Any) -> int:
    """Tokens of chat ``messages``: words of all contents, no template overhead."""
    return count_words(message_text(messages))


def token_id(word: str) -> int:
    """A stable fake token id for a word (for ``/tokenize``)."""
    return zlib.crc32(word.encode()) % 32000


def generated_text(n: int, start: int = 0) -> str:
    """Text of generated tokens ``start .. start+n-1``."""
    nw = len(WORDS)
    return "".join(WORDS[i % nw] for i in range(start, start + n))
