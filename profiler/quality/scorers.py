"""Scorers: each turns (answer, reference) into a score in [0, 1]; a named one is a quality dimension.

`--scorer NAME=KIND[:ARG]`; KIND is one of
- `exact`       the answer, stripped, equals the reference (any of a list; a number as `%g`);
- `normalized`  equal after lower-casing, dropping punctuation and collapsing whitespace;
- `contains`    the normalized reference appears in the normalized answer, on word boundaries;
- `regex[:PAT]` `re.search(PAT, answer)` (without PAT, the reference is the pattern);
- `numeric[:TOL]` the LAST number in the answer is within TOL (absolute, default 1e-6) of the reference;
- `choice`      the answer's A–E letter (`Answer: C`, `(C)`, `C)` or a lone `C`) equals the reference;
- `json[:SCHEMA.json]` the answer (code fences stripped) parses as JSON, and validates against the
  schema when one is given (jsonschema);
- `item`        each item's own `scorer` field (`exact` for items that name none);
- `package.module:function` a user function `f(answer, reference)` or `f(answer, reference, item)`
  (item: a dict with id, prompt, category) returning a bool or a number in [0, 1].
Pass/fail scorers return 0.0 or 1.0. A scorer that raises (or returns something else) on one
answer marks that answer (`ScoreError`), never the run.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from profiler.errors import UserError

BUILTIN = ("exact", "normalized", "contains", "regex", "numeric", "choice", "json")
PASS_FAIL = {"exact", "normalized", "contains", "regex", "numeric", "choice", "json"}
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LETTER_PATTERNS = (
    re.compile(r"\b(?:answer|option|choice)\s*(?:is)?\s*[:\-]?\s*\(?([A-E])\)?(?![\w])", re.IGNORECASE),
    re.compile(r"^\s*\(?([A-E])\)?(?:[).:\s]|$)"),
    re.compile(r"\(([A-E])\)"),
    re.compile(r"(?<![\w])([A-E])(?![\w])"),
)
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_USER = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class ScoreError(Exception):
    """A scorer could not score one answer; the message goes into that answer's row."""


@dataclass(frozen=True)
class Scorer:
    """One scoring rule: `fn(answer, reference, item) -> float in [0, 1]`."""

    spec: str  # as written, e.g. "numeric:0.5" or "mymod:check"
    kind: str  # a BUILTIN name or "function"
    fn: Callable[[str, object, dict], float]

    def __call__(self, answer: str, reference: object, item: dict) -> float:
        try:
            v = self.fn(answer, reference, item)
        except ScoreError:
            raise
        except Exception as e:  # a scorer's bug marks this answer only
            raise ScoreError(f"{type(e).__name__}: {e}") from None
        if isinstance(v, bool):
            return float(v)
        if isinstance(v, int | float) and math.isfinite(v) and 0.0 <= v <= 1.0:
            return float(v)
        raise ScoreError(f"returned {v!r}, not a bool or a number in [0, 1]")


@dataclass(frozen=True)
class Dimension:
    """A named quality dimension: its scorer, and the score at or above which it counts as useful."""

    name: str
    scorer: Scorer
    threshold: float = 0.5


def normalize(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _refs(reference: object) -> list[str]:
    if isinstance(reference, tuple | list):
        return [str(r) for r in reference]
    if isinstance(reference, float):
        return [f"{reference:g}"]
    return [str(reference)]


def exact(answer: str, reference: object, item: dict) -> float:
    return float(answer.strip() in [r.strip() for r in _refs(reference)])


def normalized(answer: str, reference: object, item: dict) -> float:
    return float(normalize(answer) in [normalize(r) for r in _refs(reference)])


def contains(answer: str, reference: object, item: dict) -> float:
    a = f" {normalize(answer)} "
    return float(any(f" {normalize(r)} " in a for r in _refs(reference) if normalize(r)))


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def numeric(tol: float) -> Callable[[str, object, dict], float]:
    def score(answer: str, reference: object, item: dict) -> float:
        try:
            ref = float(reference) if not isinstance(reference, tuple | list) else float(reference[0])
        except (TypeError, ValueError):
            raise ScoreError(f"reference {reference!r} is not a number") from None
        x = last_number(answer)
        return float(x is not None and abs(x - ref) <= tol)
    return score


def answer_letter(text: str) -> str | None:
    for pat in _LETTER_PATTERNS:
        m = pat.search(text)
        if m:
            return m.group(1).upper()
    return None


def choice(answer: str, reference: object, item: dict) -> float:
    letter = answer_letter(answer)
    return float(letter is not None and letter in [r.strip().upper() for r in _refs(reference)])


def regex(pattern: str | None) -> Callable[[str, object, dict], float]:
    compiled = re.compile(pattern) if pattern is not None else None

    def score(answer: str, reference: object, item: dict) -> float:
        if compiled is not None:
            return float(compiled.search(answer) is not None)
        try:
            return float(any(re.search(r, answer) for r in _refs(reference)))
        except re.error as e:
            raise ScoreError(f"reference is not a regular expression ({e})") from None
    return score


def json_scorer(schema: dict | None) -> Callable[[str, object, dict], float]:
    validator = None
    if schema is not None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)

    def score(answer: str, reference: object, item: dict) -> float:
        m = _FENCE.match(answer)
        try:
            obj = json.loads(m.group(1) if m else answer)
        except ValueError:
            return 0.0
        return float(validator is None or validator.is_valid(obj))
    return score


