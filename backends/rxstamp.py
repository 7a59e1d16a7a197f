"""Arrival times from the kernel: when the bytes a recv() returns reached the socket, not when the
loop got round to reading them.

With SO_TIMESTAMPNS set, Linux stamps each incoming packet as it is received (on loopback: as the
server's send() hands it over) and `recvmsg()` returns the stamp of the last packet it read
(socket(7), "SO_TIMESTAMPNS"; tcp_recvmsg keeps the newest stamp of the segments it copies, and
segments merged in the receive queue keep the later one). That is the moment the data became
readable. A loop that is busy with other sockets when a chunk lands (256 streams in lockstep send
their chunks in waves, and a wave over TLS takes one core several ms) reads it late; a user-space
stamp after the read carries that delay into TTFT and ITL, the kernel's does not
(benchmarks/truth/README.md, HTTPS section, run 5).

The stamp is CLOCK_REALTIME; the loop's clock is perf_counter_ns (CLOCK_MONOTONIC). Both run at
the same rate (NTP slews them alike), so one offset converts, re-read at every loop iteration so
that a step of the wall clock (settimeofday, an NTP step) moves at most the stamps of one batch,
and only from reads that were not interrupted (`clock_offset_ns`).
Each stamp is also kept inside what is known for certain: not before the connection's previous
activity (the send, or the previous read) and not after the read itself.
"""

from __future__ import annotations

import socket
import struct
import sys
from time import perf_counter_ns, time_ns

# Linux: SO_TIMESTAMPNS (SO_TIMESTAMPNS_OLD) is 35 on the common architectures, and its control
# message type SCM_TIMESTAMPNS has the same number; Python's socket module does not export it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on a 64-bit kernel: tv_sec, tv_nsec
AVAILABLE = sys.platform.startswith("linux") and struct.calcsize("@l") == 8
ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if AVAILABLE else 0  # recvmsg's ancillary buffer
OFFSET_READ_NS = 20_000  # three clock reads take well under 1 µs; longer means they were interrupted


def enable_stamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp what `sock` receives; False where it cannot (then reads fall back
    to a stamp taken after the read)."""
    if not AVAILABLE:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def clock_offset_ns(previous: int | None = None) -> int:
    """CLOCK_REALTIME − perf_counter_ns: a wall-clock read against the mean of the perf_counter
    reads around it. A read that took longer than OFFSET_READ_NS was interrupted (the thread
    preempted, or the GIL handed to another thread in between) and is off by up to half that:
    it is tried again, at most three times, and then `previous` is kept. (Truth runs showed whole
    batches of chunks 2–4 ms late from one such read before this rule.)

    The midpoint is Cristian's, as in profiler/clocksync.py (which keeps the least-delay of n
    round trips); that module is not called here because backends may not import profiler and
    this runs once per loop iteration, where its sample list and record would be waste."""
    for _ in range(3):
        a = perf_counter_ns()
        wall = time_ns()
        b = perf_counter_ns()
        if b - a <= OFFSET_READ_NS:
            return wall - (a + b) // 2
    return previous if previous is not None else wall - (a + b) // 2


def arrival_ns(anc: list, offset_ns: int, floor_ns: int, read_ns: int) -> int:
    """When the bytes of one recvmsg() arrived, in perf_counter_ns: the kernel's stamp from `anc`,
    kept within [floor_ns, read_ns]; `read_ns` itself when there is no stamp."""
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            t = sec * 1_000_000_000 + nsec - offset_ns
            return read_ns if t > read_ns else (floor_ns if t < floor_ns else t)
    return read_ns
