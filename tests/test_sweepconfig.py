"""Sweep files: every sweep flag round-trips through YAML, CLI flags win, bad files give one line
naming the key, and a run re-runs from its manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from profiler.cli import build_parser, main
from profiler.sweepconfig import apply_config, config_actions, dump_yaml, resolved, sweep_parser


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    return apply_config(parser, parser.parse_args(argv), argv)


def _sample(key: str, action: argparse.Action) -> list[str]:
    """Command-line tokens giving `key` a non-default value."""
    flag = action.option_strings[-1] if action.option_strings[-1].startswith("--") else action.option_strings[0]
    if action.nargs == 0:
        return [flag]
    if isinstance(action, argparse._AppendAction):
        return [flag, "a=1", flag, "b=2"]
    if action.choices is not None:
        return [flag, str(list(action.choices)[-1])]
    if action.type is int:
        return [flag, "3"]
    if action.type is float:
        return [flag, "0.25"]
    return [flag, "7,8"]


ACTIONS = config_actions(sweep_parser(build_parser()))


@pytest.mark.parametrize("key", sorted(ACTIONS))
def test_every_sweep_flag_round_trips_through_yaml(key, tmp_path):
    cli = _parse(["sweep", *_sample(key, ACTIONS[key])])
    path = tmp_path / "sweep.yaml"
    path.write_text(dump_yaml(resolved(cli)))
    assert key in yaml.safe_load(path.read_text())
    from_file = _parse(["sweep", "--config", str(path)])
    got, want = vars(from_file), vars(cli)
    got.pop("config")
    want.pop("config")
    assert got == want
    assert getattr(from_file, ACTIONS[key].dest) != ACTIONS[key].default


def test_yaml_lists_and_mappings_and_cli_overrides(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("concurrency: [1, 4, 16]\nrequests: 5\nslo: {ttft_p99: 500ms, tpot_p99: 50ms}\n"
                    "mock_arg: --fail-rate=0.1\ngpus: [0, 1]\nno_nvml: true\n")
    a = _parse(["sweep", "--config", str(path), "--requests", "9"])
    assert (a.concurrency, a.requests, a.slo) == ("1,4,16", 9, "ttft_p99=500ms,tpot_p99=50ms")
    assert a.mock_arg == ["--fail-rate=0.1"] and a.gpus == "0,1" and a.no_nvml is True
    # a typed flag drops its exclusive rival from the file
    b = _parse(["sweep", "--config", str(path), "--rate", "2"])
    assert (b.rate, b.concurrency) == ("2", None)


@pytest.mark.parametrize("text,key", [
    ("concurency: [1, 2]\n", "concurency"),
    ("requests: many\n", "requests"),
    ("json: 3\n", "json"),
    ("api: telepathy\n", "api"),
    ("warmup: [0.1]\n", "warmup"),
    ("slo: true\n", "slo"),
    ("pricing: sometimes\n", "pricing"),
    ("concurrency: 1\nrate: 2\n", "concurrency"),
])  # fmt: skip
def test_bad_file_is_one_line_naming_the_key(text, key, tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["sweep", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and repr(key) in err and str(path) in err, err


def test_unreadable_files(tmp_path, capsys):
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps({"run_id": "x", "spec": {}}))
    for path, words in ((tmp_path / "list.yaml", "expected a mapping"), (tmp_path / "nope.yaml", "no such file"),
                        (tmp_path / "old", "no saved config")):
        assert main(["sweep", "--config", str(path)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and words in err, err


def test_rerun_from_manifest_reproduces_the_spec(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text("concurrency: [1, 2]\nrequests: 4\ninput_tokens: 16\noutput_tokens: 8\n"
                    "slo: {ttft_p99: 2s}\nseed: 7\nno_report: true\nno_telemetry: true\n")
    assert main(["sweep", "--config", str(path), "--out", str(tmp_path / "a"), "--json"]) == 0
    first = Path(json.loads(capsys.readouterr().out)["run_dir"])
    assert main(["sweep", "--config", str(first), "--out", str(tmp_path / "b"), "--json"]) == 0
    second = Path(json.loads(capsys.readouterr().out)["run_dir"])
    m1, m2 = (json.loads((d / "manifest.json").read_text()) for d in (first, second))
    assert m1["spec"] == m2["spec"] and m1["slos"] == m2["slos"] == {"ttft_p99": 2.0}
    assert {k: v for k, v in m1["config"].items() if k != "out"} == {k: v for k, v in m2["config"].items() if k != "out"}
    assert m1["config"]["concurrency"] == "1,2" and m2["config"]["out"] == str(tmp_path / "b")
