"""Synthetic workloads: token-length distributions, arrival schedules and request sets.

Pure Python + numpy (+ ``tokenizers`` for exact prompt lengths); knows nothing of HTTP.
"""

from workloads.arrivals import arrival_offsets
from workloads.errors import WorkloadError
from workloads.lengths import LengthDist, parse_length
from workloads.prompts import TokenCounter, calibrate_prompt, load_tokenizer, make_prompt
from workloads.requests import RequestSpec, build_requests

__all__ = [
    "LengthDist",
    "RequestSpec",
    "TokenCounter",
    "WorkloadError",
    "arrival_offsets",
    "build_requests",
    "calibrate_prompt",
    "load_tokenizer",
    "make_prompt",
    "parse_length",
]
