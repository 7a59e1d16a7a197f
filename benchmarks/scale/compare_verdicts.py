"""`compare` rows (verdict and interval) of five fixture run pairs like tests/test_compare.py's, at
1,000 and 2,000 resamples, from the inferprof tree given (so two versions can be diffed):

    python3 benchmarks/scale/compare_verdicts.py /path/to/old/tree > old.txt
    python3 benchmarks/scale/compare_verdicts.py . > new.txt && diff old.txt new.txt
"""

from __future__ import annotations

import importlib
import sys
import tempfile
from pathlib import Path

CASES = {
    "known_diff": (dict(name="a", seed=1), dict(name="b", seed=2, itl_ms=lambda load: 12.0 + 0.5 * load)),
    "same_n200": (dict(name="a", seed=11, n=200), dict(name="b", seed=12, n=200)),
    "same_n40": (dict(name="a", seed=3), dict(name="b", seed=4)),
    "ttft_diff": (dict(name="a", seed=5, n=100), dict(name="b", seed=6, n=100, ttft_ms=lambda load: 22.0 + 5.0 * load)),
    "big_tokens": (dict(name="a", seed=7, n=300, out_tokens=64),  # over 10,000 gaps: subsampled before
                   dict(name="b", seed=8, n=300, out_tokens=64, itl_ms=lambda load: 8.3 + 0.5 * load)),
}


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    sys.path[:0] = [str(root), str(root / "tests")]
    build_run = importlib.import_module("test_report_fixture").build_run
    compare = importlib.import_module("profiler.report.compare")
    for resamples in (1000, 2000):
        for name, (ka, kb) in CASES.items():
            with tempfile.TemporaryDirectory() as tmp:
                a, b = build_run(Path(tmp), **ka), build_run(Path(tmp), **kb)
                df = compare.compare_runs(compare.load_runs([a, b]), compare.CompareOptions(resamples=resamples))
                for _, r in df.iterrows():
                    print(resamples, name, r["load"], r["metric"], r["verdict"], f"{r['ci_lo']:.4g}",
                          f"{r['ci_hi']:.4g}", r["note"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
