"""Writes the sample files of this folder (run from the repository root:
`python3 workloads/data/samples/make_samples.py`). Small, synthetic, in the exact published
schemas of ../shared/reference/formats.md; a user points --dataset/--trace at the real files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
WORDS = json.loads((HERE.parent / "words.json").read_text())


def text(rng: np.random.Generator, n: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=n)).capitalize() + "."


def sharegpt(rng: np.random.Generator) -> None:
    out = []
    for i in range(48):
        conv = []
        if i % 6 == 0:
            conv.append({"from": "system", "value": "You are a terse assistant."})
        for _turn in range(1 + i % 3):
            conv.append({"from": "human", "value": text(rng, int(rng.lognormal(3.5, 0.6)) + 4)})
            conv.append({"from": "gpt", "value": text(rng, int(rng.lognormal(3.8, 0.7)) + 4)})
        out.append({"id": f"s{i:03d}", "conversations": conv})
    out.append({"id": "one-turn", "conversations": [{"from": "human", "value": "one turn only, no answer"}]})
    (HERE / "sharegpt.json").write_text(json.dumps(out, indent=1) + "\n")


def jsonl(rng: np.random.Generator) -> None:
    lines = []
    for i in range(24):
        if i % 2:
            obj = {"prompt": text(rng, 20 + i * 3), "max_tokens": 16 + i}
        else:
            obj = {"messages": [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": text(rng, 30 + i * 2)}]}
        lines.append(json.dumps(obj))
    (HERE / "prompts.jsonl").write_text("\n".join(lines) + "\n")


def arrivals(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    return np.cumsum(rng.exponential(1 / rate, size=n)) - 0


def azure(rng: np.random.Generator) -> None:
    t = arrivals(rng, 120, 8.0)
    base = datetime(2023, 11, 16, 18, 15, 0)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for s in t:
        ts = base + timedelta(seconds=float(s))
        frac = f"{ts.microsecond:06d}{int(rng.integers(0, 10))}"  # 7 digits, as in the 2023 files
        rows.append(f"{ts:%Y-%m-%d %H:%M:%S}.{frac},{int(rng.integers(16, 400))},{int(rng.integers(4, 64))}")
    (HERE / "azure_conv_2023.csv").write_text("\n".join(rows))  # the 2023 files have no final newline
    base = datetime(2024, 5, 10, 0, 0, 0)
    rows = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for s in sorted(round(float(s), 6) if k % 5 else float(int(s)) for k, s in enumerate(t)):
        ts = base + timedelta(seconds=s)
        frac = f".{ts.microsecond:06d}" if ts.microsecond else ""  # omitted when zero (2024 files)
        rows.append(f"{ts:%Y-%m-%d %H:%M:%S}{frac}+00:00,{int(rng.integers(16, 400))},{int(rng.integers(4, 64))}")
    (HERE / "azure_code_2024.csv").write_text("\n".join(rows) + "\n")


def mooncake(rng: np.random.Generator) -> None:
    t_ms = np.floor(arrivals(rng, 80, 6.0) * 1000).astype(int)
    t_ms -= t_ms[0]
    next_id, lines = 0, []
    prefixes: list[list[int]] = []
    for ts in t_ms:
        n_in = int(rng.integers(300, 1800))
        blocks = -(-n_in // 512)
        if prefixes and rng.random() < 0.6:  # reuse the leading blocks of an earlier request
            src = prefixes[int(rng.integers(0, len(prefixes)))]
            keep = min(len(src), blocks - 1 if blocks > 1 else 1)
            ids = src[:keep]
        else:
            ids = []
        while len(ids) < blocks:
            ids.append(next_id)
            next_id += 1
        prefixes.append(ids)
        lines.append(json.dumps({"timestamp": int(ts), "input_length": n_in,
                                 "output_length": int(rng.integers(8, 64)), "hash_ids": ids}))
    (HERE / "mooncake_trace.jsonl").write_text("\n".join(lines) + "\n")


def burstgpt(rng: np.random.Generator) -> None:
    t = np.round(arrivals(rng, 100, 5.0) + 3, 3)
    rows = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for k, s in enumerate(t):
        n_in, n_out = int(rng.integers(20, 600)), int(rng.integers(5, 80)) if k % 17 else 0
        model = "GPT-4" if k % 3 == 0 else "ChatGPT"
        log = "API log" if k % 4 == 0 else "Conversation log"
        rows.append(f"{s:g},{model},{n_in},{n_out},{n_in + n_out},{log}")
    (HERE / "burstgpt.csv").write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    for i, f in enumerate((sharegpt, jsonl, azure, mooncake, burstgpt)):
        f(np.random.default_rng(1000 + i))
