"""What a sweep's quality measurement is asked to do (`manifest["quality"]`), checked before any
point runs, and each point's eval requests mixed into its load.

Each point's eval requests are every (item, template) pair, or with `sample` K a seeded sample of
K items (per point) under every template. They take the place of as many of the point's synthetic
requests, at seeded positions, so the load keeps its count, concurrency or arrival schedule; when
there are more eval requests than the point's count, the point is the eval requests alone. A
`--duration` point cycles through a pool of requests from its start, so there they are placed among
the pool's first max(4 × eval requests, --requests) requests. Eval
requests stop naturally (no `ignore_eos`) at temperature `temperature` (0 unless set), with the
item's `max_tokens` or the plan's.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from backends.http1 import encode_json_post
from backends.openai import PATHS, OpenAICodec
from profiler.errors import UserError
from profiler.quality.judge import Judge
from profiler.quality.scorers import Dimension, Scorer, parse_dimension, parse_scorer
from workloads.evalsets import EvalItem, read_eval, read_templates, render
from workloads.requests import RequestSpec

DEFAULT_MAX_TOKENS = 256
DEFAULT_THRESHOLD = 0.5
EVAL_COPY, TEMPLATES_COPY = "eval.jsonl", "templates.txt"


@dataclass
class QualityPlan:
    cfg: dict
    items: list[EvalItem]
    templates: list[str]
    dims: list[Dimension]
    item_scorers: dict[str, Scorer]  # items' own `scorer`, for dimensions given as NAME=item
    judge: Judge | None = None

    @classmethod
    def build(cls, cfg: dict, check_judge: bool = False) -> QualityPlan:
        """Check everything a user can get wrong, before any point runs."""
        items = read_eval(cfg["eval_file"])
        templates = read_templates(cfg["templates_file"]) if cfg.get("templates_file") else ["{prompt}"]
        useful = dict(cfg.get("useful") or {})
        specs = [parse_dimension(s) for s in cfg.get("scorers") or ()]
        if not specs and not cfg.get("judge_url"):
            specs = [("accuracy", "item")]  # each item's own scorer (exact when it names none)
        dims = [Dimension(n, parse_scorer(s), useful.get(n, DEFAULT_THRESHOLD)) for n, s in specs]
        judge = None
        if cfg.get("judge_url"):
            judge = Judge.build(cfg["judge_url"], cfg.get("judge_model", ""), cfg.get("judge_prompt_file", ""))
            dims.append(Dimension("judge", Scorer("judge", "judge", _no_local), useful.get("judge", DEFAULT_THRESHOLD)))
            if check_judge:
                judge.check(items[0].prompt, items[0].reference)
        names = [d.name for d in dims]
        if len(set(names)) != len(names):
            raise UserError(f"--scorer: dimension names repeat ({', '.join(names)})")
        unknown = set(useful) - set(names)
        if unknown:
            raise UserError(f"--useful names {', '.join(sorted(unknown))}, not a dimension ({', '.join(names)})")
        item_scorers = {s: parse_scorer(s) for s in {it.scorer for it in items if it.scorer}}
        if cfg.get("sample", 0) < 0:
            raise UserError("--eval-sample must be >= 0")
        return cls(cfg, items, templates, dims, item_scorers, judge)

    def manifest(self, endpoint_model: str) -> dict:
        """manifest["quality"]: the flags, the dimensions as run, and the prices used."""
        price = self.cfg.get("judge_price")
        if self.judge is not None and not price:
            h = hosted_price(self.judge.model)
            price = [h["input"], h["output"]] if h else None
        return {**self.cfg, "items": len(self.items), "templates": len(self.templates),
                "dimensions": [{"name": d.name, "scorer": d.scorer.spec, "threshold": d.threshold} for d in self.dims],
                "hosted": hosted_price(endpoint_model), "judge_price": price,
                "judge_model": self.judge.model if self.judge is not None else ""}

    def scorer_for(self, dim_index: int, item: EvalItem) -> Scorer:
        if self.dims[dim_index].scorer.kind == "item" and item.scorer:
            return self.item_scorers[item.scorer]
        return self.dims[dim_index].scorer

    def copy_into(self, run_dir: Path) -> None:
        """The run folder keeps the eval set and templates it was measured with."""
        shutil.copyfile(self.cfg["eval_file"], run_dir / EVAL_COPY)
        if self.cfg.get("templates_file"):
            shutil.copyfile(self.cfg["templates_file"], run_dir / TEMPLATES_COPY)

    def pairs(self, point: int, seed: int) -> list[tuple[int, int]]:
        """(item, template) of a point's eval requests, in a seeded order."""
        rng = np.random.default_rng([seed, point, 16])
        k = int(self.cfg.get("sample") or 0)
        chosen = sorted(rng.choice(len(self.items), size=k, replace=False)) if 0 < k < len(self.items) \
            else range(len(self.items))
        pairs = [(int(i), t) for i in chosen for t in range(len(self.templates))]
        return [pairs[j] for j in rng.permutation(len(pairs))]

    def mix(self, codec, reqs: list[RequestSpec], payloads: list[bytes], point: int, seed: int, span: int = 0):
        """The point's requests with its eval requests in place: (requests, payloads, {index: (item, template)}).
        `span`: place them among the first `span` requests (a --duration point sends a prefix of its pool)."""
        pairs = self.pairs(point, seed)
        n = len(reqs)
        span = min(n, max(span, len(pairs))) if span else n
        if len(pairs) >= n:
            positions = list(range(len(pairs)))
            reqs, payloads = [None] * len(pairs), [None] * len(pairs)
        else:
            rng = np.random.default_rng([seed, point, 61])
            positions = sorted(int(x) for x in rng.choice(span, size=len(pairs), replace=False))
            reqs, payloads = list(reqs), list(payloads)
        eval_codec = replace(codec, ignore_eos=False, temperature=float(self.cfg.get("temperature", 0.0)))
        answers = {}
        for pos, (i, t) in zip(positions, pairs, strict=True):
            item = self.items[i]
            prompt = render(self.templates[t], item.prompt)
            req = RequestSpec(pos, prompt, len(prompt.split()),
                              item.max_tokens or int(self.cfg.get("max_tokens") or DEFAULT_MAX_TOKENS), False)
            reqs[pos], payloads[pos] = req, encode(eval_codec, req, item, prompt)
            answers[pos] = (i, t)
        return reqs, payloads, answers


