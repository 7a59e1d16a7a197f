#!/usr/bin/env python3
"""Chunk-record encodings and summary engines at scale (issue "Run records at scale").

Builds synthetic chunk arrival times for N requests x T content chunks of one closed-loop point
(concurrency 256, TTFT ~ lognormal with a 50 ms median, chunk gaps ~ gamma with a 10 ms mean, 3 %
back-to-back bursts of 5-60 us, and 2-5 s stalls with probability 2e-4 per gap so that int32-ns gaps
overflow), writes it in several layouts, and for each (layout, engine) pair measures, in a fresh
subprocess, the time and peak RSS (VmHWM; see child()) to compute what a point summary needs from
the chunks:

- ITL: the gaps between consecutive content chunks of every successful request, their mean and
  p50/p90/p95/p99/p99.9 (numpy "linear" percentiles, as profiler.metrics.stats);
- output tokens whose chunk arrived inside the steady window (profiler.metrics.steady_window with a
  10 % warm-up, profiler.metrics.tokens_in_window).

    python3 benchmarks/scale/encodings.py --requests 100000 --tokens 256
    python3 benchmarks/scale/encodings.py --requests 1000000 --tokens 256 \\
        --layouts c_list_us_zstd,d_flat_us_zstd --engines numpy,count --repeat 3

Layouts (every one but (a) stores n values per request of n content chunks; the first is the time
from send to the first content chunk, so chunk times rebuild from requests.parquet's send_ns;
requests.parquet holds n_content_chunks, so the flat layouts are CSR: row i of request r sits at
cumsum(n)[r-1] + i):

  a_long_zstd         today's chunks.parquet: point, request, t_ns, tokens int64, content; zstd
  a_long_delta        same, request and t_ns DELTA_BINARY_PACKED (+ zstd)
  b_list_ns_zstd      one row per request: off_ns list<int64> (ns since send), tokens list<int16>
  b_list_ns_dbp_zstd  same, off_ns (monotonic in a request) DELTA_BINARY_PACKED + zstd
  c_list_us_*         one row per request: dt_us list<int32> (us gaps), tokens list<int16>
                      (zstd; lz4; BYTE_STREAM_SPLIT + zstd)
  d_flat_ns_*         flat dt_ns int64 + tokens int16 (zstd; DELTA_BINARY_PACKED; DBP + zstd;
                      BYTE_STREAM_SPLIT + zstd)
  d_flat_us_*         flat dt_us int32 + tokens int16 (zstd; lz4; BYTE_STREAM_SPLIT + zstd; DBP)
  e_flat_u32esc_zstd  flat dt_ns uint32, 0xFFFFFFFF escapes to a side file of (row, int64 gap)
  e_ipc_us_*          flat dt_us int32 + tokens int16 as an Arrow IPC (Feather v2) file: lz4/zstd/none

The us layouts quantise the time since send, (t - send + 500) // 1000, and store the differences
of those, so a rebuilt chunk time is within 0.5 us of the recorded one (no drift along a request)
and a gap within 1 us.

Engines: numpy (stream row groups, gaps into one preallocated array, np.percentile with
overwrite_input, i.e. an in-place partition), count (us layouts: stream row groups, exact
percentiles from a bincount histogram of the integer-us gaps, window tokens from the requests whose
chunks straddle a window edge only), count_rs (the same, with each request's token sum read from
requests.parquet's chunk_tokens instead of the tokens column), arrow (pyarrow.compute on the whole table), duckdb, polars,
today (profiler's own pandas code path on layout a).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
CONCURRENCY = 256
WARMUP = 0.1
QS = (50.0, 90.0, 95.0, 99.0, 99.9)
STATS = ("mean", "p50", "p90", "p95", "p99", "p999")
BASE_NS = 1_234_567_890_123_456  # a perf_counter_ns-like origin
ESC = np.uint32(0xFFFFFFFF)
HIST_MAX_US = 1 << 23  # count engine: gaps below 8.4 s go to a dense histogram, longer ones to a list

# name -> (kind, format, parquet/ipc options)
LAYOUTS: dict[str, tuple[str, str, dict]] = {
    "a_long_zstd": ("long", "parquet", {"compression": "zstd"}),
    "a_long_delta": ("long", "parquet", {"compression": "zstd", "use_dictionary": ["point", "tokens", "content"],
                                         "column_encoding": {"request": "DELTA_BINARY_PACKED",
                                                             "t_ns": "DELTA_BINARY_PACKED"}}),
    "b_list_ns_zstd": ("list_off_ns", "parquet", {"compression": "zstd"}),
    # nested columns are named by their leaf path here (pyarrow ignores "off_ns" silently)
    "b_list_ns_dbp_zstd": ("list_off_ns", "parquet", {
        "compression": "zstd", "use_dictionary": ["point", "tokens.list.element"],
        "column_encoding": {"request": "DELTA_BINARY_PACKED", "off_ns.list.element": "DELTA_BINARY_PACKED"}}),
    "c_list_us_zstd": ("list_dt_us", "parquet", {"compression": "zstd"}),
    "c_list_us_bss_zstd": ("list_dt_us", "parquet", {
        "compression": "zstd", "use_dictionary": ["point", "tokens.list.element"],
        "column_encoding": {"request": "DELTA_BINARY_PACKED", "dt_us.list.element": "BYTE_STREAM_SPLIT"}}),
    "c_list_us_lz4": ("list_dt_us", "parquet", {"compression": "lz4"}),
    "d_flat_ns_zstd": ("flat_ns", "parquet", {"compression": "zstd"}),
    "d_flat_ns_dbp": ("flat_ns", "parquet", {"compression": "none", "use_dictionary": ["tokens"],
                                             "column_encoding": {"dt_ns": "DELTA_BINARY_PACKED"}}),
    "d_flat_ns_dbp_zstd": ("flat_ns", "parquet", {"compression": "zstd", "use_dictionary": ["tokens"],
                                                  "column_encoding": {"dt_ns": "DELTA_BINARY_PACKED"}}),
    "d_flat_ns_bss_zstd": ("flat_ns", "parquet", {"compression": "zstd", "use_dictionary": ["tokens"],
                                                  "column_encoding": {"dt_ns": "BYTE_STREAM_SPLIT"}}),
    "d_flat_us_zstd": ("flat_us", "parquet", {"compression": "zstd"}),
    "d_flat_us_lz4": ("flat_us", "parquet", {"compression": "lz4"}),
    "d_flat_us_bss_zstd": ("flat_us", "parquet", {"compression": "zstd", "use_dictionary": ["tokens"],
                                                  "column_encoding": {"dt_us": "BYTE_STREAM_SPLIT"}}),
    "d_flat_us_dbp": ("flat_us", "parquet", {"compression": "none", "use_dictionary": ["tokens"],
                                             "column_encoding": {"dt_us": "DELTA_BINARY_PACKED"}}),
    "e_flat_u32esc_zstd": ("flat_u32esc", "parquet", {"compression": "zstd"}),
    "e_ipc_us_lz4": ("flat_us", "ipc", {"compression": "lz4"}),
    "e_ipc_us_zstd": ("flat_us", "ipc", {"compression": "zstd"}),
    "e_ipc_us_none": ("flat_us", "ipc", {"compression": None}),
}

# engines run per layout in the default (full) matrix
MATRIX: dict[str, list[str]] = {
    "a_long_zstd": ["numpy", "arrow", "duckdb", "polars", "today"],
    "a_long_delta": ["numpy"],
    "b_list_ns_zstd": ["numpy", "arrow", "duckdb", "polars"],
    "b_list_ns_dbp_zstd": ["numpy"],
    "c_list_us_zstd": ["numpy", "count", "count_rs", "arrow", "duckdb", "polars"],
    "c_list_us_bss_zstd": ["count", "count_rs"],
    "c_list_us_lz4": ["count", "count_rs"],
    "d_flat_ns_zstd": ["numpy"],
    "d_flat_ns_dbp": ["numpy"],
    "d_flat_ns_dbp_zstd": ["numpy"],
    "d_flat_ns_bss_zstd": ["numpy"],
    "d_flat_us_zstd": ["numpy", "count", "count_rs", "arrow", "polars"],
    "d_flat_us_lz4": ["count", "count_rs"],
    "d_flat_us_bss_zstd": ["count", "count_rs"],
    "d_flat_us_dbp": ["count", "count_rs"],
    "e_flat_u32esc_zstd": ["numpy"],
    "e_ipc_us_lz4": ["count", "count_rs"],
    "e_ipc_us_zstd": ["count", "count_rs"],
    "e_ipc_us_none": ["count", "count_rs"],
}


# ----------------------------------------------------------------------------------------------
# synthetic data


def generate(n_req: int, n_tok: int, batch: int, seed: int):
    """Yield batches of whole requests (ids in order) of one closed-loop point."""
    rng = np.random.default_rng(seed)
    slot_free = BASE_NS + rng.integers(0, 50_000_000, CONCURRENCY)  # staggered start over 50 ms
    rounds_per_batch = max(1, batch // CONCURRENCY)
    rid0 = 0
    while rid0 < n_req:
        rounds = rounds_per_batch
        m = rounds * CONCURRENCY
        # per request
        fail = rng.random(m) < 0.002
        n = np.full(m, n_tok, np.int64)
        n[fail] = rng.integers(1, max(2, n_tok), int(fail.sum()))
        ttft = rng.lognormal(math.log(50e6), 0.4, m).astype(np.int64)
        # per gap
        n_gaps = int((n - 1).sum())
        gaps = rng.gamma(4.0, 2.5e6, n_gaps)
        u = rng.random(n_gaps)
        burst = u < 0.03
        gaps[burst] = rng.uniform(5e3, 60e3, int(burst.sum()))
        stall = u > 1 - 2e-4
        gaps[stall] = rng.uniform(2e9, 5e9, int(stall.sum()))
        gaps = gaps.astype(np.int64)
        starts = np.cumsum(n) - n
        dt = np.empty(int(n.sum()), np.int64)  # [ttft, gap, gap, ...] per request
        first_mask = np.zeros(dt.size, bool)
        first_mask[starts] = True
        dt[first_mask] = ttft
        dt[~first_mask] = gaps
        cs = np.cumsum(dt)
        span = cs[starts + n - 1] - (cs[starts] - dt[starts])  # send -> last chunk
        tail = rng.integers(100_000, 400_000, m)  # last chunk -> response end
        think = rng.integers(100_000, 1_000_000, m)  # client overhead before the next request
        # closed loop: each slot sends its next request when the previous one ended
        step = (span + tail + think).reshape(rounds, CONCURRENCY)
        send2d = slot_free + np.vstack([np.zeros((1, CONCURRENCY), np.int64), np.cumsum(step, axis=0)[:-1]])
        slot_free = send2d[-1] + step[-1]
        send = send2d.reshape(-1)
        keep = min(m, n_req - rid0)
        if keep < m:  # last, partial batch
            rows = int(n[:keep].sum())
            n, ttft, send, tail, fail, starts = n[:keep], ttft[:keep], send[:keep], tail[:keep], fail[:keep], starts[:keep]
            dt, cs = dt[:rows], cs[:rows]
        off_ns = cs - np.repeat(cs[starts] - dt[starts], n)  # time since send
        t_ns = np.repeat(send, n) + off_ns
        tokens = np.ones(dt.size, np.int16)
        tokens[rng.random(dt.size) < 0.03] = 2
        usage = np.add.reduceat(tokens.astype(np.int64), starts)
        first = send + ttft
        last = t_ns[starts + n - 1]
        yield {
            "request": np.arange(rid0, rid0 + keep, dtype=np.int64), "n": n, "send_ns": send,
            "first_content_ns": first, "last_content_ns": last, "end_ns": last + tail,
            "usage": usage, "error": np.where(fail, "stream cut", ""),
            "dt_ns": dt, "off_ns": off_ns, "t_ns": t_ns, "tokens": tokens,
        }
        rid0 += keep


def quantise_us(off_ns: np.ndarray, n: np.ndarray) -> np.ndarray:
    """us gaps (int32) from ns offsets since send: differences of the rounded offsets."""
    off_us = (off_ns + 500) // 1000
    dt = np.empty_like(off_us)
    dt[0] = off_us[0]
    np.subtract(off_us[1:], off_us[:-1], out=dt[1:])
    starts = np.cumsum(n) - n
    dt[starts] = off_us[starts]
    return dt.astype(np.int32)


def list_array(offsets_n: np.ndarray, values: np.ndarray, typ) -> pa.Array:
    offs = np.zeros(len(offsets_n) + 1, np.int32)
    np.cumsum(offsets_n, out=offs[1:])
    return pa.ListArray.from_arrays(pa.array(offs), pa.array(values, typ))


def batch_table(kind: str, b: dict) -> tuple[pa.Table, pa.Table | None]:
    """The rows (and escape rows, for flat_u32esc) one batch adds to a layout."""
    n, rows = b["n"], len(b["tokens"])
    if kind == "long":
        return pa.table({
            "point": pa.array(np.zeros(rows, np.int64)), "request": pa.array(np.repeat(b["request"], n)),
            "t_ns": pa.array(b["t_ns"]), "tokens": pa.array(b["tokens"].astype(np.int64)),
            "content": pa.array(np.ones(rows, bool))}), None
    if kind == "list_off_ns":
        return pa.table({"point": pa.array(np.zeros(len(n), np.int64)), "request": pa.array(b["request"]),
                         "off_ns": list_array(n, b["off_ns"], pa.int64()),
                         "tokens": list_array(n, b["tokens"], pa.int16())}), None
    if kind == "list_dt_us":
        return pa.table({"point": pa.array(np.zeros(len(n), np.int64)), "request": pa.array(b["request"]),
                         "dt_us": list_array(n, quantise_us(b["off_ns"], n), pa.int32()),
                         "tokens": list_array(n, b["tokens"], pa.int16())}), None
    if kind == "flat_ns":
        return pa.table({"dt_ns": pa.array(b["dt_ns"]), "tokens": pa.array(b["tokens"])}), None
    if kind == "flat_us":
        return pa.table({"dt_us": pa.array(quantise_us(b["off_ns"], n)), "tokens": pa.array(b["tokens"])}), None
    if kind == "flat_u32esc":
        dt = b["dt_ns"]
        big = dt >= int(ESC)
        u32 = np.where(big, int(ESC), dt).astype(np.uint32)
        rows_at = b["_row0"] + np.flatnonzero(big)
        return (pa.table({"dt_ns": pa.array(u32), "tokens": pa.array(b["tokens"])}),
                pa.table({"row": pa.array(rows_at.astype(np.int64)), "dt_ns": pa.array(dt[big])}))
    raise ValueError(kind)


class Writer:
    def __init__(self, name: str, folder: Path):
        self.name = name
        self.kind, self.fmt, self.opts = LAYOUTS[name]
        self.path = folder / (name + (".parquet" if self.fmt == "parquet" else ".arrow"))
        self.esc_path = folder / (name + ".escapes.parquet")
        self.w = self.esc = None
        self.esc_rows: list[pa.Table] = []
        self.seconds = 0.0

    def add(self, b: dict) -> None:
        t0 = time.perf_counter()
        table, esc = batch_table(self.kind, b)
        if self.w is None:
            if self.fmt == "parquet":
                self.w = pq.ParquetWriter(self.path, table.schema, **self.opts)
            else:
                import pyarrow.ipc as ipc

                self.w = ipc.new_file(str(self.path), table.schema,
                                      options=ipc.IpcWriteOptions(compression=self.opts["compression"]))
        if self.fmt == "parquet":
            self.w.write_table(table, row_group_size=table.num_rows)
        else:
            self.w.write_table(table, max_chunksize=table.num_rows)
        if esc is not None:
            self.esc_rows.append(esc)
        self.seconds += time.perf_counter() - t0

    def close(self) -> dict:
        t0 = time.perf_counter()
        self.w.close()
        if self.kind == "flat_u32esc":
            pq.write_table(pa.concat_tables(self.esc_rows), self.esc_path, compression="zstd")
        self.seconds += time.perf_counter() - t0
        size = self.path.stat().st_size + (self.esc_path.stat().st_size if self.esc_path.exists() else 0)
        return {"layout": self.name, "bytes": size, "write_s": self.seconds}


def write_all(folder: Path, layouts: list[str], n_req: int, n_tok: int, batch: int, seed: int) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    writers = [Writer(name, folder) for name in layouts]
    req_w = None
    row0 = 0
    gen_s = 0.0
    t_gen = time.perf_counter()
    for b in generate(n_req, n_tok, batch, seed):
        gen_s += time.perf_counter() - t_gen
        b["_row0"] = row0
        row0 += len(b["tokens"])
        rt = pa.table({"request": b["request"], "point": np.zeros(len(b["n"]), np.int64), "send_ns": b["send_ns"],
                       "first_content_ns": b["first_content_ns"], "last_content_ns": b["last_content_ns"],
                       "end_ns": b["end_ns"], "n_content_chunks": b["n"], "usage_completion_tokens": b["usage"],
                       "chunk_tokens": b["usage"],
                       "error": pa.array(b["error"].tolist(), pa.string())})
        if req_w is None:
            req_w = pq.ParquetWriter(folder / "requests.parquet", rt.schema, compression="zstd")
        req_w.write_table(rt)
        for w in writers:
            w.add(b)
        del b
        t_gen = time.perf_counter()
    req_w.close()
    info = {"requests": n_req, "tokens": n_tok, "chunks": row0, "seed": seed, "generate_s": gen_s,
            "requests_bytes": (folder / "requests.parquet").stat().st_size,
            "layouts": {w.name: w.close() for w in writers}}
    return info


# ----------------------------------------------------------------------------------------------
# reading: common request-level facts


def load_requests(folder: Path) -> dict:
    t = pq.read_table(folder / "requests.parquet",
                      columns=["request", "send_ns", "first_content_ns", "last_content_ns", "end_ns",
                               "n_content_chunks", "usage_completion_tokens", "chunk_tokens", "error"])
    send = t["send_ns"].to_numpy()
    end = t["end_ns"].to_numpy()
    import pyarrow.compute as pc

    ok = pc.equal(t["error"], "").to_numpy(zero_copy_only=False)
    s_sorted = np.sort(send)
    k = min(send.size - 1, math.ceil(WARMUP * send.size))
    start, stop = int(s_sorted[k]), int(s_sorted[-1])
    if stop <= start:
        start, stop = int(s_sorted[0]), int(end.max())
    n = t["n_content_chunks"].to_numpy()
    return {"request": t["request"].to_numpy(), "send": send, "first": t["first_content_ns"].to_numpy(),
            "last": t["last_content_ns"].to_numpy(), "n": n, "ok": ok, "start": start, "stop": stop,
            "usage": t["usage_completion_tokens"].to_numpy(), "chunk_tokens": t["chunk_tokens"].to_numpy(),
            "n_gaps": int(np.maximum(n[ok] - 1, 0).sum())}


def finish(values: np.ndarray | None, unit_ns: int, tokens: float, hist=None) -> dict:
    """mean + numpy-linear percentiles (ms) of integer gaps in `unit_ns`, from an array or a histogram."""
    out = {"tokens_in_window": float(tokens)}
    if (hist[3] if hist is not None else values.size) == 0:
        return {**out, "n_gaps": 0, **{k: math.nan for k in STATS}}
    if hist is not None:
        dense, over, total, n = hist
        out["n_gaps"] = int(n)
        out["mean"] = total / n * unit_ns / 1e6
        cum = np.cumsum(dense)

        def at(k: int) -> float:
            if k < cum[-1]:
                return float(np.searchsorted(cum, k, side="right"))
            return float(over[k - cum[-1]])

        for name, q in zip(STATS[1:], QS, strict=True):
            h = (n - 1) * q / 100.0
            lo = math.floor(h)
            v_lo, v_hi = at(lo), at(min(lo + 1, n - 1))
            out[name] = (v_lo + (h - lo) * (v_hi - v_lo)) * unit_ns / 1e6
        return out
    out["n_gaps"] = int(values.size)
    out["mean"] = float(values.sum(dtype=np.int64)) / values.size * unit_ns / 1e6
    for name, v in zip(STATS[1:], np.percentile(values, QS, overwrite_input=True), strict=True):
        out[name] = float(v) * unit_ns / 1e6
    return out


def path_of(folder: Path, layout: str) -> Path:
    return folder / (layout + (".parquet" if LAYOUTS[layout][1] == "parquet" else ".arrow"))


def iter_groups(folder: Path, layout: str, columns: list[str]):
    """A table per row group / record batch of a layout's file; the next one is decoded in a
    thread (pyarrow releases the GIL) while the caller works on the current one."""
    from concurrent.futures import ThreadPoolExecutor

    path = path_of(folder, layout)
    if LAYOUTS[layout][1] == "ipc":
        import pyarrow.ipc as ipc

        src = pa.memory_map(str(path))
        reader = ipc.open_file(src)
        count = reader.num_record_batches

        def read(i):
            return pa.Table.from_batches([reader.get_batch(i).select(columns)])
    else:
        f = pq.ParquetFile(path)
        count = f.num_row_groups

        def read(i):
            return f.read_row_group(i, columns=columns)
    with ThreadPoolExecutor(1) as ex:
        fut = ex.submit(read, 0) if count else None
        for i in range(count):
            g = fut.result()
            if i + 1 < count:
                fut = ex.submit(read, i + 1)
            yield g


def flat_values(col) -> np.ndarray:
    """Values of a (chunked) list or flat column as one numpy array."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        col = col.flatten()
    return col.to_numpy(zero_copy_only=False)


