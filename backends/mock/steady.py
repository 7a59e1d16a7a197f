"""Closed-form steady states of the continuous-batching engine (pure; numpy-friendly so the fit can
evaluate thousands of rows at once). ``engine.simulate_closed_loop`` runs the engine itself and is
the reference; these formulas trade its exactness for speed (``predict`` compares dozens of
configurations). All times in seconds; ``I``/``O`` = input/output tokens per request.

Static batch of B (TensorRT-LLM / vLLM ``benchmark_latency``, ``perfmodel.static_batch_*``)::

    b     = min(B, kv_tokens // (I + O/2))                (the rest waits for the next wave)
    ttft  = step(P = b*I, batch b, context b*I)
    itl   = decode_step(b, b*(I + O/2))
    X     = B * O / (ceil(B / b) * (ttft + (O - 1) * itl))

Closed loop of N clients with fixed lengths. The clients start together and every request has the
same length, so they stay in lockstep (as the engine simulation and real fixed-length benchmarks
do): each cycle prefills all B prompts, in chunks of the token budget, then decodes O tokens::

    B_max = min(max_num_seqs, kv_tokens // (I + O));  B = min(N, B_max)
    k     = ceil(B*I / budget)                           prefill steps per cycle
    itl   = decode_step(B, B*(I + O/2))
    ttft  = (prefill_s(B*I) + k * decode_step(B, B*I)) * (k + 1) / (2k)   (mean over the B requests)
    cycle = prefill_s(B*I) + k * decode_step(B, B*I) + (O - 1) * itl
    X     = B * O / cycle                                output tokens/s
    if N > B_max: the rest queue, X stays, ttft = N * O / X - (O - 1) * itl   (Little's law)

Past k = 2 prefill steps per cycle the early finishers start decoding while the rest prefill and
the cohort drifts apart; then ttft and itl are those of the spread state below (with X as above).
Against the engine simulation (``engine.simulate_closed_loop``) this matches throughput within a
few % and ITL within ~10 %; TTFT matches for k <= 2 but is 2-4x low in the drifting regime, whose
simulated TTFT depends on how far the cohorts have merged in the measured window.

Offline (every request queued at once): the closed loop with N = B_max.

Open loop at rate q requests/s: arrivals are spread out, so other requests' prefills share my
decode steps: ``itl = decode_step(B, B*(I+O/2)) + prefill_s(I)*(B-1)/O``,
``ttft = prefill_s(I) + ceil(I/budget) * decode_step + itl/2``; the running batch B solves
B = q * (ttft + (O-1)*itl) (fixed point, 30 iterations); at or past the saturation rate
(the offline X / O) ttft is reported as inf.
"""

from __future__ import annotations

import numpy as np

from backends.mock.perfmodel import Preset


def _decode(p: Preset, batch, context):
    t = p.decode_base_ms * 1e-3 + p.decode_per_seq_us * 1e-6 * batch + p.decode_per_ctx_ns * 1e-9 * context
    if p.moe_expert_ms:
        t = t + p.moe_expert_ms * 1e-3 * (1.0 - (1.0 - p.moe_fraction) ** np.maximum(batch, 1))
    return t


def _prefill(p: Preset, tokens):
    return p.prefill_us_per_token * 1e-6 * tokens


def static_batch(p: Preset, batch, i, o):
    """(ttft_s, itl_s, output tok/s) of a static batch; a batch whose KV cache does not fit runs in
    waves of what fits, one after the other (KV pages are taken as the sequences grow, so the
    mean context I + O/2 is what has to fit)."""
    b = np.maximum(np.minimum(batch, np.floor(p.kv_tokens / np.maximum(i + o / 2, 1))), 1)
    ttft = _prefill(p, b * i) + _decode(p, b, b * i)
    itl = _decode(p, b, b * (i + o / 2))
    waves = np.ceil(batch / b)
    return ttft, itl, batch * o / (waves * (ttft + (o - 1) * itl))


def batch_cap(p: Preset, i, o, max_num_seqs=None):
    seqs = p.max_num_seqs if max_num_seqs is None else max_num_seqs
    return np.maximum(np.minimum(seqs, np.floor(p.kv_tokens / np.maximum(i + o, 1))), 1)


def _budget(p: Preset) -> float:
    return float(p.max_num_batched_tokens or 1 << 40)


def closed_loop(p: Preset, n, i, o, max_num_seqs=None):
    """(ttft_s, itl_s, output tok/s) of N lockstep closed-loop clients (module docstring)."""
    cap = batch_cap(p, i, o, max_num_seqs)
    b = np.minimum(n, cap)
    k = np.maximum(np.ceil(b * i / _budget(p)), 1)
    fill = _prefill(p, b * i) + k * _decode(p, b, b * i)
    itl = _decode(p, b, b * (i + o / 2))
    ttft = fill * (k + 1) / (2 * k)
    x = b * o / (fill + (o - 1) * itl)
    s_ttft, s_itl = _spread(p, b, i, o)
    ttft, itl = np.where(k > 2, s_ttft, ttft), np.where(k > 2, s_itl, itl)
    queued = n * o / x - (o - 1) * itl
    return np.where(n > cap, np.maximum(queued, ttft), ttft), itl, x


def offline(p: Preset, i, o, max_num_seqs=None):
    """Output tok/s with every request queued at once."""
    return closed_loop(p, batch_cap(p, i, o, max_num_seqs), i, o, max_num_seqs)[2]


def _spread(p: Preset, b, i, o):
    dec = _decode(p, b, b * (i + o / 2))
    itl = dec + _prefill(p, i) * (b - 1) / np.maximum(o, 1)
    ttft = _prefill(p, i) + np.ceil(i / _budget(p)) * dec + np.where(b > 1, itl / 2, 0.0)
    return ttft, itl


def open_loop(p: Preset, qps, i, o, max_num_seqs=None):
    """(ttft_s, itl_s, output tok/s) at ``qps`` requests/s (inf ttft at saturation)."""
    cap = batch_cap(p, i, o, max_num_seqs)
    x_max = offline(p, i, o, max_num_seqs)
    q = np.minimum(qps, x_max / np.maximum(o, 1))
    b = np.ones_like(np.asarray(q, dtype=float))
    for _ in range(30):
        t, itl = _spread(p, b, i, o)
        b = np.clip(q * (t + (o - 1) * itl), 1.0, cap)
    ttft, itl = _spread(p, b, i, o)
    ttft = np.where(np.asarray(qps) * o >= x_max * 0.999, np.inf, ttft)
    return ttft, itl, q * o
