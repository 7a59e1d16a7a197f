"""Tests for workloads/: length distributions, arrivals, prompts, request sets."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from workloads.arrivals import arrival_offsets
from workloads.errors import WorkloadError
from workloads.lengths import LengthDist, parse_length
from workloads.prompts import (
    HFTokenizer,
    TokenCounter,
    calibrate_prompt,
    complete_prompt,
    load_tokenizer,
    make_prompt,
    word_list,
)
from workloads.requests import RequestSpec, build_requests

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "tests" / "fixtures" / "tokenizer"


@pytest.fixture(scope="module")
def tok() -> TokenCounter:
    return load_tokenizer(TOKENIZER_DIR)


def _load_builder():
    spec = importlib.util.spec_from_file_location(
        "build_test_tokenizer", ROOT / "scripts/build_test_tokenizer.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def merging_tok() -> TokenCounter:
    """A BPE WITHOUT the regex pre-tokenizer: merges span word boundaries ("Ġthe" + "Ġfrom"),
    so concatenated tokens re-encode differently and make_prompt must correct."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    t.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    t.train_from_iterator(_load_builder().training_text(1500), trainer=trainer)
    assert any("Ġ" in s[1:] for s in t.get_vocab()), "expected cross-word merges"
    return HFTokenizer(t, "merging")