# ----------------------------------------------------------------------------------------------
# engines


def run_numpy(folder: Path, layout: str, req: dict) -> dict:
    """Streamed row groups; every kept gap into one preallocated array, then an in-place partition."""
    kind = LAYOUTS[layout][0]
    ok, n, send = req["ok"], req["n"], req["send"]
    start, stop = req["start"], req["stop"]
    tokens_sum = 0
    if kind == "long":
        # today's table: rows sorted by (request, t_ns); ids are dense, so id -> index is a lookup
        rid = req["request"]
        lo = int(rid.min())
        index = np.full(int(rid.max()) - lo + 1, -1, np.int64)
        index[rid - lo] = np.arange(rid.size)
        out = np.empty(req["n_gaps"], np.int64)
        pos = 0
        prev_r, prev_t = -1, 0
        for g in iter_groups(folder, layout, ["request", "t_ns", "tokens", "content"]):
            c = g["content"].to_numpy(zero_copy_only=False)
            r, t, tok = (g[k].to_numpy() for k in ("request", "t_ns", "tokens"))
            if not c.all():
                r, t, tok = r[c], t[c], tok[c]
            rr = np.concatenate(([prev_r], r))
            tt = np.concatenate(([prev_t], t))
            ok_rows = ok[index[r - lo]]
            keep = (rr[1:] == rr[:-1]) & ok_rows
            gaps = (tt[1:] - tt[:-1])[keep]
            out[pos:pos + gaps.size] = gaps
            pos += gaps.size
            tokens_sum += int(tok[(t >= start) & (t <= stop) & ok_rows].sum())
            prev_r, prev_t = int(r[-1]), int(t[-1])
        assert pos == out.size, (pos, out.size)
        return finish(out, 1, tokens_sum)

    col = {"list_off_ns": "off_ns", "list_dt_us": "dt_us", "flat_ns": "dt_ns", "flat_us": "dt_us",
           "flat_u32esc": "dt_ns"}[kind]
    unit = 1000 if kind in ("list_dt_us", "flat_us") else 1
    escapes = None
    if kind == "flat_u32esc":
        e = pq.read_table(folder / (layout + ".escapes.parquet"))
        escapes = (e["row"].to_numpy(), e["dt_ns"].to_numpy())
    out = np.empty(req["n_gaps"], np.int64 if unit == 1 else np.int32)
    pos = 0
    r0 = row0 = 0
    for g in iter_groups(folder, layout, [col, "tokens"]):
        v = flat_values(g[col])
        tok = flat_values(g["tokens"])
        rows = v.size
        r1, c, starts = whole_requests(n, r0, rows)
        if escapes is not None:
            sel = (escapes[0] >= row0) & (escapes[0] < row0 + rows)
            v = v.astype(np.int64)
            v[escapes[0][sel] - row0] = escapes[1][sel]
        if kind == "list_off_ns":  # offsets since send -> gaps
            dt = np.empty_like(v)
            dt[0] = v[0]
            np.subtract(v[1:], v[:-1], out=dt[1:])
            dt[starts] = v[starts]
        else:
            dt = v
        ok_rows = np.repeat(ok[r0:r1], c)
        keep = ok_rows.copy()
        keep[starts[c > 0]] = False
        gaps = dt[keep]
        out[pos:pos + gaps.size] = gaps
        pos += gaps.size
        if kind == "list_off_ns":
            t = np.repeat(send[r0:r1], c) + v
        else:
            cs = np.cumsum(dt, dtype=np.int64)
            cs -= np.repeat(cs[starts] - dt[starts], c)
            if unit != 1:
                cs *= unit
            t = cs
            t += np.repeat(send[r0:r1], c)
        tokens_sum += int(tok[(t >= start) & (t <= stop) & ok_rows].sum(dtype=np.int64))
        r0, row0 = r1, row0 + rows
    assert pos == out.size, (pos, out.size)
    return finish(out, unit, tokens_sum)


