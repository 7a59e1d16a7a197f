"""The matrix file: server command template, server settings, sweep settings, comparison SLOs.

    name: seqs
    server:
      command: "vllm serve {model} --host {host} --port {port} --served-model-name {served_name} {args}"
      model: Qwen/Qwen3-0.6B
      env: {VLLM_ATTENTION_BACKEND: FLASHINFER}
      start_timeout: 900        # seconds to /health (first start downloads weights)
      port: 8100                # cell slot k uses port + k
      gpus_per_cell: 1          # CUDA_VISIBLE_DEVICES per cell; 0 = leave it alone
    server_grid: {max_num_seqs: [128, 256], enable_prefix_caching: [true, false]}   # or server_cells: [...]
    sweep: {concurrency: [1, 8, 32], requests: 200, slo: ttft_p99=500ms}          # a sweep file's keys
    sweep_grid: {input_tokens: [512, 2048]}                                     # optional
    slos: {interactive: "ttft_p99=500ms", batch: "e2e_p99=20s"}                 # default: sweep's slo
    parallel: 2                 # server settings run side by side (each with its own GPUs and port)

A server setting becomes flags of `{args}`: `max_num_seqs: 4` -> `--max-num-seqs 4`, `true` -> `--flag`,
`false` -> `--no-flag`, a list -> `--flag a b`, a mapping -> its JSON; `env:` inside a setting adds
environment variables. Every setting is also a template field (`{max_num_seqs}`).
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, ValidationError

from profiler.errors import UserError

VLLM_TEMPLATE = "vllm serve {model} --host {host} --port {port} --served-model-name {served_name} {args}"
Value = StrictBool | StrictInt | StrictFloat | str | list | dict | None


class ServerFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str | list[str] = VLLM_TEMPLATE
    model: str = ""
    served_name: str = ""
    host: str = "127.0.0.1"
    env: dict[str, str | int | float] = Field(default_factory=dict)
    health_path: str = "/health"
    start_timeout: StrictInt | StrictFloat = 900
    stop_timeout: StrictInt | StrictFloat = 30
    port: StrictInt = 8100
    gpus_per_cell: StrictInt = 0
    probe: StrictBool = True


class MatrixFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "matrix"
    out: str = "results"
    server: ServerFile = Field(default_factory=ServerFile)
    server_grid: dict[str, list[Value]] | None = None
    server_cells: list[dict[str, Value]] | None = None
    sweep: dict[str, Any] = Field(default_factory=dict)
    sweep_grid: dict[str, list[Any]] | None = None
    slos: dict[str, str] | None = None
    parallel: StrictInt = 1
    gpus: list[StrictInt] | None = None
    sweep_timeout: StrictInt | StrictFloat = 6 * 3600


@dataclass(frozen=True)
class ServerSetting:
    """One server start: its id, its settings and the sweep cells run against it."""

    id: str
    settings: dict
    sweeps: tuple[tuple[str, dict], ...] = field(default_factory=tuple)  # (cell id, sweep config)


def parse(doc: Any, source: str) -> MatrixFile:
    if not isinstance(doc, dict):
        raise UserError(f"{source}: expected a mapping (name, server, server_grid, sweep, ...)")
    try:
        m = MatrixFile.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(_doc_path(doc, err["loc"]))
        what = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise UserError(f"{source}: key {key!r}: {what}") from None
    if m.server_grid and m.server_cells:
        raise UserError(f"{source}: give server_grid or server_cells, not both")
    if m.parallel < 1:
        raise UserError(f"{source}: key 'parallel' must be at least 1")
    return m


def _doc_path(doc: Any, loc: tuple) -> list[str]:
    """The part of an error location that is in the file (pydantic adds union members: 'int')."""
    out, node = [], doc
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        elif not out or isinstance(node, dict):  # an unknown key: name it
            out.append(str(part))
            break
        else:
            break
        out.append(str(part))
    return out


def grid(axes: dict[str, list] | None) -> list[dict]:
    """Cartesian product of the axes, first axis slowest; [{}] when there are none."""
    if not axes:
        return [{}]
    if any(not v for v in axes.values()):
        raise UserError("a grid axis is an empty list")
    keys = list(axes)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(axes[k] for k in keys))]


def slug(settings: dict) -> str:
    """A folder-safe id for settings, e.g. max_num_seqs=4,enable_prefix_caching=false."""
    parts = [f"{k}={json.dumps(v) if isinstance(v, dict | list) else v}" for k, v in settings.items() if k != "env"]
    if settings.get("env"):
        parts += [f"{k}={v}" for k, v in settings["env"].items()]
    text = ",".join(parts) or "default"
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", text).lower()[:120]


def server_settings(m: MatrixFile) -> list[ServerSetting]:
    """Every server setting with its sweep cells, in run order; ids are unique."""
    servers = m.server_cells if m.server_cells is not None else grid(m.server_grid)
    sweeps = grid(m.sweep_grid)
    out, seen = [], set()
    for i, s in enumerate(servers):
        sid = slug(s)
        if sid in seen:
            sid = f"{sid}-{i}"
        seen.add(sid)
        cells = tuple((f"{sid}" + (f"--{slug(w)}" if w else ""), {**m.sweep, **w}) for w in sweeps)
        out.append(ServerSetting(sid, dict(s), cells))
    return out


def flag_args(settings: dict) -> list[str]:
    """Server settings as command-line flags (see the module docstring)."""
    args: list[str] = []
    for key, value in settings.items():
        if key == "env" or value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            args.append(flag)
        elif value is False:
            args.append("--no-" + key.replace("_", "-"))
        elif isinstance(value, list):
            args += [flag, *map(str, value)]
        elif isinstance(value, dict):
            args += [flag, json.dumps(value)]
        else:
            args += [flag, str(value)]
    return args


def server_command(m: MatrixFile, settings: dict, port: int) -> list[str]:
    """The command template filled for one server setting on one port."""
    fields = {k: v for k, v in settings.items() if isinstance(k, str)}
    model = os.path.expandvars(m.server.model)  # `model: $MODEL` in files shared with a cloud task
    fields.update(model=model, served_name=m.server.served_name or model,
                  host=m.server.host, port=port, args=shlex.join(flag_args(settings)))
    try:
        if isinstance(m.server.command, list):
            argv: list[str] = []
            for part in m.server.command:
                argv += shlex.split(part.format(**fields)) if part == "{args}" else [part.format(**fields)]
            return argv
        quoted = {k: v if k == "args" else shlex.quote(str(v)) for k, v in fields.items()}
        return shlex.split(m.server.command.format(**quoted))  # a value with spaces stays one argument
    except (KeyError, IndexError, ValueError) as e:
        raise UserError(f"server.command: cannot fill the template ({type(e).__name__}: {e})") from None


def server_env(m: MatrixFile, settings: dict) -> dict[str, str]:
    env = {k: str(v) for k, v in m.server.env.items()}
    extra = settings.get("env") or {}
    if not isinstance(extra, dict):
        raise UserError("a server setting's env must be a mapping")
    env.update({k: str(v) for k, v in extra.items()})
    return env