@pytest.fixture(scope="module")
def sentencepiece_tok() -> TokenCounter:
    """A Llama-2/Mistral-style Metaspace BPE: its decoder drops the first word's leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    t = Tokenizer(models.BPE(byte_fallback=True))
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    trainer = trainers.BpeTrainer(vocab_size=1200, special_tokens=["<unk>", "<s>"], show_progress=False)
    t.train_from_iterator(_load_builder().training_text(1500), trainer=trainer)
    return HFTokenizer(t, "sentencepiece")


# ---------------------------------------------------------------- lengths


@pytest.mark.parametrize(
    "text,kind,a,b",
    [
        ("128", "fixed", 128, 0),
        (" 7 ", "fixed", 7, 0),
        ("uniform:64,256", "uniform", 64, 256),
        ("normal:128,32", "normal", 128, 32),
        ("lognormal:128,0.5", "lognormal", 128, 0.5),
        ("LogNormal: 100 , 1", "lognormal", 100, 1),
    ],
)
def test_parse_length_forms(text, kind, a, b):
    d = parse_length(text)
    assert (d.kind, d.a, d.b) == (kind, a, b)
    assert parse_length(d.describe()) == d


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "0",
        "-5",
        "12.5",
        "uniform:10",
        "uniform:300,200",
        "uniform:0,5",
        "uniform:1.5,3",
        "normal:128,-1",
        "normal:0,3",
        "lognormal:128",
        "lognormal:0,0.5",
        "gamma:1,2",
        "normal:nan,1",
        "uniform:1,2,3",
    ],
)
def test_parse_length_rejects_bad_text(text):
    with pytest.raises(WorkloadError) as e:
        parse_length(text)
    msg = str(e.value)
    assert "\n" not in msg
    assert "uniform:LO,HI" in msg and "normal:MEAN,STD" in msg and "lognormal:MEAN,SIGMA" in msg


def test_fixed_sample():
    assert parse_length("5").sample(4, np.random.default_rng(0)) == [5, 5, 5, 5]
    assert parse_length("5").mean == 5


@pytest.mark.parametrize("text", ["uniform:64,256", "normal:128,32", "lognormal:128,0.5"])
def test_sample_reproducible_per_seed(text):
    d = parse_length(text)
    a = d.sample(500, np.random.default_rng(42))
    assert a == d.sample(500, np.random.default_rng(42))
    assert a != d.sample(500, np.random.default_rng(43))
    assert all(isinstance(v, int) for v in a)


def test_uniform_bounds_inclusive():
    x = np.array(parse_length("uniform:3,7").sample(5000, np.random.default_rng(1)))
    assert x.min() == 3 and x.max() == 7
    assert set(x.tolist()) == {3, 4, 5, 6, 7}


@pytest.mark.parametrize(
    "text",
    [
        "uniform:64,256",
        "normal:128,32",
        "normal:2,10",  # heavily clipped at 1: mean must include the clipped mass
        "lognormal:128,0.5",
        "lognormal:20,1.5",
        "lognormal:1,2",  # most mass below 1
    ],
)
def test_sample_mean_matches_expected_value(text):
    d = parse_length(text)
    x = np.array(d.sample(200_000, np.random.default_rng(7)))
    assert x.min() >= 1
    sem = x.std() / math.sqrt(len(x))
    assert abs(x.mean() - d.mean) < 5 * sem + 0.01, (x.mean(), d.mean)


def test_normal_clipping_raises_mean_above_parameter():
    d = parse_length("normal:2,10")
    assert d.mean > 4  # E[max(1, N(2, 10))] ~ 4.9, not 2
    assert min(d.sample(1000, np.random.default_rng(0))) == 1


def test_lognormal_is_mean_parameterised():
    d = parse_length("lognormal:128,0.5")
    assert d.mean == pytest.approx(128, rel=1e-6)
    x = np.array(d.sample(200_000, np.random.default_rng(3)))
    assert np.median(x) == pytest.approx(128 * math.exp(-0.125), rel=0.01)


def test_zero_spread_degenerates_to_fixed():
    for text in ("normal:50,0", "lognormal:50,0"):
        d = parse_length(text)
        assert d.sample(3, np.random.default_rng(0)) == [50, 50, 50]
        assert d.mean == 50


# ---------------------------------------------------------------- arrivals


@pytest.mark.parametrize("n,rate", [(1, 1.0), (10, 2.0), (1000, 37.5), (5000, 0.25)])
def test_poisson_spans_exactly_n_over_rate(n, rate):
    t = arrival_offsets(n, rate, "poisson", seed=3)
    assert len(t) == n
    assert t[-1] == pytest.approx(n / rate, rel=1e-12)
    assert t[0] > 0
    assert all(b >= a for a, b in zip(t, t[1:], strict=False))


def test_poisson_seeded_and_exponential_shaped():
    a = arrival_offsets(20_000, 10.0, seed=1)
    assert a == arrival_offsets(20_000, 10.0, seed=1)
    b = arrival_offsets(20_000, 10.0, seed=2)
    assert a != b and a[-1] == pytest.approx(b[-1])  # rescaling removes seed-to-seed span noise
    gaps = np.diff([0.0, *a])
    assert gaps.mean() == pytest.approx(0.1, rel=1e-9)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.05)  # exponential: CV = 1


def test_constant_arrivals():
    assert arrival_offsets(4, 2.0, "constant") == [0.0, 0.5, 1.0, 1.5]
    assert arrival_offsets(0, 2.0, "constant") == []
    assert arrival_offsets(0, 2.0) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0},
        {"rate": -1},
        {"rate": float("nan")},
        {"rate": float("inf")},
        {"rate": 1, "kind": "bursty"},
        {"rate": 1, "n": -1},
    ],
)
def test_arrivals_reject_bad_arguments(kwargs):
    args = {"n": 5, **kwargs}
    with pytest.raises(WorkloadError):
        arrival_offsets(**args)


# ---------------------------------------------------------------- tokenizer


def test_load_tokenizer_dir_and_file(tok):
    t2 = load_tokenizer(TOKENIZER_DIR / "tokenizer.json")
    text = "The cold river is near the old town."
    assert tok.encode(text) == t2.encode(text)
    assert tok.count(text) == len(tok.encode(text)) > 0
    assert tok.decode(tok.encode(text)) == text
    assert isinstance(tok, TokenCounter)


def test_count_excludes_special_tokens(tok):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(TOKENIZER_DIR / "tokenizer.json"))
    text = " hello world"
    with_bos = raw.encode(text, add_special_tokens=True).ids
    assert with_bos[0] == raw.token_to_id("<s>")
    assert tok.count(text) == len(with_bos) - 1


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(WorkloadError) as e:
        load_tokenizer(tmp_path / "nope")
    assert "\n" not in str(e.value) and "nope" in str(e.value)
    with pytest.raises(WorkloadError):
        load_tokenizer(tmp_path)  # exists but holds no tokenizer
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(WorkloadError):
        load_tokenizer(bad)


def test_build_script_reproduces_committed_fixture(tmp_path):
    _load_builder().build(tmp_path)
    committed = (TOKENIZER_DIR / "tokenizer.json").read_text()
    assert (tmp_path / "tokenizer.json").read_text() == committed
    assert load_tokenizer(tmp_path).encode(" the cold river") == load_tokenizer(TOKENIZER_DIR).encode(
        " the cold river"
    )


# ---------------------------------------------------------------- prompts


def test_word_list_is_short_frequent_words():
    words = word_list()
    assert len(words) >= 300
    assert len(set(words)) == len(words)
    assert all(w.isascii() and w.isalpha() and w.islower() and len(w) <= 8 for w in words)


def test_approx_prompt_without_tokenizer():
    rng = np.random.default_rng(0)
    p, exact = make_prompt(50, rng)
    assert exact is False
    assert p.startswith(" ") and "  " not in p
    parts = p.split(" ")[1:]
    assert len(parts) == 50 and set(parts) <= set(word_list())
    assert make_prompt(50, np.random.default_rng(0)) == (p, False)
    assert make_prompt(0, rng)[0] == ""


def _lengths(seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    fixed = [*range(1, 130), 255, 256, 257, 511, 512, 1000, 1023, 1024, 1999, 2000]
    return fixed + sorted(rng.integers(130, 2001, size=40).tolist())


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_make_prompt_exact_with_tokenizer(tok, seed):
    rng = np.random.default_rng(seed)
    for n in _lengths(seed):
        p, exact = make_prompt(n, rng, tok)
        assert exact is True
        assert tok.count(p) == n, (n, p[:80])


@pytest.mark.parametrize("seed", [0, 1])
def test_make_prompt_exact_when_merges_cross_word_boundaries(merging_tok, seed):
    rng = np.random.default_rng(seed)
    for n in _lengths(seed)[::3]:
        p, exact = make_prompt(n, rng, merging_tok)
        assert exact and merging_tok.count(p) == n, n


def test_make_prompt_exact_with_sentencepiece_style(sentencepiece_tok):
    rng = np.random.default_rng(0)
    for n in _lengths(0)[::3]:
        p, exact = make_prompt(n, rng, sentencepiece_tok)
        assert exact and sentencepiece_tok.count(p) == n, n


def test_complete_prompt_keeps_head_and_is_exact(tok, merging_tok, sentencepiece_tok):
    head = "Résumé: naïve café, 42 €! 🙂 The"
    for t in (tok, merging_tok, sentencepiece_tok):
        for n in (t.count(head), t.count(head) + 1, 100, 777):
            p, exact = complete_prompt(head, n, np.random.default_rng(n), t)
            assert p.startswith(head) and exact and t.count(p) == n
    with pytest.raises(WorkloadError):
        complete_prompt(head, 1, np.random.default_rng(0), tok)


class _Inflating:
    """Protocol-only tokenizer (no vocab_size, no batch calls) whose count is not additive:
    m real tokens count as m + m // 10, so some targets are unreachable."""

    def __init__(self, tok):
        self.tok = tok

    def encode(self, text):
        return self.tok.encode(text)

    def decode(self, ids):
        return self.tok.decode(ids)

    def count(self, text):
        m = self.tok.count(text)
        return m + m // 10