def whole_requests(n: np.ndarray, r0: int, rows: int) -> tuple[int, np.ndarray, np.ndarray]:
    """The requests r0..r1 whose rows fill a row group of `rows` (row groups hold whole
    requests): (r1, their chunk counts, their first rows in the group)."""
    c_all = np.cumsum(n[r0:r0 + 1 + rows], dtype=np.int64)
    nreq = int(np.searchsorted(c_all, rows, side="right"))
    assert nreq and c_all[nreq - 1] == rows, "row groups must hold whole requests"
    c = n[r0:r0 + nreq]
    return r0 + nreq, c, c_all[:nreq] - c


def add_counts(hist: np.ndarray, x: np.ndarray, over: list, sign: int) -> np.ndarray:
    """hist[v] += sign for each v of x below HIST_MAX_US (growing hist as needed); longer go to over."""
    if not x.size:
        return hist
    if int(x.max()) >= HIST_MAX_US:
        big = x >= HIST_MAX_US
        over.append(x[big].astype(np.int64))
        x = x[~big]
    h = np.bincount(x)
    if h.size > hist.size:
        hist = np.concatenate([hist, np.zeros(h.size - hist.size, np.int64)])
    if sign > 0:
        hist[:h.size] += h
    else:
        hist[:h.size] -= h
    return hist


