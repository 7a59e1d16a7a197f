"""Sweep files: `inferprof sweep --config sweep.yaml`.

The schema is built from the sweep subparser's own argparse actions, so every sweep flag (also the
ones added later) is a key: the long flag name with `_` for `-` (`input_tokens`, `slo`, `gpu_price`).
One pydantic model validates a file: an unknown key or a wrong type is one line naming the key.
Value forms:
- on/off flags (`--json`, `--no-nvml`): true / false;
- int / float flags: numbers;
- text flags: a string or a number; comma-list flags (`concurrency`, `rate`, `gpus`, `slo`, ...) may
  also be YAML lists (joined with `,`), and `slo` / `useful` a mapping (`{ttft_p99: 500ms}` → `ttft_p99=500ms`);
- repeatable flags (`mock_arg`, `scorer`): a list of strings (or one string).

Flags given on the command line win over the file; only flags actually typed count, so a file's
`concurrency` survives a command line that sets nothing. The resolved flags (every key, defaults
included) are saved as the manifest's "config", and `--config RUN_DIR/manifest.json` (or RUN_DIR)
re-runs the same sweep.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationError,
    create_model,
)

from profiler.errors import UserError

# flags that are about this invocation, not the sweep: never taken from or saved to a file
NOT_CONFIG = frozenset({"help", "config", "resume"})
Scalar = StrictInt | StrictFloat | str
Text = Scalar | list[Scalar] | dict[str, Scalar]


def add_config_arg(sweep: argparse.ArgumentParser) -> None:
    """The hook in profiler.cli.build_parser."""
    sweep.add_argument("--config", metavar="FILE",
                       help="sweep file (.yaml) of sweep flags, or a run's manifest.json / folder to re-run it; "
                            "flags on the command line win")


def sweep_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The `sweep` subparser of the main parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["sweep"]
    raise LookupError("no sweep subcommand")


def config_actions(sweep: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """key (long flag name, `_` for `-`) -> its argparse action, for every sweep flag."""
    out = {}
    for action in sweep._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or action.dest in NOT_CONFIG:
            continue
        out[longs[0][2:].replace("-", "_")] = action
    return out


def _field_type(action: argparse.Action) -> Any:
    if isinstance(action, argparse._StoreConstAction | argparse._StoreTrueAction | argparse._StoreFalseAction):
        return StrictBool
    if isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"):
        return list[Scalar] | Scalar
    if action.type is int:
        return StrictInt
    if action.type is float:
        return StrictInt | StrictFloat
    return Text


def schema(sweep: argparse.ArgumentParser) -> type[BaseModel]:
    """The pydantic model of a sweep file: every key optional, nothing else allowed."""
    # field names are prefixed (keys like `json` would shadow BaseModel methods); the keys are aliases
    fields = {f"k_{key}": (_field_type(a) | None, Field(None, alias=key)) for key, a in config_actions(sweep).items()}
    return create_model("SweepFile", __config__=ConfigDict(extra="forbid"), **fields)


def _one_line(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"][:1]) or "?"
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown key {key!r} (keys are sweep flags with _ for -, e.g. input_tokens)"
    return f"{source}: key {key!r}: {e['msg']} (got {e.get('input')!r})"


def read_file(path: str | Path) -> tuple[dict, str]:
    """The mapping in a sweep file, a run's manifest.json (its "config") or a run folder."""
    p = Path(path)
    if p.is_dir():
        p = p / "manifest.json"
    if not p.is_file():
        raise UserError(f"--config {path}: no such file")
    try:
        text = p.read_text()
        doc = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UserError(f"--config {path}: not readable YAML/JSON ({str(e).splitlines()[0]})") from None
    if isinstance(doc, dict) and "run_id" in doc and "spec" in doc:  # a run's manifest
        if not isinstance(doc.get("config"), dict):
            raise UserError(f"--config {path}: this run's manifest has no saved config (run made before sweep files)")
        doc = doc["config"]
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise UserError(f"--config {path}: expected a mapping of sweep flags, got {type(doc).__name__}")
    return doc, str(path)