def _float_arg(kind: str, arg: str) -> float:
    try:
        v = float(arg)
    except ValueError:
        raise UserError(f"scorer {kind}:{arg}: {arg!r} is not a number") from None
    if not math.isfinite(v) or v < 0:
        raise UserError(f"scorer {kind}:{arg}: the tolerance must be >= 0")
    return v


def _schema(arg: str) -> dict:
    try:
        schema = json.loads(Path(arg).read_text(encoding="utf-8"))
    except OSError as e:
        raise UserError(f"scorer json:{arg}: cannot read the schema ({e.strerror or e})") from None
    except ValueError as e:
        raise UserError(f"scorer json:{arg}: the schema is not JSON ({e})") from None
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise UserError(f"scorer json:{arg}: not a valid JSON schema ({e.message})") from None
    return schema


def load_function(spec: str) -> Callable[[str, object, dict], float]:
    """`package.module:function`, imported now (the working directory is importable)."""
    module, _, name = spec.partition(":")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # ImportError, or the module itself failing on import
        raise UserError(f"scorer {spec}: cannot import {module} ({type(e).__name__}: {e})") from None
    fn = getattr(mod, name, None)
    if not callable(fn):
        raise UserError(f"scorer {spec}: {module} has no function {name}")
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) == 2:
        return lambda answer, reference, item: fn(answer, reference)
    return fn


def parse_scorer(spec: str) -> Scorer:
    """A Scorer from `KIND[:ARG]` or `package.module:function` (see the module docstring)."""
    spec = spec.strip()
    kind, _, arg = spec.partition(":")
    if spec == "item":
        return Scorer(spec, "item", exact)
    if kind in BUILTIN:
        if kind == "numeric":
            return Scorer(spec, kind, numeric(_float_arg(kind, arg) if arg else 1e-6))
        if kind == "regex":
            try:
                return Scorer(spec, kind, regex(arg or None))
            except re.error as e:
                raise UserError(f"scorer {spec}: bad regular expression ({e})") from None
        if kind == "json":
            return Scorer(spec, kind, json_scorer(_schema(arg) if arg else None))
        if arg:
            raise UserError(f"scorer {spec}: {kind} takes no argument")
        return Scorer(spec, kind, {"exact": exact, "normalized": normalized, "contains": contains,
                                   "choice": choice}[kind])
    if _USER.match(spec):
        return Scorer(spec, "function", load_function(spec))
    raise UserError(f"unknown scorer {spec!r}: use one of {', '.join(BUILTIN)} or package.module:function")


def parse_dimension(text: str) -> tuple[str, str]:
    """`NAME=SPEC` -> (name, spec); the spec is checked by parse_scorer."""
    name, eq, spec = text.partition("=")
    name = name.strip()
    if not eq or not re.fullmatch(r"[A-Za-z_]\w*", name) or not spec.strip():
        raise UserError(f"--scorer {text!r}: use NAME=SCORER, e.g. accuracy=numeric or format=json")
    return name, spec.strip()


def parse_useful(text: str) -> dict[str, float]:
    """`--useful accuracy=1,format=0.5` -> thresholds in [0, 1]."""
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, eq, v = part.partition("=")
        try:
            t = float(v)
        except ValueError:
            t = math.nan
        if not eq or not 0.0 <= t <= 1.0:
            raise UserError(f"--useful {text!r}: use NAME=THRESHOLD with a threshold in [0, 1]")
        out[name.strip()] = t
    return out