def _no_local(answer, reference, item) -> float:  # the judge scores through Judge, after the point
    raise RuntimeError("the judge is not a local scorer")


def encode(codec: OpenAICodec, req: RequestSpec, item: EvalItem, prompt: str) -> bytes:
    """An eval request's bytes: the item's chat history with its last user turn templated."""
    body = codec.body(req)
    if item.messages is not None:
        last = max(j for j, (role, _) in enumerate(item.messages) if role == "user")
        body["messages"] = [{"role": r, "content": prompt if j == last else c}
                            for j, (r, c) in enumerate(item.messages)]
    return encode_json_post(codec.endpoint, PATHS[codec.api], body, codec._auth_headers())


def check_codec(codec, items: list[EvalItem]) -> None:
    if not isinstance(codec, OpenAICodec):
        raise UserError("--eval needs an OpenAI-compatible endpoint (--backend openai)")
    if codec.api != "chat" and any(it.messages is not None for it in items):
        raise UserError("eval items with `messages` need --api chat")


def hosted_price(model: str) -> dict | None:
    """The cheapest hosted list price of a model of this name ($/1M tokens), or None."""
    from profiler.cost.hosted import find_hosted

    try:
        h = find_hosted(model)[0]
    except (ValueError, IndexError, OSError):
        return None
    return {"key": h.key, "input": h.input, "output": h.output}
