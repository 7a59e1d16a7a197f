"""TelemetrySession: background sampling in the parent process, and source discovery."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from profiler.telemetry.nvml import NvmlSource
from profiler.telemetry.prometheus import PromSource, fetch_text, kinds_in, metrics_url_candidates
from profiler.telemetry.samples import Sample, Source


class TelemetrySession:
    """Polls every source each `period_s` on its own daemon thread of THIS process.

    One thread per source keeps a slow or dead endpoint (each scrape has a short HTTP timeout)
    from delaying the others; exceptions are counted in `errors[source.name]` and sampling goes on.
    Never start it inside load-generator worker processes: their CPU time is the measurement.

    Use as a context manager or with start()/stop(); `drain()` returns the samples gathered since
    the previous drain.  `sample_now()` polls every source once, synchronously, e.g. at a point's
    start and end so counters are read right at the boundaries.
    """

    def __init__(self, sources: list[Source], period_s: float = 0.1, notices: list[str] | None = None):
        self.sources = list(sources)
        self.period_s = float(period_s)
        self.errors: Counter[str] = Counter()
        self._notices = list(notices or [])
        self._buf: list[Sample] = []
        # Fetched-but-unparsed pages, per source. Parsing a Prometheus page costs milliseconds of
        # Python; done while the load runs it would steal the load generator's core, so pages are
        # only fetched then and parsed in drain(), between points (the load generator's rule too).
        self._raw: list[list[tuple[int, str]]] = [[] for _ in sources]
        self._lock = threading.Lock()
        self._src_locks = [threading.Lock() for _ in self.sources]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False

    @property
    def notices(self) -> list[str]:
        """Discovery notices, then each source's own (deduplicated, in order)."""
        seen: dict[str, None] = dict.fromkeys(self._notices)
        for src in self.sources:
            seen.update(dict.fromkeys(getattr(src, "notices", [])))
        return list(seen)

    @property
    def server_metrics_url(self) -> str | None:
        """The resolved page of the serving engine (vLLM metrics), where the server's own latency
        histograms are read; None when no source carries them."""
        for src in self.sources:
            if "vllm" in getattr(src, "kinds", ()):
                return src.url
        return None

    def gpu_info(self) -> list[dict]:
        """GPU identity for the manifest: NVML first, then dcgm labels, one entry per GPU."""
        out: list[dict] = []
        uuids: set[str] = set()
        for src in sorted(self.sources, key=lambda s: s.name != "nvml"):
            for info in src.gpu_info():
                if info.get("uuid") and info["uuid"] in uuids:
                    continue
                uuids.add(info.get("uuid", ""))
                out.append(info)
        return out

    def _poll(self, i: int) -> None:
        src = self.sources[i]
        fetch = getattr(src, "fetch", None)
        with self._src_locks[i]:
            try:
                if fetch is not None:
                    page = fetch()
                    with self._lock:
                        self._raw[i].append(page)
                    return
                samples = src.poll()
            except Exception:
                with self._lock:
                    self.errors[src.name] += 1
                return
        if samples:
            with self._lock:
                self._buf.extend(samples)

    def _run(self, i: int) -> None:
        _yield_to_load()
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self._poll(i)
            self._stop.wait(max(0.0, self.period_s - (time.perf_counter() - t0)))

    def sample_now(self) -> None:
        """Poll every source once on the calling thread."""
        for i in range(len(self.sources)):
            self._poll(i)

    def start(self) -> TelemetrySession:
        if self._threads:
            return self
        if self._closed:
            raise RuntimeError("TelemetrySession was stopped; make a new one")
        self._stop.clear()
        for i, src in enumerate(self.sources):
            t = threading.Thread(target=self._run, args=(i,), name=f"telemetry-{src.name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop threads (bounded: waits at most `timeout_s` overall) and close sources."""
        self._stop.set()
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = any(t.is_alive() for t in self._threads)
        self._threads = []
        if self._closed:
            return
        if alive:
            self._notices.append("telemetry: a source did not stop in time; left to exit with the process")
            return  # closing a source under a running poll could crash a C library
        self._closed = True
        for src in self.sources:
            try:
                src.close()
            except Exception:
                self.errors[src.name] += 1

    def drain(self) -> list[Sample]:
        """Samples since the last drain (fetched pages are parsed here, in fetch order)."""
        with self._lock:
            out, self._buf = self._buf, []
            raw, self._raw = self._raw, [[] for _ in self.sources]
        for src, pages in zip(self.sources, raw, strict=True):
            for t_ns, text in sorted(pages, key=lambda p: p[0]):
                try:
                    out.extend(src.parse(t_ns, text))
                except Exception:
                    self.errors[src.name] += 1
        return out

    def __enter__(self) -> TelemetrySession:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _yield_to_load() -> None:
    """Let the sampler thread run only when a core is otherwise idle (Linux SCHED_IDLE), so it
    never delays a load-generator process that shares its core; a no-op where unsupported."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


def _probe(url: str, timeout: float) -> tuple[str | None, str, set[str]]:
    """Try a metrics URL; return (text or None, the URL that worked or the last tried, kinds)."""
    last_err = ""
    for cand in metrics_url_candidates(url):
        try:
            text = fetch_text(cand, timeout)
        except Exception as exc:
            last_err = f"{type(exc).__name__}: {exc}"
            continue
        try:
            kinds = kinds_in(text)
        except Exception as exc:
            last_err = f"not Prometheus text ({exc})"
            continue
        if kinds:
            return text, cand, kinds
        last_err = "no vLLM, Triton or DCGM metrics on the page"
    return None, last_err, set()


def build_sources(
    *,
    url: str | None,
    metrics_url: str | None,
    dcgm_url: str | None,
    nvml: bool,
    gpus: list[int] | None,
    timeout_s: float = 1.0,
) -> tuple[list[Source], list[str]]:
    """Discover telemetry sources; never raises.  Returns (sources, one-line notices).

    * server page: `metrics_url` if given, else `url` + `/metrics` (then host root `/metrics`);
      the page is classified by metric prefixes: `vllm:` (vLLM), `nv_` (Triton), `DCGM_FI_`
      (dcgm format, e.g. the inferprof mock server's simulated GPUs).
    * `dcgm_url`: a dcgm-exporter (`/metrics` appended when the URL has no path).
    * NVML when `nvml` and nvidia-ml-py imports and initialises.
    """
    sources: list[Source] = []
    notices: list[str] = []
    seen_urls: set[str] = set()
    for label, target in (("server", metrics_url or url), ("dcgm-exporter", dcgm_url)):
        if not target:
            continue
        text, where, kinds = _probe(target, timeout_s)
        if text is None:
            notices.append(f"{label} metrics unavailable at {target} ({where}); those columns left empty")
            continue
        if where in seen_urls:
            continue
        seen_urls.add(where)
        sources.append(PromSource(where, timeout=timeout_s, kinds=kinds, first_text=text))
        notices.append(f"{label} metrics: {where} ({', '.join(sorted(kinds))})")
    if nvml:
        src, nv_notices = NvmlSource.open(gpus)
        notices.extend(nv_notices)
        if src is not None:
            sources.append(src)
            notices.append(f"NVML: sampling GPUs {[g['index'] for g in src.gpu_info()]}")
    return sources, notices
