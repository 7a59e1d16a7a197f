"""Hosted-API price sheet: the shipped litellm snapshot, model aliases, and its refresh.

The snapshot (``data/hosted_prices.json``) is built from litellm's
``model_prices_and_context_window_backup.json`` (USD per token) and stores USD per 1M
tokens: ``input``, ``output``, and when litellm has them ``cache_read``,
``batch_input``, ``batch_output``. Only ``mode == "chat"`` entries with nonzero input
AND output prices are kept (zero means promo/free, not a real price).
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from profiler.errors import UserError

DATA_DIR = Path(__file__).resolve().parent / "data"
SNAPSHOT_PATH = DATA_DIR / "hosted_prices.json"
ALIASES_PATH = DATA_DIR / "model_aliases.yaml"
LITELLM_MEMBER = "litellm/model_prices_and_context_window_backup.json"

# litellm field -> our field (all per token in litellm; we store per 1M)
_FIELDS = {
    "input_cost_per_token": "input",
    "output_cost_per_token": "output",
    "cache_read_input_token_cost": "cache_read",
    "input_cost_per_token_batches": "batch_input",
    "output_cost_per_token_batches": "batch_output",
}


@dataclass(frozen=True)
class HostedPrice:
    """One hosted model's list prices in USD per 1M tokens."""

    key: str
    provider: str
    input: float
    output: float
    cache_read: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None

    def blended(self, input_tokens: float, output_tokens: float) -> float:
        """USD per 1M tokens for a given mix: (in*p_in + out*p_out) / (in + out)."""
        total = input_tokens + output_tokens
        if total <= 0:
            return float("nan")
        return (input_tokens * self.input + output_tokens * self.output) / total

    def cost_usd(self, input_tokens: float, output_tokens: float) -> float:
        """USD for the tokens: (in*p_in + out*p_out) / 1e6."""
        return (input_tokens * self.input + output_tokens * self.output) / 1e6


