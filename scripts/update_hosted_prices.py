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

from profiler.cost.hosted import SNAPSHOT_PATH, update_snapshot  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=SNAPSHOT_PATH, help="snapshot path (default: shipped file)")
    args = ap.parse_args(argv)
    try:
        snap = update_snapshot(args.out)
    except (RuntimeError, OSError) as e:
        print(f"hosted prices not updated (old snapshot kept): {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {snap['count']} chat models from litellm {snap['litellm_version']} "
          f"({snap['generated_at']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
