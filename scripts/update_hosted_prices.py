#!/usr/bin/env python3
"""Refresh profiler/cost/data/hosted_prices.json from the newest litellm wheel on PyPI.

Does what `inferprof prices --update` does: `pip download litellm --no-deps`, read
litellm/model_prices_and_context_window_backup.json from the wheel, keep priced chat
models (USD per 1M tokens), record the litellm version and date. Exit 1 on failure,
keeping the old snapshot.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profiler.cost.cli import refresh_hosted_prices  # noqa: E402
from profiler.cost.hosted import SNAPSHOT_PATH  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=SNAPSHOT_PATH, help="snapshot path (default: shipped file)")
    args = ap.parse_args(argv)
    return refresh_hosted_prices(
        args.out, failed="hosted prices not updated (old snapshot kept): {error}",
        done="wrote {out}: {count} chat models from litellm {litellm_version} ({generated_at})")


if __name__ == "__main__":
    sys.exit(main())
