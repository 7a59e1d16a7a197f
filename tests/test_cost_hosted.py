"""Hosted price snapshot, aliases, comparison and break-even (hand-computed)."""

import json
import math

import pandas as pd
import pytest

from profiler.cost import hosted as hosted_mod
from profiler.cost.compare_hosted import compare_hosted, compare_point
from profiler.cost.hosted import (
    SNAPSHOT_PATH,
    HostedPrice,
    build_snapshot,
    dump_snapshot,
    find_hosted,
    hosted_prices,
    load_aliases,
)


def test_build_snapshot_filters_and_converts():
    raw = {
        "sample_spec": {"mode": "chat", "input_cost_per_token": 1, "output_cost_per_token": 1},
        "a/chat": {"mode": "chat", "litellm_provider": "a", "input_cost_per_token": 1.5e-7,
                   "output_cost_per_token": 6e-7, "cache_read_input_token_cost": 7.5e-8,
                   "input_cost_per_token_batches": 7.5e-8, "output_cost_per_token_batches": 3e-7},
        "b/free": {"mode": "chat", "litellm_provider": "b", "input_cost_per_token": 0.0, "output_cost_per_token": 0.0},
        "c/embed": {"mode": "embedding", "input_cost_per_token": 1e-7, "output_cost_per_token": 1e-7},
        "d/half": {"mode": "chat", "input_cost_per_token": 1e-7},
    }
    snap = build_snapshot(raw, "9.9.9", "2026-01-02")
    assert list(snap["models"]) == ["a/chat"]
    rec = snap["models"]["a/chat"]
    assert rec == {"provider": "a", "input": 0.15, "output": 0.6, "cache_read": 0.075,
                   "batch_input": 0.075, "batch_output": 0.3}
    assert snap["litellm_version"] == "9.9.9" and snap["generated_at"] == "2026-01-02"


def test_dump_is_valid_json(tmp_path):
    snap = build_snapshot({"x/y": {"mode": "chat", "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}},
                          "1", "2026-01-01")
    dump_snapshot(snap, tmp_path / "h.json")
    assert json.loads((tmp_path / "h.json").read_text())["models"]["x/y"]["output"] == 2.0


def test_shipped_snapshot():
    assert SNAPSHOT_PATH.stat().st_size < 1_000_000
    snap = json.loads(SNAPSHOT_PATH.read_text())
    assert snap["litellm_version"] and snap["generated_at"]
    prices = hosted_prices()
    assert len(prices) > 500
    g = prices["gpt-4o-mini"]
    assert (g.input, g.output, g.cache_read) == (0.15, 0.6, 0.075)
    assert all(p.input > 0 and p.output > 0 for p in prices.values())


def test_every_alias_resolves_in_snapshot():
    prices = hosted_prices()
    for name, grp in load_aliases().items():
        assert grp["hf_ids"], name
        assert [k for k in grp["hosted"] if k in prices], name


def test_find_hosted():
    hits = find_hosted("meta-llama/Llama-3.1-8B-Instruct")
    assert len(hits) >= 3 and all("8" in h.key for h in hits)
    assert hits == sorted(hits, key=lambda h: h.input + h.output)
    assert [h.key for h in find_hosted("gpt-4o-mini")] == ["gpt-4o-mini"]
    assert find_hosted("QWEN/qwen2.5-72b-instruct")  # case-insensitive HF id
    with pytest.raises(ValueError, match="close matches: gpt-4o-mini"):
        find_hosted("gpt-4o-minii")


def _point(window=3600.0, tin=3.6e6, tout=3.6e6):
    return pd.Series({"point": 3, "window_s": window, "input_tokens": tin, "output_tokens": tout})


def test_break_even_by_hand():
    # 1 GPU at $2/h for 1 h producing 3.6M input + 3.6M output tokens;
    # hosted $0.10 in / $0.50 out → mix price (0.1 + 0.5) / 2 = $0.30 per 1M
    h = HostedPrice(key="x/m", provider="x", input=0.10, output=0.50)
    c = compare_point(_point(), h, gpus=1, usd_per_gpu_hour=2.0)
    assert c.hosted_usd_per_1m_blended == pytest.approx(0.30)
    assert c.self_usd_per_1m_blended == pytest.approx(2.0 / 7.2)  # $0.2778
    assert c.ratio == pytest.approx((2.0 / 7.2) / 0.30)
    assert c.gpu_usd_per_month == pytest.approx(2.0 * 730)
    # $1460 / ($0.30 per 1M) = 4.8667e9 tokens/month = 1.6e8 tokens/day
    assert c.break_even_tokens_per_month == pytest.approx(1460 / 0.30e-6)
    assert c.break_even_tokens_per_day == pytest.approx(1.6e8)
    # capacity 2000 tok/s × 3600 × 730 = 5.256e9 → utilisation 92.6 % (= the cost ratio)
    assert c.capacity_tokens_per_month == pytest.approx(5.256e9)
    assert c.break_even_utilisation == pytest.approx(c.ratio)
    assert c.break_even_utilisation == pytest.approx(0.9259, abs=1e-4)


def test_break_even_never_when_self_hosting_is_dearer():
    h = HostedPrice(key="x/cheap", provider="x", input=0.01, output=0.01)
    c = compare_point(_point(), h, gpus=8, usd_per_gpu_hour=6.88)
    assert c.break_even_utilisation > 1


def test_compare_hosted_run_model_and_extra():
    rows, notes = compare_hosted(_point(), 1, 2.0, "meta-llama/Llama-3.1-8B-Instruct", ["gpt-4o-mini"])
    assert not notes
    assert rows[-1].key == "gpt-4o-mini" and rows[-1].why == "--compare"
    assert all(r.why == "same model" for r in rows[:-1])
    rows, notes = compare_hosted(_point(), 1, 2.0, "my/private-model", [])
    assert rows == [] and "my/private-model" in notes[0]
    with pytest.raises(ValueError):
        compare_hosted(_point(), 1, 2.0, None, ["no-such-model-xyz"])


def test_update_failure_keeps_old_snapshot(tmp_path, monkeypatch):
    target = tmp_path / "hp.json"
    target.write_text('{"old": true}')

    def boom(workdir, timeout_s=300):
        raise RuntimeError("pip download litellm failed: network unreachable")

    monkeypatch.setattr(hosted_mod, "fetch_litellm_prices", boom)
    with pytest.raises(RuntimeError):
        hosted_mod.update_snapshot(target)
    assert target.read_text() == '{"old": true}'


def test_update_writes_snapshot(tmp_path, monkeypatch):
    raw = {"p/m": {"mode": "chat", "litellm_provider": "p", "input_cost_per_token": 1e-6,
                   "output_cost_per_token": 3e-6}}
    monkeypatch.setattr(hosted_mod, "fetch_litellm_prices", lambda workdir, timeout_s=300: (raw, "1.2.3"))
    snap = hosted_mod.update_snapshot(tmp_path / "hp.json", date="2026-02-03")
    assert snap["count"] == 1
    assert hosted_prices(tmp_path / "hp.json")["p/m"].output == 3.0
    assert not math.isnan(hosted_prices(tmp_path / "hp.json")["p/m"].blended(1, 1))
