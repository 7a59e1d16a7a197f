"""Prompts that share prefixes: G shared system prompts (prefix groups) and Mooncake's hash-id
blocks, with the count of prompt tokens a prefix cache could serve.

Shareable tokens of a request = the tokens of its prefix that an EARLIER request of the same
point already sent (a group's first request shares nothing; a Mooncake row shares its leading
run of hash ids seen before, 512 tokens each, at most its input length). The point's shareable
share = sum(shareable) / sum(prompt tokens): the hit rate a prefix cache that never evicts would
reach, before rounding to the server's block size (vLLM only caches whole blocks and always
recomputes the last prompt token).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workloads.errors import WorkloadError
from workloads.lengths import LengthDist
from workloads.prompts import TokenCounter, approx_prompt
from workloads.requests import RequestSpec, build_requests


def group_requests(n: int, groups: int, prefix_tokens: int, input_len: LengthDist, output_len: LengthDist,
                   seed: int, tokenizer: TokenCounter | None = None) -> tuple[list[RequestSpec], int]:
    """`n` requests, each one of `groups` shared prefixes of exactly `prefix_tokens` tokens
    (exact with a tokenizer; words without) followed by its own part of `input_len` tokens.
    Groups are drawn uniformly with a seeded generator. Returns (requests, shareable tokens)."""
    if groups < 1 or prefix_tokens < 1:
        raise WorkloadError(f"--prefix-groups and --prefix-tokens must be >= 1, got {groups} and {prefix_tokens}")
    which = np.random.default_rng([seed, 17]).integers(0, groups, size=n)
    per_group = [build_requests(int((which == g).sum()), input_len, output_len, seed * 7919 + g, tokenizer,
                                prefix_tokens=prefix_tokens) for g in range(groups)]
    taken = [0] * groups
    out: list[RequestSpec] = []
    for i, g in enumerate(which):
        r = per_group[g][taken[g]]
        out.append(RequestSpec(i, r.prompt, r.input_tokens, r.max_tokens, r.input_exact))
        taken[g] += 1
    shareable = sum(prefix_tokens * (k - 1) for k in taken if k)
    return out, shareable


class BlockText:
    """The text of each hash id: `block` words, the same for the same id within a seed."""

    def __init__(self, block: int, seed: int):
        self.block, self.seed = block, seed
        self.cache: dict[int, list[str]] = {}

    def words(self, h: int) -> list[str]:
        if h not in self.cache:
            self.cache[h] = approx_prompt(self.block, np.random.default_rng([self.seed, h])).split()
        return self.cache[h]

    def prompt(self, hash_ids: Sequence[int], n_tokens: int) -> str:
        """Blocks in order; the last holds the remainder (`n_tokens - block * (len - 1)` words)."""
        words: list[str] = []
        for k, h in enumerate(hash_ids):
            w = self.words(h)
            words.extend(w if k < len(hash_ids) - 1 else w[: n_tokens - self.block * k])
        return " " + " ".join(words)


def shared_block_tokens(rows: Sequence[tuple[Sequence[int], int]], block: int) -> int:
    """Sum over rows (hash_ids, input tokens) of the tokens in each row's leading run of hash ids
    that an earlier row sent (at most its input length)."""
    seen: set[int] = set()
    total = 0
    for ids, n_in in rows:
        lead = 0
        while lead < len(ids) and ids[lead] in seen:
            lead += 1
        total += min(lead * block, n_in)
        seen.update(ids)
    return total