def open_groups(folder: Path, layout: str):
    """(group count, rows per group or None when only reading tells, read(i, columns)) for a
    layout's file; read() may be called from several threads (each has its own file handle)."""
    import threading

    path = path_of(folder, layout)
    local = threading.local()
    if LAYOUTS[layout][1] == "ipc":
        import pyarrow.ipc as ipc

        def reader():
            if not hasattr(local, "r"):
                local.r = ipc.open_file(pa.memory_map(str(path)))
            return local.r

        def read(i, columns):
            return pa.Table.from_batches([reader().get_batch(i).select(columns)])
        return reader().num_record_batches, None, read

    def pfile():
        if not hasattr(local, "f"):
            local.f = pq.ParquetFile(path)
        return local.f

    md = pfile().metadata
    rows = [md.row_group(i).num_rows for i in range(md.num_row_groups)]

    def read(i, columns):
        return pfile().read_row_group(i, columns=columns, use_threads=False)
    return md.num_row_groups, rows, read


def run_count(folder: Path, layout: str, req: dict, request_sums: bool) -> dict:
    """us layouts, streamed: exact percentiles from a histogram of the integer-us gaps.

    Two threads decode row groups and count every value of each (one bincount, no mask); the main
    thread then takes each request's first value (its time from send) and the gaps of failed
    requests back out. Window tokens: requests wholly inside the window add their token sums; only
    the few whose chunks straddle an edge (about 2 x concurrency) need chunk times. With
    request_sums the per-request sums come from requests.parquet (chunk_tokens), and the tokens
    column is read only in the row groups that hold an edge request; otherwise they are summed from
    the tokens column (np.add.reduceat)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    kind = LAYOUTS[layout][0]
    assert kind in ("list_dt_us", "flat_us"), "count engine needs integer-us gaps"
    ok, n, send, first, last = req["ok"], req["n"], req["send"], req["first"], req["last"]
    start, stop = req["start"], req["stop"]
    inside = ok & (first >= start) & (last <= stop)
    edge = ok & (first <= stop) & (last >= start) & ~inside
    count, rows, read = open_groups(folder, layout)
    need_tok = [True] * count
    if request_sums and rows is not None:  # which row groups hold an edge request
        if kind == "list_dt_us":  # a row is a request
            bounds = np.cumsum(rows)
        else:
            bounds = np.searchsorted(np.cumsum(n), np.cumsum(rows), side="right")
        r_lo = np.concatenate(([0], bounds[:-1]))
        edge_cum = np.concatenate(([0], np.cumsum(edge)))
        need_tok = list(edge_cum[bounds] - edge_cum[r_lo] > 0)

    def work(i):
        g = read(i, ["dt_us", "tokens"] if need_tok[i] else ["dt_us"])
        v = flat_values(g["dt_us"])
        big: list[np.ndarray] = []
        h = add_counts(np.zeros(0, np.int64), v, big, +1)
        return v, (flat_values(g["tokens"]) if need_tok[i] else None), h, big, int(v.sum(dtype=np.int64))

    hist = np.zeros(0, np.int64)
    over_add: list[np.ndarray] = []
    over_sub: list[np.ndarray] = []
    total = 0
    tokens_sum = int(req["chunk_tokens"][inside].sum()) if request_sums else 0
    r0 = 0
    with ThreadPoolExecutor(2) as pool:
        pending = deque(pool.submit(work, i) for i in range(min(2, count)))
        for i in range(count):
            v, tok, h, big, vsum = pending.popleft().result()
            if i + 2 < count:
                pending.append(pool.submit(work, i + 2))
            if h.size > hist.size:
                hist = np.concatenate([hist, np.zeros(h.size - hist.size, np.int64)])
            hist[:h.size] += h
            over_add += big
            r1, c, starts = whole_requests(n, r0, v.size)
            has = c > 0
            ex = [v[starts[has]]]
            for j in np.flatnonzero(~ok[r0:r1] & (c > 1)):
                ex.append(v[starts[j] + 1:starts[j] + c[j]])
            ex = np.concatenate(ex)
            hist = add_counts(hist, ex, over_sub, -1)
            total += vsum - int(ex.sum(dtype=np.int64))
            if not request_sums:
                per_req = np.add.reduceat(tok, np.minimum(starts, max(tok.size - 1, 0)), dtype=np.int64)
                per_req[~has] = 0
                tokens_sum += int(per_req[inside[r0:r1]].sum())
            for j in np.flatnonzero(edge[r0:r1]):
                s, k = starts[j], c[j]
                t = send[r0 + j] + np.cumsum(v[s:s + k], dtype=np.int64) * 1000
                tokens_sum += int(tok[s:s + k][(t >= start) & (t <= stop)].sum())
            r0 = r1
    over = multiset_minus(over_add, over_sub)
    return finish(None, 1000, tokens_sum, hist=(hist, over, total, req["n_gaps"]))


def multiset_minus(add: list[np.ndarray], sub: list[np.ndarray]) -> np.ndarray:
    a = np.sort(np.concatenate(add)) if add else np.empty(0, np.int64)
    if not sub:
        return a
    vals, counts = np.unique(a, return_counts=True)
    bv, bc = np.unique(np.concatenate(sub), return_counts=True)
    counts[np.searchsorted(vals, bv)] -= bc
    return np.repeat(vals, counts)


def read_whole(folder: Path, layout: str, columns: list[str]) -> pa.Table:
    path = path_of(folder, layout)
    if LAYOUTS[layout][1] == "ipc":
        import pyarrow.ipc as ipc

        return ipc.open_file(pa.memory_map(str(path))).read_all().select(columns)
    return pq.read_table(path, columns=columns)


def pc_stats(gaps, unit: int, tokens) -> dict:
    import pyarrow.compute as pc

    qs = pc.quantile(gaps, q=[q / 100 for q in QS], interpolation="linear").to_pylist()
    out = {"tokens_in_window": float(tokens), "n_gaps": len(gaps),
           "mean": pc.mean(gaps).as_py() * unit / 1e6}
    out.update({k: v * unit / 1e6 for k, v in zip(STATS[1:], qs, strict=True)})
    return out


def run_arrow(folder: Path, layout: str, req: dict) -> dict:
    import pyarrow.compute as pc

    kind = LAYOUTS[layout][0]
    start, stop = req["start"], req["stop"]
    if kind == "long":
        t = read_whole(folder, layout, ["request", "t_ns", "tokens", "content"])
        t = t.filter(t["content"])
        r = t["request"].combine_chunks()
        ts = t["t_ns"].combine_chunks()
        ok_ids = pa.array(req["request"][req["ok"]])
        keep = pc.and_(pc.equal(pc.pairwise_diff(r), 0), pc.is_in(r, value_set=ok_ids))
        gaps = pc.filter(pc.pairwise_diff(ts), keep)
        inwin = pc.and_(pc.and_(pc.greater_equal(ts, start), pc.less_equal(ts, stop)), pc.is_in(r, value_set=ok_ids))
        tokens = pc.sum(pc.filter(t["tokens"].combine_chunks(), inwin)).as_py()
        return pc_stats(gaps, 1, tokens)
    col = {"list_off_ns": "off_ns", "list_dt_us": "dt_us", "flat_us": "dt_us", "flat_ns": "dt_ns"}[kind]
    unit = 1000 if kind in ("list_dt_us", "flat_us") else 1
    t = read_whole(folder, layout, [col, "tokens"])
    if kind.startswith("flat"):  # CSR -> list arrays (zero copy) with the request counts
        offs = np.zeros(req["n"].size + 1, np.int32)
        np.cumsum(req["n"], out=offs[1:])
        lists = pa.ListArray.from_arrays(pa.array(offs), t[col].combine_chunks())
        toks = pa.ListArray.from_arrays(pa.array(offs), t["tokens"].combine_chunks())
    else:
        lists, toks = t[col].combine_chunks(), t["tokens"].combine_chunks()
    ok = pa.array(req["ok"])
    okl = pc.filter(lists, ok)
    if kind == "list_off_ns":
        flat = pc.list_flatten(okl)
        same = pc.equal(pc.pairwise_diff(pc.list_parent_indices(okl)), 0)
        gaps = pc.filter(pc.pairwise_diff(flat), same)
    else:
        gaps = pc.list_flatten(pc.list_slice(okl, 1))
    # window tokens: chunk times of the successful requests
    lists, toks = okl, pc.filter(toks, ok)
    parents = pc.list_parent_indices(lists)
    flat = pc.list_flatten(lists).cast(pa.int64())
    send_rep = pc.take(pa.array(req["send"][req["ok"]]), parents)
    if kind == "list_off_ns":
        tt = pc.add(send_rep, flat)
    else:
        cs = pc.cumulative_sum(flat)
        starts = lists.offsets[:-1]
        base = pc.subtract(pc.take(cs, starts), pc.take(flat, starts))
        tt = pc.add(send_rep, pc.multiply(pc.subtract(cs, pc.take(base, parents)), unit))
    inwin = pc.and_(pc.greater_equal(tt, start), pc.less_equal(tt, stop))
    tokens = pc.sum(pc.filter(pc.list_flatten(toks), inwin)).as_py()
    return pc_stats(gaps, unit, tokens)


def run_duckdb(folder: Path, layout: str, req: dict) -> dict:
    import duckdb

    kind = LAYOUTS[layout][0]
    con = duckdb.connect()
    con.execute("SET threads = 2")
    if os.environ.get("DUCKDB_MEMORY_LIMIT"):
        con.execute(f"SET memory_limit = '{os.environ['DUCKDB_MEMORY_LIMIT']}'")
    reqs = pa.table({"request": req["request"], "send_ns": req["send"], "ok": req["ok"]})
    con.register("reqs", reqs)
    path = str(path_of(folder, layout))
    qlist = "[" + ", ".join(str(q / 100) for q in QS) + "]"
    start, stop = req["start"], req["stop"]
    if kind == "long":
        unit = 1
        gap_sql = f"""
            SELECT t_ns - lag(t_ns) OVER (PARTITION BY request ORDER BY t_ns) AS g
            FROM read_parquet('{path}') WHERE content
              AND request IN (SELECT request FROM reqs WHERE ok)"""
        tok_sql = f"""
            SELECT sum(tokens) FROM read_parquet('{path}') WHERE content AND t_ns BETWEEN {start} AND {stop}
              AND request IN (SELECT request FROM reqs WHERE ok)"""
    elif kind == "list_off_ns":
        unit = 1
        gap_sql = f"""
            SELECT unnest(list_transform(off_ns[2:], lambda x, i: x - off_ns[i])) AS g
            FROM read_parquet('{path}') WHERE request IN (SELECT request FROM reqs WHERE ok)"""
        tok_sql = f"""
            SELECT sum(tok) FROM (
              SELECT unnest(off_ns) + send_ns AS t, unnest(tokens) AS tok
              FROM read_parquet('{path}') JOIN reqs USING (request) WHERE ok)
            WHERE t BETWEEN {start} AND {stop}"""
    elif kind == "list_dt_us":
        unit = 1000
        gap_sql = f"""
            SELECT unnest(dt_us[2:]) AS g
            FROM read_parquet('{path}') WHERE request IN (SELECT request FROM reqs WHERE ok)"""
        tok_sql = f"""
            SELECT sum(tok) FROM (
              SELECT send_ns + 1000 * sum(d) OVER (PARTITION BY request ORDER BY k
                                                  ROWS UNBOUNDED PRECEDING) AS t, tok
              FROM (SELECT request, unnest(dt_us) AS d, unnest(tokens) AS tok,
                           unnest(generate_series(1, len(dt_us))) AS k
                    FROM read_parquet('{path}')) JOIN reqs USING (request) WHERE ok)
            WHERE t BETWEEN {start} AND {stop}"""
    else:
        raise SystemExit(f"duckdb: no request id per row in {layout}")
    row = con.execute(f"SELECT count(g), avg(g), quantile_cont(g, {qlist}) FROM ({gap_sql}) WHERE g IS NOT NULL").fetchone()
    tokens = con.execute(tok_sql).fetchone()[0]
    out = {"tokens_in_window": float(tokens), "n_gaps": int(row[0]), "mean": row[1] * unit / 1e6}
    out.update({k: v * unit / 1e6 for k, v in zip(STATS[1:], row[2], strict=True)})
    return out


def run_polars(folder: Path, layout: str, req: dict) -> dict:
    import polars as pl

    kind = LAYOUTS[layout][0]
    start, stop = req["start"], req["stop"]
    ok_ids = pl.Series("request", req["request"][req["ok"]])
    reqs = pl.DataFrame({"request": req["request"], "send_ns": req["send"]}).lazy()
    path = str(path_of(folder, layout))
    if kind == "long":
        unit = 1
        lf = pl.scan_parquet(path).filter(pl.col("content"))
        gaps = (lf.filter(pl.col("request").is_in(ok_ids))
                .select(g=pl.col("t_ns").diff(), same=pl.col("request").diff() == 0)
                .filter(pl.col("same")).select("g"))
        toks = (lf.filter(pl.col("t_ns").is_between(start, stop) & pl.col("request").is_in(ok_ids))
                .select(pl.col("tokens").sum()))
    else:
        if kind.startswith("flat"):  # CSR -> lists with the request counts
            col = "dt_us" if kind == "flat_us" else "dt_ns"
            t = read_whole(folder, layout, [col, "tokens"])
            offs = np.zeros(req["n"].size + 1, np.int32)
            np.cumsum(req["n"], out=offs[1:])
            lf = pl.from_arrow(pa.table({
                "request": req["request"],
                col: pa.ListArray.from_arrays(pa.array(offs), t[col].combine_chunks()),
                "tokens": pa.ListArray.from_arrays(pa.array(offs), t["tokens"].combine_chunks())})).lazy()
            kind = "list_dt_us"
        else:
            lf = pl.scan_parquet(path)
        okl = lf.filter(pl.col("request").is_in(ok_ids))
        if kind == "list_off_ns":
            unit = 1
            gaps = okl.select(g=pl.col("off_ns").list.diff().list.slice(1)).explode("g")
            tt = pl.col("send_ns") + pl.col("off_ns")
            exp = okl.join(reqs, on="request").select("send_ns", "off_ns", "tokens").explode(["off_ns", "tokens"])
        else:
            unit = 1000
            gaps = okl.select(g=pl.col("dt_us").list.slice(1)).explode("g")
            exp = (okl.join(reqs, on="request")
                   .select("send_ns", c=pl.col("dt_us").list.eval(pl.element().cast(pl.Int64).cum_sum()),
                           tokens="tokens").explode(["c", "tokens"]))
            tt = pl.col("send_ns") + pl.col("c") * 1000
        toks = exp.filter(tt.is_between(start, stop)).select(pl.col("tokens").cast(pl.Int64).sum())
    stats = gaps.select([pl.len().alias("n"), pl.col("g").mean().alias("mean")]
                        + [pl.col("g").quantile(q / 100, "linear").alias(k) for k, q in zip(STATS[1:], QS, strict=True)])
    s, tk = pl.collect_all([stats, toks])
    row = s.row(0, named=True)
    out = {"tokens_in_window": float(tk.item()), "n_gaps": int(row["n"])}
    out.update({k: row[k] * unit / 1e6 for k in STATS})
    return out


def run_today(folder: Path, layout: str, req: dict) -> dict:
    """profiler's current path (summary.summarize_point's ITL and window-token lines) on layout a."""
    sys.path.insert(0, str(REPO))
    import pandas as pd

    from profiler import metrics as m

    chunks = pq.read_table(path_of(folder, layout)).to_pandas()
    chunks = chunks[chunks["content"]].drop(columns="content").reset_index(drop=True)
    rid = req["request"]
    ok_ids = set(rid[req["ok"]].tolist())
    ch = chunks[chunks["request"].isin(ok_ids)]
    gaps = m.chunk_gaps(ch["request"], ch["t_ns"])
    st = m.stats(gaps)
    # the engine before this study, as it was: per-chunk token estimates, then a masked sum
    per_req = pd.Series(np.asarray(req["usage"], float) / np.maximum(np.asarray(req["n"]), 1), index=np.asarray(rid))
    est = ch["request"].map(per_req).fillna(0.0).to_numpy()
    chunk_tok = np.where(ch["tokens"].to_numpy() >= 0, ch["tokens"].to_numpy(), est)
    t = ch["t_ns"].to_numpy(np.int64)
    tokens = float(chunk_tok[(t >= req["start"]) & (t <= req["stop"])].sum())
    out = {"tokens_in_window": tokens, "n_gaps": int(gaps.size)}
    out.update({k: st[k] * 1e3 for k in STATS})
    return out


def child(folder: Path, layout: str, engine: str) -> None:
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    req = load_requests(folder)
    if engine == "numpy":
        res = run_numpy(folder, layout, req)
    elif engine in ("count", "count_rs"):
        res = run_count(folder, layout, req, request_sums=engine == "count_rs")
    elif engine == "arrow":
        res = run_arrow(folder, layout, req)
    elif engine == "duckdb":
        res = run_duckdb(folder, layout, req)
    elif engine == "polars":
        res = run_polars(folder, layout, req)
    elif engine == "today":
        res = run_today(folder, layout, req)
    elif engine == "noop":
        res = {}
    else:
        raise SystemExit(f"unknown engine {engine}")
    secs = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    # Peak RSS of this process: VmHWM, the high-water mark of its own address space. ru_maxrss
    # (RUSAGE_SELF) is kept too, but Linux carries the parent's high-water mark at fork over the
    # exec into it, so for a child of the (larger) driver it reads max(driver, child).
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    hwm = next((int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")), maxrss)
    print(json.dumps({"layout": layout, "engine": engine, "seconds": secs, "cpu_s": cpu, "rss_mb": hwm, "ru_maxrss_mb": maxrss,
                      "result": res}))


# ----------------------------------------------------------------------------------------------
# driver


def measure(folder: Path, layout: str, engine: str, timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--child", str(folder), layout, engine]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"layout": layout, "engine": engine, "error": f"timeout > {timeout:.0f} s"}
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {"layout": layout, "engine": engine, "error": f"rc {p.returncode}: {last[:160]}"}
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=100_000)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/inferprof-scale"))
    ap.add_argument("--layouts", default="", help="comma list (default: all)")
    ap.add_argument("--engines", default="", help="comma list; default: the matrix's engines per layout")
    ap.add_argument("--pairs", default="", help="comma list of layout:engine to measure (instead of the matrix)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per (layout, engine); the median is reported")
    ap.add_argument("--batch", type=int, default=20_480, help="requests per row group")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds per measurement")
    ap.add_argument("--reuse", action="store_true", help="keep already written files of the same shape")
    ap.add_argument("--json", type=Path, default=None, help="also write all measurements here")
    a = ap.parse_args()
    pairs = [tuple(x.split(":")) for x in a.pairs.split(",") if x]
    layouts = [x for x in a.layouts.split(",") if x] or list(dict.fromkeys(p[0] for p in pairs)) or list(LAYOUTS)
    folder = a.dir / f"N{a.requests}_T{a.tokens}_s{a.seed}"
    info_path = folder / "written.json"
    info = json.loads(info_path.read_text()) if a.reuse and info_path.exists() else None
    if info is None or not set(layouts) <= set(info["layouts"]):
        # the data are a function of (requests, tokens, batch, seed): with --reuse only the missing
        # layouts are written, and the earlier ones are kept
        t0 = time.perf_counter()
        missing = [x for x in layouts if info is None or x not in info["layouts"]]
        new = write_all(folder, missing, a.requests, a.tokens, a.batch, a.seed)
        if info is not None and info.get("batch", a.batch) == a.batch:
            new["layouts"] = {**info["layouts"], **new["layouts"]}
        new["batch"] = a.batch
        info = new
        info_path.write_text(json.dumps(info, indent=1))
        print(f"wrote {info['chunks']:,} chunks of {a.requests:,} requests in {time.perf_counter() - t0:.1f} s "
              f"(generation {info['generate_s']:.1f} s) to {folder}", file=sys.stderr)
    floor = measure(folder, layouts[0], "noop", a.timeout)
    print(f"import + requests.parquet floor: {floor.get('rss_mb', float('nan')):.0f} MB, "
          f"{floor.get('seconds', float('nan')):.2f} s", file=sys.stderr)

    rows = []
    if not pairs:
        pairs = [(layout, engine) for layout in layouts
                 for engine in ([x for x in a.engines.split(",") if x] or MATRIX[layout])]
    import importlib.util

    for layout, engine in pairs:
        if engine in ("duckdb", "polars") and importlib.util.find_spec(engine) is None:
            runs = [{"error": f"{engine} not installed (pip install {engine})"}]
        else:
            runs = [measure(folder, layout, engine, a.timeout) for _ in range(a.repeat)]
        good = [r for r in runs if "error" not in r]
        row = {"layout": layout, "engine": engine, **info["layouts"][layout]}
        if good:
            row.update(seconds=statistics.median(r["seconds"] for r in good),
                       seconds_all=[round(r["seconds"], 2) for r in good],
                       cpu_s=statistics.median(r["cpu_s"] for r in good),
                       rss_mb=statistics.median(r["rss_mb"] for r in good), result=good[0]["result"])
        if len(good) < len(runs):
            row["error"] = next(r["error"] for r in runs if "error" in r)
        rows.append(row)
        print(fmt_row(row, rows), file=sys.stderr, flush=True)
    print(table(rows, info, floor))
    if a.json:
        a.json.write_text(json.dumps({"written": info, "floor": floor, "rows": rows}, indent=1))


def delta_us(row: dict, ref: dict | None) -> str:
    if ref is None or "mean" not in row.get("result", {}) or "mean" not in ref.get("result", {}):
        return ""
    d = max(abs(row["result"][k] - ref["result"][k]) for k in STATS) * 1000
    dt = row["result"]["tokens_in_window"] - ref["result"]["tokens_in_window"]
    return f"{d:.2f} / {dt:+.0f}"


def fmt_row(row: dict, rows: list[dict]) -> str:
    ref = next((r for r in rows if "result" in r), None)
    if "result" not in row:
        return (f"| {row['layout']} | {row['engine']} | {row['bytes'] / 1e6:,.1f} | {row['write_s']:.2f} "
                f"| — | — | — | {row.get('error', '')} |")
    runs = ", ".join(f"{s:.2f}" for s in row["seconds_all"])
    return (f"| {row['layout']} | {row['engine']} | {row['bytes'] / 1e6:,.1f} | {row['write_s']:.2f} "
            f"| {row['seconds']:.2f} ({runs}) | {row['cpu_s']:.2f} | {row['rss_mb']:,.0f} | {delta_us(row, ref)} |")


def table(rows: list[dict], info: dict, floor: dict) -> str:
    ref = next((r for r in rows if "result" in r), None)
    head = (f"{info['requests']:,} requests x {info['tokens']} chunks = {info['chunks']:,} chunk rows; "
            f"requests.parquet {info['requests_bytes'] / 1e6:.1f} MB; import+requests floor "
            f"{floor.get('seconds', math.nan):.2f} s / {floor.get('rss_mb', math.nan):.0f} MB\n\n"
            "| layout | engine | size MB | write s | read+summarize s (runs) | CPU s | peak RSS MB | "
            "max |Δ| vs first row (µs) / Δ window tokens |\n|---|---|---|---|---|---|---|---|\n")
    lines = [fmt_row(r, rows[: i + 1] if ref is None else [ref]) for i, r in enumerate(rows)]
    res = ""
    if ref is not None:
        res = "\n\nreference result (first row): " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                                  for k, v in ref["result"].items()})
    return head + "\n".join(lines) + res


if __name__ == "__main__":
    main()