def validate(doc: dict, sweep: argparse.ArgumentParser, source: str) -> dict:
    """Checked file values converted to what argparse would have stored; one-line UserError if bad."""
    try:
        model = schema(sweep).model_validate(doc)
    except ValidationError as e:
        raise UserError(_one_line(e, source)) from None
    actions = config_actions(sweep)
    return {actions[k].dest: _to_namespace(k, v, actions[k], source)
            for k, v in model.model_dump(exclude_unset=True, by_alias=True).items() if v is not None}


def _text(value: Any, key: str) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _convert(value: Any, action: argparse.Action, key: str, source: str) -> Any:
    if isinstance(value, str) and callable(action.type) and action.type not in (int, float):
        try:
            value = action.type(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as e:
            raise UserError(f"{source}: key {key!r}: {e}") from None
    if action.choices is not None and value not in action.choices:
        raise UserError(f"{source}: key {key!r}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def _to_namespace(key: str, value: Any, action: argparse.Action, source: str) -> Any:
    if isinstance(action, argparse._AppendAction) or action.nargs in ("+", "*"):
        items = value if isinstance(value, list) else [value]
        return [_convert(str(v), action, key, source) for v in items]
    if isinstance(value, bool) or action.type in (int, float):
        return value
    return _convert(_text(value, key), action, key, source)


def given_dests(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """dests of the sweep flags typed on this command line (a copy of the parser with no defaults)."""
    from profiler.cli import build_parser

    bare = build_parser()
    sub = sweep_parser(bare)
    for action in sub._actions:
        action.default = argparse.SUPPRESS
    ns = bare.parse_args(argv)
    return set(vars(ns)) - {"command"}


def apply_config(parser: argparse.ArgumentParser, a: argparse.Namespace, argv: list[str]) -> argparse.Namespace:
    """a with the --config file's values under the flags typed on the command line."""
    if not getattr(a, "config", None):
        return a
    sweep = sweep_parser(parser)
    doc, source = read_file(a.config)
    values = validate(doc, sweep, source)
    given = given_dests(parser, argv)
    _check_exclusive(sweep, values, given, source)
    for dest, value in values.items():
        if dest not in given:
            setattr(a, dest, value)
    return a


def config_namespace(config: dict) -> argparse.Namespace:
    """The sweep flags a saved config (a manifest's "config") stands for, defaults filled in."""
    from profiler.cli import build_parser

    parser = build_parser()
    sweep = sweep_parser(parser)
    a = parser.parse_args(["sweep"])
    for dest, value in validate(config, sweep, "manifest config").items():
        setattr(a, dest, value)
    return a


def _check_exclusive(sweep: argparse.ArgumentParser, values: dict, given: set[str], source: str) -> None:
    """A file may not set both of two exclusive flags; a typed flag drops its rivals from the file."""
    for group in sweep._mutually_exclusive_groups:
        dests = [x.dest for x in group._group_actions]
        typed = [d for d in dests if d in given]
        in_file = [d for d in dests if d in values]
        if typed:
            for d in in_file:
                if d not in given:
                    values.pop(d)
        elif len(in_file) > 1:
            raise UserError(f"{source}: keys {' and '.join(map(repr, in_file))} exclude each other")


def resolved(a: argparse.Namespace) -> dict:
    """Every sweep flag's final value, keyed like a sweep file: saved as the manifest's "config"."""
    from profiler.cli import build_parser

    actions = config_actions(sweep_parser(build_parser()))
    out = {}
    for key, action in actions.items():
        value = getattr(a, action.dest, None)
        if value is None or value == [] or value is argparse.SUPPRESS:
            continue
        out[key] = value
    return out


def dump_yaml(config: dict) -> str:
    """A sweep file's text for a resolved config."""
    return yaml.safe_dump(config, sort_keys=False)
