"""Reusable scratch arrays for the large temporaries of a point's summary.

On the machines we run on, the first touch of a freshly allocated 200 MB array costs as much in
page faults as the arithmetic done on it (benchmarks/scale/README.md). A temporary that lives only
inside one function call (chunk steps, histogram buckets) is therefore written into a buffer kept
here and reused by the next point. Never return a scratch array to a caller that keeps it.
"""

from __future__ import annotations

import numpy as np

_BUFFERS: dict[str, np.ndarray] = {}


def scratch(name: str, n: int, dtype) -> np.ndarray:
    """An uninitialised array of `n` items of `dtype`, reusing the memory of the last request of
    the same name (grown when too small)."""
    dtype = np.dtype(dtype)
    buf = _BUFFERS.get(name)
    if buf is None or buf.dtype != dtype or buf.size < n:
        buf = np.empty(max(n + n // 4, 1), dtype)  # headroom: the next point is rarely the same size
        _BUFFERS[name] = buf
    return buf[:n]