def test_make_prompt_corrects_non_additive_counts_and_reports_misses(tok):
    fake = _Inflating(tok)
    reachable = {m + m // 10 for m in range(0, 3000)}
    rng = np.random.default_rng(0)
    for n in [*range(1, 60), 99, 100, 101, 109, 110, 111, 500, 1500]:
        p, exact = make_prompt(n, rng, fake)
        assert exact == (n in reachable), n
        if exact:
            assert fake.count(p) == n
        else:
            assert abs(fake.count(p) - n) == 1


def test_complete_prompt_falls_back_to_words_without_safe_tokens(tok, monkeypatch):
    import workloads.prompts as prompts

    monkeypatch.setattr(prompts, "_safe_ids", lambda t: np.array([], dtype=np.int64))
    for n in (3, 40, 333):
        p, exact = make_prompt(n, np.random.default_rng(n), tok)
        assert exact and tok.count(p) == n
        assert set(p.split()) <= set(word_list())


def test_make_prompt_seeded(tok):
    a = make_prompt(300, np.random.default_rng(5), tok)
    assert a == make_prompt(300, np.random.default_rng(5), tok)
    assert a != make_prompt(300, np.random.default_rng(6), tok)


class _CountingFn:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, text: str) -> int:
        self.calls += 1
        return self.fn(text)


@pytest.mark.parametrize("bos", [0, 1])
@pytest.mark.parametrize("n", [5, 64, 300, 1500])
def test_calibrate_prompt_reaches_exact_count(tok, n, bos):
    # the tiny vocab splits many words into several tokens, so the word approximation is off
    rng = np.random.default_rng(n)
    approx, _ = make_prompt(n, np.random.default_rng(n))
    if n >= 64:
        assert tok.count(approx) + bos != n
    fn = _CountingFn(lambda t: tok.count(t) + bos)
    p, c = calibrate_prompt(n, fn, rng)
    assert c == n == tok.count(p) + bos
    assert fn.calls <= 8