def _per_million(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return round(f * 1e6, 6)


def build_snapshot(raw: dict, litellm_version: str, date: str) -> dict:
    """Reduce litellm's price JSON to our snapshot (pure)."""
    models: dict[str, dict] = {}
    for key, entry in sorted(raw.items()):
        if key == "sample_spec" or not isinstance(entry, dict) or entry.get("mode") != "chat":
            continue
        rec: dict[str, object] = {"provider": str(entry.get("litellm_provider", ""))}
        for src, dst in _FIELDS.items():
            val = _per_million(entry.get(src))
            if val is not None:
                rec[dst] = val
        if not rec.get("input") or not rec.get("output"):
            continue
        models[key] = rec
    return {
        "source": f"litellm {LITELLM_MEMBER} (PyPI wheel)",
        "litellm_version": litellm_version,
        "generated_at": date,
        "units": "USD per 1M tokens",
        "count": len(models),
        "models": models,
    }


def dump_snapshot(snap: dict, path: Path) -> None:
    """Write the snapshot atomically, one model per line (small diffs on refresh)."""
    head = {k: v for k, v in snap.items() if k != "models"}
    lines = ["{"]
    for k, v in head.items():
        lines.append(f"  {json.dumps(k)}: {json.dumps(v)},")
    lines.append('  "models": {')
    items = list(snap["models"].items())
    for i, (k, v) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        lines.append(f"    {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}{comma}")
    lines.append("  }")
    lines.append("}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".hosted_prices.", suffix=".json")
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; the snapshot is shipped data
    os.replace(tmp, path)


def fetch_litellm_prices(workdir: Path, timeout_s: float = 300) -> tuple[dict, str]:
    """Download the newest litellm wheel (no deps) with pip and read its price JSON.

    Returns (raw price dict, litellm version). Raises RuntimeError with a one-line
    reason when pip cannot reach the index or the wheel lacks the file.
    """
    cmd = [sys.executable, "-m", "pip", "download", "litellm", "--no-deps", "--only-binary=:all:",
           "-d", str(workdir), "--quiet", "--disable-pip-version-check"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise UserError(f"pip download litellm timed out after {timeout_s:.0f}s") from e
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise UserError(f"pip download litellm failed: {last}")
    wheels = sorted(Path(workdir).glob("litellm-*.whl"))
    if not wheels:
        raise UserError("pip download litellm produced no wheel")
    wheel = wheels[-1]
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as zf:
        try:
            raw = json.loads(zf.read(LITELLM_MEMBER))
        except KeyError as e:
            raise UserError(f"{wheel.name} has no {LITELLM_MEMBER}") from e
    return raw, version


def update_snapshot(out: Path = SNAPSHOT_PATH, date: str | None = None) -> dict:
    """Refresh the snapshot from PyPI; the old file is kept on any failure."""
    with tempfile.TemporaryDirectory(prefix="inferprof-litellm-") as tmp:
        raw, version = fetch_litellm_prices(Path(tmp))
    snap = build_snapshot(raw, version, date or _dt.date.today().isoformat())
    if not snap["models"]:
        raise UserError("litellm price file had no priced chat models; snapshot not replaced")
    dump_snapshot(snap, Path(out))
    return snap


@lru_cache(maxsize=4)
def _load_snapshot_cached(path: str, mtime: float) -> dict:
    with open(path) as fh:
        return json.load(fh)


def load_snapshot(path: Path | str = SNAPSHOT_PATH) -> dict:
    """The snapshot as a dict (see build_snapshot)."""
    p = Path(path)
    return _load_snapshot_cached(str(p), p.stat().st_mtime)


def hosted_prices(path: Path | str = SNAPSHOT_PATH) -> dict[str, HostedPrice]:
    """All hosted prices keyed by litellm key."""
    snap = load_snapshot(path)
    out = {}
    for key, rec in snap["models"].items():
        out[key] = HostedPrice(key=key, provider=rec.get("provider", ""), input=rec["input"],
                               output=rec["output"], cache_read=rec.get("cache_read"),
                               batch_input=rec.get("batch_input"), batch_output=rec.get("batch_output"))
    return out


def load_aliases(path: Path | str = ALIASES_PATH) -> dict[str, dict]:
    """Alias groups: name -> {"hf_ids": [...], "hosted": [...]}."""
    with open(path) as fh:
        doc = yaml.safe_load(fh) or {}
    return doc.get("models", {})


def alias_group(model: str, aliases: dict[str, dict] | None = None) -> str | None:
    """The alias-group name of an HF id or group name (case-insensitive), or None."""
    aliases = load_aliases() if aliases is None else aliases
    m = model.strip().lower()
    for name, grp in aliases.items():
        if m == name.lower() or m in (h.lower() for h in grp.get("hf_ids", [])):
            return name
    return None


def find_hosted(model: str, prices: dict[str, HostedPrice] | None = None,
                aliases: dict[str, dict] | None = None) -> list[HostedPrice]:
    """Hosted prices for a model name, cheapest blended-1:1 first.

    Resolution: exact litellm key; else alias group (HF id or group name); else keys
    ending in "/<name>" (case-insensitive). Raises ValueError (one line, with close
    matches) when nothing matches.
    """
    prices = hosted_prices() if prices is None else prices
    aliases = load_aliases() if aliases is None else aliases
    if model in prices:
        return [prices[model]]
    grp = alias_group(model, aliases)
    if grp is not None:
        found = [prices[k] for k in aliases[grp].get("hosted", []) if k in prices]
        if found:
            return sorted(found, key=lambda h: (h.input + h.output, h.key))
    low = model.strip().lower()
    found = [p for k, p in prices.items() if k.lower() == low or k.lower().endswith("/" + low)]
    if found:
        return sorted(found, key=lambda h: (h.input + h.output, h.key))
    close = difflib.get_close_matches(model, list(prices) + list(aliases), n=5, cutoff=0.5)
    hint = f"; close matches: {', '.join(close)}" if close else f"; alias groups: {', '.join(aliases)}"
    raise UserError(f"no hosted price for model {model!r}{hint}")
