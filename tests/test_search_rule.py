"""The search rule (profiler/search.py) on synthetic verdict curves: bracketing, bisection, edges."""

import numpy as np

from profiler.search import Probe, SearchConfig, Stop, bracket, next_probe, start_load
from profiler.verdict import FAIL, PASS, UNRESOLVED


def drive(verdict_of, config: SearchConfig) -> tuple[list[Probe], Stop]:
    history: list[Probe] = []
    while True:
        nxt = next_probe(history, config)
        if isinstance(nxt, Stop):
            return history, nxt
        history.append(Probe(nxt, verdict_of(nxt)))


def knee(c):
    return lambda load: PASS if load <= c else FAIL


def test_guidellm_example_brackets_by_doubling_then_bisects():
    # statistics.md §2: c* = 100 from 4 → 4, 8, 16, 32, 64, 128 ✗, then bisection
    history, stop = drive(knee(100), SearchConfig(1, 1024, 4))
    assert [p.load for p in history][:6] == [4, 8, 16, 32, 64, 128]
    assert [p.load for p in history][6:] == [96, 112, 104, 100, 104]  # 104 failed twice: confirmed
    assert stop.found == 100 and stop.lo == 100 and stop.hi == 104
    assert "tolerance" in stop.reason


def test_bisection_ends_within_tolerance_or_one_step_for_every_knee():
    for c in range(1, 200):
        history, stop = drive(knee(c), SearchConfig(1, 256, 37))
        assert stop.found is not None and stop.found <= c
        assert c - stop.found <= max(1, 0.05 * stop.found), (c, stop)
        assert len(history) <= 12


def test_rate_search_is_continuous():
    history, stop = drive(knee(37.3), SearchConfig(0.5, 100, 10, integer=False))
    assert stop.found <= 37.3 and 37.3 - stop.found <= 0.05 * stop.found
    assert any(p.load != int(p.load) for p in history)  # rate loads are not rounded to whole numbers


def test_start_above_knee_halves_down():
    history, stop = drive(knee(5), SearchConfig(1, 256, 100))
    assert [p.load for p in history][:5] == [100, 50, 25, 12, 6]
    assert stop.found == 5


def test_all_pass_stops_at_the_top_of_the_range():
    history, stop = drive(lambda load: PASS, SearchConfig(1, 256, 48))
    assert [p.load for p in history] == [48, 96, 192, 256]
    assert stop.found == 256 and "top" in stop.reason


def test_all_fail_stops_at_the_bottom_with_no_answer():
    history, stop = drive(lambda load: FAIL, SearchConfig(2, 256, 48))
    assert [p.load for p in history] == [48, 24, 12, 6, 3, 2]
    assert stop.found is None and "bottom" in stop.reason


def test_unresolved_is_not_a_pass():
    history, stop = drive(lambda load: PASS if load <= 20 else UNRESOLVED if load <= 30 else FAIL,
                          SearchConfig(1, 256, 10))
    assert stop.found == 20
    assert any(p.verdict == UNRESOLVED for p in history)


def test_non_monotone_answer_is_conservative_and_noted():
    # a noisy fail at 24 below a pass at 40: the answer stays below the lowest failure
    verdicts = {16: PASS, 32: PASS, 64: FAIL, 48: FAIL, 40: PASS, 44: FAIL, 42: PASS, 24: FAIL}
    history = [Probe(load, v) for load, v in verdicts.items()]
    lo, hi, notes = bracket(history)
    assert (lo, hi) == (16, 24)
    assert any("non-monotone" in n for n in notes)
    nxt = next_probe(history, SearchConfig(1, 256, 16))
    assert nxt == 20


def test_noisy_verdicts_end_in_bounded_probes():
    rng = np.random.default_rng(3)
    for seed in range(50):
        flip = np.random.default_rng(seed)

        def noisy(load, flip=flip):
            p_fail = 1 / (1 + np.exp(-(load - 60) / 4))  # smooth, noisy knee near 60
            return FAIL if flip.random() < p_fail else PASS
        history, stop = drive(noisy, SearchConfig(1, 256, int(rng.integers(4, 100)), max_probes=15))
        assert len(history) <= 15
        assert stop.found is None or any(p.verdict == PASS for p in history if p.load == stop.found)


def once_unlucky():
    """The knee is 100; the first probe of 96 fails by chance."""
    seen = set()

    def verdict(load):
        if load == 96 and load not in seen:
            seen.add(load)
            return FAIL
        return PASS if load <= 100 else FAIL
    return verdict


def test_a_failure_that_does_not_repeat_moves_the_bracket_up():
    history, stop = drive(once_unlucky(), SearchConfig(1, 1024, 4))
    assert [p.verdict for p in history if p.load == 96] == [FAIL, PASS]
    assert stop.found == 100 and [p.verdict for p in history if p.load == 104] == [FAIL, FAIL]
    _, stop = drive(once_unlucky(), SearchConfig(1, 1024, 4, confirm=False))
    assert stop.found == 92  # the unlucky failure alone would have ended the search there


def test_probe_cap():
    history, stop = drive(knee(100), SearchConfig(1, 1024, 1, max_probes=4))
    assert len(history) == 4 and "cap" in stop.reason and stop.found == 8


def test_same_history_same_next_probe():
    # resume = replay: next_probe depends on nothing but its arguments
    config = SearchConfig(1, 256, 30)
    history = [Probe(30, PASS), Probe(60, FAIL)]
    assert next_probe(history, config) == next_probe(list(history), config) == 45


def test_start_from_littles_law():
    # X_max = 12 req/s, W0 = 4 s: N* = 48, start at 24 (statistics.md §2)
    assert start_load(12.0, 4.0, 1, 256, integer=True) == 24
    assert start_load(12.0, 4.0, 1, 10, integer=True) == 10
    assert start_load(12.0, 0.0, 0.5, 100, integer=False) == 6.0
    assert start_load(float("nan"), 4.0, 1, 256, integer=True) == 16


def test_a_doubling_that_rounds_onto_a_failed_load_bisects_instead():
    # Rates keep 4 significant digits: 2 × 53.14 = 106.28 rounds to the failed 106.3. The search
    # must bisect the bracket, not stop on "already probed" with half the capacity as its answer.
    cfg = SearchConfig(lo=1, hi=200, start=26.57, integer=False)
    history = [Probe(200.0, FAIL), Probe(26.57, PASS), Probe(53.14, PASS), Probe(106.3, FAIL)]
    nxt = next_probe(history, cfg)
    assert not isinstance(nxt, Stop) and 53.14 < nxt < 106.3
