"""Prompt files and traces: the shipped samples read as their published schemas say, and every
bad file ends in one line naming the file, the line and the problem (exit 2 from the CLI)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from backends.mock.prefixcache import PrefixCache
from profiler import cli
from workloads import datasets, prefixes, traces
from workloads.errors import WorkloadError
from workloads.lengths import parse_length
from workloads.sessions import build_sessions, parse_think

SAMPLES = Path(__file__).resolve().parents[1] / "workloads" / "data" / "samples"


def test_sharegpt_sample_takes_the_first_human_turn_and_its_answer():
    path, entries = datasets.load_entries(str(SAMPLES / "sharegpt.json"))
    raw = json.loads((SAMPLES / "sharegpt.json").read_text())
    assert len(raw) == 49 and len(entries) == 48  # the one-turn entry has no answer: dropped
    first = raw[0]["conversations"]
    assert first[0]["from"] == "system"  # skipped: the prompt is the first human turn
    assert entries[0].prompt == first[1]["value"] and entries[0].answer == first[2]["value"]
    assert entries[1].line > entries[0].line


def test_sharegpt_variants_and_the_length_filter(tmp_path):
    f = tmp_path / "s.json"
    turn = json.dumps({"from": "human", "value": "one two three four five"})
    f.write_text(json.dumps([
        {"id": "a", "conversation": [turn, {"from": "gpt", "value": "six seven eight nine"}]},  # SGLang key, JSON string turn
        {"id": "b", "conversations": [{"from": "human", "value": "x y"}, {"from": "gpt", "value": "a b c d e"}]},
    ]))
    _, entries = datasets.load_entries(f"{f}:sharegpt")
    assert [e.prompt for e in entries] == ["one two three four five", "x y"]
    kept = datasets.select(entries, datasets.word_count, datasets.LengthFilter(4, 1024, 2048), seed=0)
    assert [(e.prompt, n_in, n_out) for e, n_in, n_out in kept] == [("one two three four five", 5, 4)]
    assert datasets.select(entries, datasets.word_count, datasets.LengthFilter(4, 4, 2048), seed=0) == []


def test_selection_is_seeded_and_capped():
    _, entries = datasets.load_entries(str(SAMPLES / "sharegpt.json"))
    a = datasets.select(entries, datasets.word_count, datasets.LengthFilter(), seed=3, max_prompts=10)
    b = datasets.select(entries, datasets.word_count, datasets.LengthFilter(), seed=3, max_prompts=10)
    c = datasets.select(entries, datasets.word_count, datasets.LengthFilter(), seed=4, max_prompts=10)
    assert len(a) == 10 and a == b and a != c


def test_jsonl_sample_prompt_and_messages():
    _, entries = datasets.load_entries(str(SAMPLES / "prompts.jsonl"))
    assert len(entries) == 24
    assert entries[0].messages[0] == ("system", "Answer briefly.") and entries[0].max_tokens == 0
    assert entries[1].messages == () and entries[1].max_tokens == 17


BAD_DATASETS = [
    ("empty.json", "", "line", "empty"),  # no line: the whole file
    ("obj.json", '{"id": 1}', "line 1", "jsonl"),
    ("schema.json", '[\n {"id": "a", "conversations": []},\n {"id": "b"}\n]', "line 3", "no 'conversations'"),
    ("garbage.json", '[\n {"id": "a", "conversations": []},\n {oops\n]', "line 3", "invalid JSON"),
    ("turn.json", '[\n{"conversations": [{"from": "human"}]}]', "line 2", "'from' and 'value'"),
    ("g.jsonl", '{"prompt": "a b c d e"}\nnot json at all\n', "line 2", "invalid JSON"),
    ("k.jsonl", '{"prompt": "a b c d e"}\n\n{"text": "x"}\n', "line 3", "'prompt'"),
    ("m.jsonl", '{"prompt": "a b c d e", "max_tokens": 0}\n', "line 1", "max_tokens"),
]


@pytest.mark.parametrize("name,text,where,problem", BAD_DATASETS)
def test_bad_prompt_files_name_file_line_and_problem(tmp_path, name, text, where, problem):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(WorkloadError) as e:
        datasets.load_entries(str(f))
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg
    if name == "empty.json":
        assert "empty" in msg
    elif name == "obj.json":  # a JSON object first: read as JSONL, which needs prompt or messages
        assert "line 1" in msg and "'prompt'" in msg
    else:
        assert where in msg and problem in msg


@pytest.mark.parametrize("name", ["azure_conv_2023.csv", "azure_code_2024.csv", "mooncake_trace.jsonl", "burstgpt.csv"])
def test_trace_samples_load_from_zero_and_sorted(name):
    _, rows = traces.load_trace(str(SAMPLES / name))
    assert rows[0].t_s == 0 and all(b.t_s >= a.t_s for a, b in zip(rows, rows[1:], strict=False))
    assert all(r.input_tokens >= 1 and r.output_tokens >= 1 for r in rows)
    assert 2 < traces.mean_rate(rows) < 20


def test_azure_timestamps_both_years():
    a = traces.parse_azure_time("2023-11-16 18:20:00.1234567")  # 7 digits, no zone = UTC
    b = traces.parse_azure_time("2023-11-16 18:20:01+00:00")  # 2024 form, fraction omitted
    c = traces.parse_azure_time("2023-11-16 18:20:01.5+00:00")
    assert b - a == pytest.approx(0.876544, abs=1e-6) and c - b == pytest.approx(0.5)


def test_burstgpt_reads_columns_by_name_and_skips_failed_rows(tmp_path):
    f = tmp_path / "b3.csv"  # the 8-column release: reading by position would take "ChatGPT" as tokens
    f.write_text("Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                 "100,s1,2.0,ChatGPT,10,5,15,Conversation log\n100.5,,1.0,GPT-4,20,0,20,API log\n"
                 "102,s1,1.5,ChatGPT,30,7,37,Conversation log\n")
    _, rows = traces.load_trace(str(f))
    assert [(r.t_s, r.input_tokens, r.output_tokens) for r in rows] == [(0.0, 10, 5), (2.0, 30, 7)]


def test_mooncake_blocks_and_shareable_tokens():
    _, rows = traces.load_trace(str(SAMPLES / "mooncake_trace.jsonl"))
    assert all(len(r.hash_ids) == math.ceil(r.input_tokens / 512) for r in rows)
    # formats.md's example: row 2 shares a 1024-token prefix with row 1
    ex = [((0, 1, 2), 1100), ((0, 1, 3), 1536), ((4, 5), 600)]
    assert prefixes.shared_block_tokens(ex, 512) == 1024
    text = prefixes.BlockText(512, seed=1)
    p1, p2 = text.prompt((0, 1, 2), 1100).split(), text.prompt((0, 1, 3), 1536).split()
    assert len(p1) == 1100 and len(p2) == 1536 and p1[:1024] == p2[:1024] and p1[1024:1030] != p2[1024:1030]


BAD_TRACES = [
    ("back.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:20:01.0,5,5\n2023-11-16 18:20:00.5,5,5\n",
     "line 3", "back in time"),
    ("cols.csv", "TIMESTAMP,Context,GeneratedTokens\n2023-11-16 18:20:01.0,5,5\n", "line 1", "ContextTokens"),
    ("date.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:20:01.0,5,5\nyesterday,5,5\n", "line 3",
     "not a date"),
    ("short.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n1,GPT-4,5\n", "line 2",
     "fields"),
    ("mc.jsonl", '{"timestamp": 0, "input_length": 10, "output_length": 2}\n{"timestamp": 5, "input_length": 9}\n',
     "line 2", "output_length"),
    ("ids.jsonl", '{"timestamp": 0, "input_length": 1100, "output_length": 2, "hash_ids": [0, 1]}\n', "line 1",
     "hash_ids"),
    ("junk.jsonl", '{"timestamp": 0, "input_length": 10, "output_length": 2}\n}}}\n', "line 2", "invalid JSON"),
    ("mcback.jsonl", '{"timestamp": 50, "input_length": 10, "output_length": 2}\n'
                     '{"timestamp": 40, "input_length": 10, "output_length": 2}\n', "line 2", "back in time"),
]


@pytest.mark.parametrize("name,text,where,problem", BAD_TRACES)
def test_bad_traces_name_file_line_and_problem(tmp_path, name, text, where, problem):
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(WorkloadError) as e:
        traces.load_trace(str(f))
    msg = str(e.value)
    assert "\n" not in msg and str(f) in msg and where in msg and problem in msg, msg


def test_trace_window_retimes_from_its_first_row():
    _, rows = traces.load_trace(str(SAMPLES / "azure_conv_2023.csv"))
    w = traces.window(rows, traces.parse_window("5,10"))
    inside = [r for r in rows if 5 <= r.t_s < 10]
    assert [r.line for r in w] == [r.line for r in inside] and w[0].t_s == 0
    assert w[-1].t_s == pytest.approx(inside[-1].t_s - inside[0].t_s)
    with pytest.raises(WorkloadError):
        traces.parse_window("10,5")


def test_the_cli_ends_a_bad_file_with_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a b c d e"}\n{garbage\n')
    assert cli.main(["sweep", "--dataset", str(bad), "--no-telemetry"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(bad) in err and "line 2" in err
    trace = tmp_path / "t.csv"
    trace.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2024-05-10 00:00:02+00:00,5,5\n"
                     "2024-05-10 00:00:01+00:00,5,5\n")
    assert cli.main(["sweep", "--trace", str(trace), "--no-telemetry"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(trace) in err and "line 3" in err and "back in time" in err
    empty = tmp_path / "e.json"
    empty.write_text("\n")
    assert cli.main(["sweep", "--dataset", str(empty)]) == 2
    assert "empty" in capsys.readouterr().err


def test_prefix_groups_share_exact_prefixes():
    reqs, shareable = prefixes.group_requests(40, 3, 100, parse_length("20"), parse_length("8"), seed=5)
    heads = {r.prompt.split()[:100].__str__() for r in reqs}
    assert len(heads) == 3 and all(r.input_tokens == 120 and len(r.prompt.split()) == 120 for r in reqs)
    assert len({r.prompt for r in reqs}) == 40 and shareable == (40 - 3) * 100


def test_sessions_grow_by_answers_and_new_turns():
    first, _ = prefixes.group_requests(2, 1, 10, parse_length("5"), parse_length("4"), seed=1)
    s = build_sessions(first, 3, parse_length("6"), parse_length("4"), parse_think("0.1"), seed=2)
    assert [(r.index, r.session, r.turn) for r in s[:3]] == [(0, 0, 0), (1, 0, 1), (2, 0, 2)]
    assert [r.input_tokens for r in s[:3]] == [15, 15 + 4 + 6, 15 + 4 + 6 + 4 + 6]
    assert s[1].think_s == 0.1 and s[0].think_s == 0
    assert parse_think("uniform:0,1").kind == "uniform"
    with pytest.raises(WorkloadError):
        parse_think("soon")


def test_mock_prefix_cache_counts_whole_blocks_but_never_the_last_token():
    c = PrefixCache(block=4, capacity_blocks=100)
    a = [f"w{i}" for i in range(10)]
    assert c.lookup(a) == 0  # stores blocks w0-3, w4-7
    assert c.lookup(a) == 8  # two blocks; the last two words are not a whole block
    assert c.lookup(a[:8]) == 4  # (8 - 1) // 4 = 1: the last token is always computed
    assert c.lookup(["x"] + a) == 0  # a different first block: nothing after it matches
    assert (c.queries, c.hits) == (10 + 10 + 8 + 11, 12)
