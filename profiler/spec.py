"""What a sweep is asked to do, parsed from flags. Parsing errors are UserError with one line."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

from profiler.errors import UserError

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[-+]?\d+)?)\s*(ns|us|µs|ms|s|m|min|h)?\s*$", re.IGNORECASE)
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, default_unit: str = "s") -> float:
    """'500ms' -> 0.5; '2s' -> 2.0; '1.5' -> 1.5 (default unit)."""
    m = _DURATION.match(text)
    if not m:
        raise UserError(f"invalid duration {text!r}: use e.g. 500ms, 2s, 1.5m")
    return float(m.group(1)) * _UNITS[(m.group(2) or default_unit).lower()]


def parse_number_list(text: str, what: str, integer: bool) -> list[float] | list[int]:
    """'1,2,4' -> [1, 2, 4]; positive numbers only."""
    values: list = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            v = int(part) if integer else float(part)
        except ValueError:
            kind = "whole numbers" if integer else "numbers"
            raise UserError(f"invalid {what} {text!r}: use comma-separated {kind}, e.g. 1,2,4") from None
        if v <= 0:
            raise UserError(f"invalid {what} {text!r}: values must be positive")
        values.append(v)
    if not values:
        raise UserError(f"invalid {what} {text!r}: no values")
    return values


@dataclass
class SweepSpec:
    """One sweep: which loads, how many requests each, and what the requests look like."""

    mode: str  # "concurrency" | "rate"
    loads: list  # concurrencies or request rates (req/s)
    requests: int | None = None  # per point; None = auto (see requests_for), or with a duration
    duration_s: float | None = None  # per point; None with a request count
    input_tokens: str = "128"  # a workloads.lengths spec
    output_tokens: str = "128"
    arrival: str = "poisson"  # open loop arrivals
    max_concurrency: int | None = None  # open loop: cap on requests in flight
    warmup_frac: float | None = 0.1  # None: found per point from the data (MSER-5 on TTFT)
    seed: int = 0
    workers: int = 0  # 0 = sized to the machine
    request_timeout_s: float = 600.0
    slos: dict[str, float] = field(default_factory=dict)
    transport: str = "epoll"  # load generator: "epoll" or "threads" (see backends/http_mux.py)
    # Timeouts by phase and the error policy (profiler/stopping.py); 0 s = no limit of that kind.
    connect_timeout_s: float = 10.0
    ttft_timeout_s: float = 60.0
    idle_timeout_s: float = 60.0
    max_error_rate: float | None = None  # stop a point once more than this share of a window failed
    error_window: int = 100  # finished requests per worker the error rate is judged over
    server_down_wait_s: float = 120.0  # how long a sweep waits for a server that stopped answering
    quality: dict | None = None  # eval set, scorers, judge (profiler/quality/cli.py quality_cfg)
    # production-like traffic (profiler/traffic.py)
    dataset: str = ""  # prompt file FILE[:format]
    dataset_output_tokens: str = ""  # overrides the recorded answer lengths (a workloads.lengths spec)
    dataset_filter: tuple = (4, 1024, 2048)  # min tokens, max prompt, max prompt + answer
    max_prompts: int = 0  # 0 = every prompt that passes the filter
    trace: str = ""  # trace file FILE[:format]; points are trace_speeds
    trace_speeds: list = field(default_factory=list)
    trace_window: str = ""  # "START,END" seconds of trace time
    prefix_groups: int = 0
    prefix_tokens: int = 0
    turns: int = 1  # > 1: multi-turn sessions (profiler/sessions.py)
    think_time: str = "0"  # a workloads.sessions.parse_think spec
    repeat: int = 1  # --repeat N: `loads` holds N rounds of the grid (profiler/repeats.py)
    ray: str = ""  # --ray ADDRESS: the workers are Ray actors (profiler/raypool.py); "" = local processes
    ray_nodes: str = ""  # --ray-nodes LABEL,...: custom resources the actors' bundles ask for, in turn
    on_node_loss: str = "continue"  # a Ray node lost mid-point: "continue" on the rest, or "stop"

    def requests_for(self, load: float) -> int:
        """Requests in a point: --requests, else enough for ~8 rounds of the load (at least 32)."""
        if self.requests:
            return self.requests
        if self.mode == "concurrency":
            return max(32, 8 * int(load))
        return max(32, int(math.ceil(20 * load)))  # about 20 s of arrivals

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """A spec as `to_dict` wrote it in a manifest; fields it lacks (older runs) take their
        defaults, fields this version does not know are an error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown or "mode" not in d or "loads" not in d:
            raise UserError(f"the manifest's spec cannot be read by this version (fields {unknown or ['mode/loads']})")
        return cls(**d)