def test_calibrate_prompt_is_bounded_and_honest():
    fn = _CountingFn(lambda t: len(t.split()) + 7)  # even one word is over the target of 5
    p, c = calibrate_prompt(5, fn, np.random.default_rng(0), max_rounds=5)
    assert fn.calls <= 5 and len(p.split()) == 1 and c == 8

    fn = _CountingFn(lambda t: 2 * len(t.split()))  # odd targets are unreachable
    p, c = calibrate_prompt(101, fn, np.random.default_rng(0), max_rounds=6)
    assert fn.calls == 6 and c == 2 * len(p.split()) and abs(c - 101) == 1


def test_calibrate_prompt_with_head(tok):
    head = " Summarise the text below."
    fn = _CountingFn(tok.count)
    p, c = calibrate_prompt(200, fn, np.random.default_rng(0), head=head)
    assert p.startswith(head) and c == tok.count(p) == 200


# ---------------------------------------------------------------- requests


def test_request_spec_is_frozen_with_slots():
    r = RequestSpec(0, " hi", 1, 8, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.prompt = "x"  # type: ignore[misc]
    assert not hasattr(r, "__dict__")
    fields = dataclasses.fields(RequestSpec)
    assert [f.name for f in fields[:5]] == [
        "index",
        "prompt",
        "input_tokens",
        "max_tokens",
        "input_exact",
    ]
    # later fields (production-like traffic) have defaults: five-argument callers keep working
    assert all(f.default is not dataclasses.MISSING for f in fields[5:])


@pytest.mark.parametrize("use_tok", [False, True])
def test_build_requests_deterministic(tok, use_tok):
    t = tok if use_tok else None
    args = (40, parse_length("uniform:10,200"), parse_length("normal:64,16"))
    a = build_requests(*args, seed=9, tokenizer=t)
    assert a == build_requests(*args, seed=9, tokenizer=t)
    assert a != build_requests(*args, seed=10, tokenizer=t)
    assert [r.index for r in a] == list(range(40))


def test_build_requests_without_tokenizer():
    reqs = build_requests(30, parse_length("uniform:5,50"), parse_length("17"), seed=1)
    for r in reqs:
        assert r.input_exact is False and r.max_tokens == 17
        assert 5 <= r.input_tokens <= 50 and len(r.prompt.split()) == r.input_tokens


def test_build_requests_exact_with_tokenizer(tok):
    reqs = build_requests(60, parse_length("lognormal:300,0.8"), parse_length("uniform:1,4"), 2, tok)
    for r in reqs:
        assert r.input_exact is True and r.input_tokens == tok.count(r.prompt) >= 1
        assert 1 <= r.max_tokens <= 4
    assert len({r.input_tokens for r in reqs}) > 10


def test_output_lengths_do_not_depend_on_input_distribution():
    out = parse_length("uniform:1,1000")
    a = build_requests(50, parse_length("10"), out, seed=4)
    b = build_requests(50, parse_length("normal:500,100"), out, seed=4)
    assert [r.max_tokens for r in a] == [r.max_tokens for r in b]


@pytest.mark.parametrize("use_tok", [False, True])
def test_short_prompts_are_all_distinct(tok, use_tok):
    # 150 one-token prompts from a few hundred candidates collide by chance unless redrawn
    reqs = build_requests(150, parse_length("1"), parse_length("1"), 0, tok if use_tok else None)
    assert len({r.prompt for r in reqs}) == 150


def test_shared_prefix_with_tokenizer(tok):
    reqs = build_requests(20, parse_length("uniform:8,64"), parse_length("4"), 3, tok, prefix_tokens=32)
    heads = {tuple(tok.encode(r.prompt)[:32]) for r in reqs}
    assert len(heads) == 1
    assert len({r.prompt for r in reqs}) == 20
    for r in reqs:
        assert r.input_exact and 32 + 8 <= r.input_tokens <= 32 + 64 == 96
        assert r.input_tokens == tok.count(r.prompt)


def test_shared_prefix_without_tokenizer():
    reqs = build_requests(10, parse_length("12"), parse_length("4"), 3, prefix_tokens=5)
    heads = {tuple(r.prompt.split()[:5]) for r in reqs}
    assert len(heads) == 1
    for r in reqs:
        assert r.input_tokens == 17 == len(r.prompt.split())
    bodies = {tuple(r.prompt.split()[5:]) for r in reqs}
    assert len(bodies) == 10


def test_build_requests_rejects_bad_arguments():
    d = LengthDist("fixed", 4)
    with pytest.raises(WorkloadError):
        build_requests(-1, d, d, 0)
    with pytest.raises(WorkloadError):
        build_requests(3, d, d, 0, prefix_tokens=-2)
