"""The mock's prefix cache: a prompt's leading blocks already seen are not prefilled again.

As vLLM's automatic prefix caching (v1 `KVCacheManager`): a prompt is cut into blocks of
`block` tokens (the mock's tokens are words, backends/mock/tokens.py); block k's key chains the
key of block k-1 with the block's words, so a block is found only when everything before it
matches too. A request's cached tokens = `block x` the leading blocks found, at most
`block x floor((n - 1) / block)` (the last prompt token is always computed, as in vLLM). Every
full block of the prompt followed by the words the request will generate is then stored (vLLM
caches generated tokens' blocks too, which a conversation's next turn reuses; the mock stores
them when the request arrives, not as they are generated); the least recently used block is
dropped beyond `capacity` blocks. Counters, in tokens, under vLLM's names: `vllm:prefix_cache_queries`
(prompt tokens looked up) and `vllm:prefix_cache_hits` (tokens found).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from backends.mock.tokens import WORDS, message_text


class PrefixCache:
    def __init__(self, block: int, capacity_blocks: int) -> None:
        self.block = max(1, block)
        self.capacity = max(1, capacity_blocks)
        self.blocks: OrderedDict[int, None] = OrderedDict()
        self.queries = 0
        self.hits = 0

    def lookup(self, words: list[str], generated: list[str] = ()) -> int:
        """Tokens of `words` served from the cache; stores the full blocks of `words + generated`."""
        n, b = len(words), self.block
        seq = words + list(generated)
        keys, key = [], 0
        for k in range(len(seq) // b):
            key = hash((key, tuple(seq[k * b:(k + 1) * b])))
            keys.append(key)
        found = 0
        for key in keys[: max(0, (n - 1) // b)]:
            if key not in self.blocks:
                break
            found += 1
        for key in keys:
            self.blocks[key] = None
            self.blocks.move_to_end(key)
        while len(self.blocks) > self.capacity:
            self.blocks.popitem(last=False)
        self.queries += n
        self.hits += found * b
        return found * b


def generated_words(n: int) -> list[str]:
    """The words of a request's n generated tokens (tokens.py: token i is WORDS[i]), as the next
    turn of a conversation sends them back."""
    return [WORDS[i % len(WORDS)].strip() for i in range(n)]


def prompt_words(obj: dict, chat: bool) -> list[str]:
    """The mock's tokens of a request's prompt (the same words `tokens.py` counts)."""
    if chat:
        return message_text(obj.get("messages")).split()
    prompt: Any = obj.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt.split()
    return [str(t) for t in prompt] if isinstance(prompt, list) else []
