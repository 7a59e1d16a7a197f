#!/usr/bin/env python3
"""Parquet encodings of the int32 us-gap column alone: bytes per value, write time, and
single-thread decode time of `dt_us` and `tokens`.

Takes the first row groups of a d_flat_us_zstd.parquet written by encodings.py (default: 5 row
groups, about 26M values) and rewrites them with each encoding:

    python3 benchmarks/scale/encodings.py --requests 100000 --tokens 256 --layouts d_flat_us_zstd --pairs d_flat_us_zstd:noop
    python3 benchmarks/scale/column_decode.py /tmp/inferprof-scale/N100000_T256_s1/d_flat_us_zstd.parquet
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

OPTIONS = {
    "dictionary + zstd (default)": dict(compression="zstd"),
    "plain + zstd": dict(compression="zstd", use_dictionary=False),
    "plain + lz4": dict(compression="lz4", use_dictionary=False),
    "BYTE_STREAM_SPLIT + zstd": dict(compression="zstd", use_dictionary=["tokens"],
                                     column_encoding={"dt_us": "BYTE_STREAM_SPLIT"}),
    "DELTA_BINARY_PACKED": dict(compression="none", use_dictionary=["tokens"],
                                column_encoding={"dt_us": "DELTA_BINARY_PACKED"}),
    "DELTA_BINARY_PACKED + zstd": dict(compression="zstd", use_dictionary=["tokens"],
                                       column_encoding={"dt_us": "DELTA_BINARY_PACKED"}),
}


def main() -> None:
    src = pq.ParquetFile(sys.argv[1])
    groups = min(int(sys.argv[2]) if len(sys.argv) > 2 else 5, src.num_row_groups)
    tables = [src.read_row_group(i) for i in range(groups)]
    n = sum(t.num_rows for t in tables)
    print(f"{n:,} values in {groups} row groups\n")
    print("| dt_us encoding | dt_us B/value | tokens B/value | write s | decode dt_us s | decode tokens s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, opts) in enumerate(OPTIONS.items()):
            path = Path(tmp) / f"{k}.parquet"
            t0 = time.perf_counter()
            with pq.ParquetWriter(path, tables[0].schema, **opts) as w:
                for t in tables:
                    w.write_table(t, row_group_size=t.num_rows)
            write_s = time.perf_counter() - t0
            f = pq.ParquetFile(path)
            md = f.metadata
            size = {c: sum(md.row_group(i).column(j).total_compressed_size for i in range(groups))
                    for j, c in enumerate(md.schema.names)}
            dec = {}
            for col in ("dt_us", "tokens"):
                runs = []
                for _ in range(3):
                    t0 = time.perf_counter()
                    for i in range(groups):
                        f.read_row_group(i, columns=[col], use_threads=False)
                    runs.append(time.perf_counter() - t0)
                dec[col] = min(runs)
            print(f"| {name} | {size['dt_us'] / n:.2f} | {size['tokens'] / n:.3f} | {write_s:.2f} "
                  f"| {dec['dt_us']:.2f} | {dec['tokens']:.2f} |")


if __name__ == "__main__":
    main()
