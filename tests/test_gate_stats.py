"""The gate's decision function on synthetic paired streams with known effects: drift,
bursts and autocorrelated noise, as the machine produces them. Seeds fixed: deterministic."""

import math

import numpy as np
import pytest

from gradbench.gate import stats


def stream(rng, n_quads: int, effect: float, *, noise=0.02, ar=0.6, drift=0.3,
           burst_p=0.03, burst=0.5, level=1e-3):
    """Block times of one case, as the coordinator times them: quads in random order (ABBA
    or BAAB), head ``effect`` slower (a ratio). The machine's speed drifts slowly (a random
    walk plus a trend, ``drift`` in log time over the run), its noise is autocorrelated from
    block to block (AR(1) with coefficient ``ar``), and now and then a block is hit by a
    burst (``burst``: up to +50 % on that block alone). Returns (log_base, log_head) with
    two blocks per quad each, in time order."""
    n_blocks = 4 * n_quads
    walk = np.cumsum(rng.normal(0, drift / math.sqrt(n_blocks), n_blocks))
    trend = np.linspace(0, drift, n_blocks)
    e = np.zeros(n_blocks)
    for i in range(1, n_blocks):
        e[i] = ar * e[i - 1] + rng.normal(0, noise * math.sqrt(1 - ar**2))
    bursts = (rng.random(n_blocks) < burst_p) * rng.uniform(0, burst, n_blocks)
    log_t = math.log(level) + walk + trend + e + np.log1p(bursts)
    base, head = [], []
    for q in range(n_quads):
        order = stats.ORDERS[rng.integers(2)]
        for j, letter in enumerate(order):
            t = log_t[4 * q + j]
            (base if letter == "A" else head).append(t if letter == "A"
                                                      else t + math.log(effect))
    return np.array(base), np.array(head)


def estimate(seed, effect, n_quads=40, **kw):
    rng = np.random.default_rng(seed)
    b, h = stream(rng, n_quads, effect, **kw)
    return stats.case_estimate(stats.quad_differences(b, h))


def test_a_known_slowdown_is_found():
    found = [estimate(s, 1.05).verdict for s in range(100)]
    assert found.count("slower") >= 95
    assert "faster" not in found


def test_no_slowdown_is_invented():
    verdicts = [estimate(s, 1.0).verdict for s in range(300)]
    assert verdicts.count("slower") + verdicts.count("faster") <= 3  # 1 %: the Z of 99 %


def test_a_speed_up_is_faster_not_slower():
    assert [estimate(s, 1 / 1.08).verdict for s in range(20)] == ["faster"] * 20


@pytest.mark.parametrize("kw", [{}, {"ar": 0.9}, {"burst_p": 0.0}, {"drift": 1.0}])
def test_the_interval_covers_the_true_ratio_near_its_level(kw):
    true = 1.03
    covered = 0
    n = 300
    for s in range(n):
        e = estimate(1000 + s, true, **kw)
        lo, hi = e.interval
        covered += lo <= true <= hi
    # nominal 99 %; trimming and the long-run variance make it conservative, bursts and the
    # finite sample can cost a little: 96 % at least over 300 seeds, and not vacuous
    assert covered >= 0.96 * n
    widths = [estimate(s, true, **kw).interval for s in range(20)]
    assert np.median([math.log(hi / lo) for lo, hi in widths]) < 0.1


def test_autocorrelation_widens_the_interval():
    x = np.random.default_rng(0).normal(size=200)
    smooth = np.convolve(x, np.ones(5) / 5, mode="same")  # positively autocorrelated
    assert stats.long_run_variance(smooth) > 2 * float(np.var(smooth, ddof=1))


def test_one_burst_does_not_make_a_verdict():
    d = np.random.default_rng(1).normal(0, 0.01, 40)
    d[7] = 0.4  # a burst on one of head's blocks
    assert stats.case_estimate(d).verdict == "unchanged"


def test_the_threshold_keeps_a_tiny_real_offset_unchanged():
    d = 0.005 + np.random.default_rng(2).normal(0, 0.0005, 60)  # 0.5 %, very precisely
    e = stats.case_estimate(d)
    assert stats.THRESHOLD > 1.005 and e.interval[0] > 1 and e.verdict == "unchanged"
    assert stats.case_estimate(d, threshold=1.003).verdict == "slower"


def test_too_few_quads_are_inconclusive():
    e = stats.case_estimate([0.1, 0.1, 0.1])
    assert e.verdict == "inconclusive" and e.detectable == math.inf


def test_the_detectable_slowdown_is_flagged_nine_times_in_ten():
    # a slowdown of the size stated as detectable is flagged in about 90 % of runs
    se_runs = [estimate(s, 1.0) for s in range(50)]
    detectable = float(np.median([e.detectable for e in se_runs]))
    flagged = [estimate(500 + s, detectable).verdict == "slower" for s in range(200)]
    assert 0.8 <= np.mean(flagged) <= 0.99


def test_a_method_pools_its_cases():
    rng = np.random.default_rng(3)
    cases = [estimate(int(rng.integers(1 << 30)), 1.04) for _ in range(4)]
    m = stats.method_estimate(cases)
    assert m.n == 4 and m.se < min(c.se for c in cases)
    w = np.array([1 / c.se**2 for c in cases])
    assert math.isclose(m.log_ratio, np.dot(w / w.sum(), [c.log_ratio for c in cases]))
    assert stats.method_estimate([]).verdict == "inconclusive"


def test_mismatched_sides_are_refused():
    with pytest.raises(ValueError, match="different numbers of blocks"):
        stats.quad_differences([1, 2, 3, 4], [1, 2])


def generations(seed, effect, n_gen=8, quads_per_gen=3, process_sd=0.015):
    """Quad differences from ``n_gen`` generations of worker pairs, each pair with its own
    offset (a process's memory layout: normal, ``process_sd`` in log time, per side)."""
    rng = np.random.default_rng(seed)
    d, gens = [], []
    for g in range(n_gen):
        offset = rng.normal(0, process_sd) - rng.normal(0, process_sd)
        b, h = stream(rng, quads_per_gen, effect)
        d += list(stats.quad_differences(b, h) + offset)
        gens += [g] * quads_per_gen
    return np.array(d), gens


def by_generations(seed, effect, threshold=stats.THRESHOLD, **kw):
    d, g = generations(seed, effect, **kw)
    return stats.case_estimate(d, threshold, generations=g)


def test_process_offsets_fool_one_pair_of_workers_but_not_generations():
    # the quads of one pair of processes share its offset: their interval ignores it (the
    # interval alone: no threshold)
    one = [stats.case_estimate(generations(s, 1.0, n_gen=1, quads_per_gen=24)[0],
                               threshold=1.0).verdict for s in range(100)]
    many = [by_generations(s, 1.0, threshold=1.0).verdict for s in range(200)]
    assert one.count("slower") + one.count("faster") > 20
    assert many.count("slower") + many.count("faster") <= 4  # 1 %, two-sided: 2


def test_generations_cover_the_true_ratio_and_find_a_slowdown():
    covered = 0
    for s in range(300):
        lo, hi = by_generations(2000 + s, 1.03).interval
        covered += lo <= 1.03 <= hi
    assert covered >= 0.96 * 300
    found = [by_generations(s, 1.15).verdict for s in range(50)]
    assert found.count("slower") >= 45


def test_a_method_over_generations_uses_students_t():
    cases = [stats.Estimate(0.02, 0.01, 8, "unchanged", 1.02),
             stats.Estimate(0.03, 0.01, 8, "unchanged", 1.02)]
    means = [0.01, 0.03, 0.02, 0.04]
    e = stats.method_estimate(cases, per_generation=means, factor=0.6)
    assert e.df == 3 and e.log_ratio == pytest.approx(0.025) and e.n == 2
    lo, hi = e.interval
    half = math.log(hi / lo) / 2
    assert half == pytest.approx(5.841 * np.std(means, ddof=1) / 2 / 0.6, rel=1e-3)
    assert stats.method_estimate(cases, per_generation=[0.1, 0.1]).verdict == "inconclusive"


def test_a_noisy_case_counts_less_in_its_method():
    # one case that bursts of contention hit (its error 20x the other's) barely moves the
    # method's estimate; equal weights would have halved the slowdown the calm case shows
    calm = stats.Estimate(0.05, 0.005, 16, "slower", 1.025)
    noisy = stats.Estimate(-0.10, 0.10, 16, "unchanged", 1.025)
    w = stats.precision_weights([calm, noisy])
    assert w.sum() == pytest.approx(1.0) and w[0] == pytest.approx(400 / 401)
    m = stats.method_estimate([calm, noisy])
    assert m.log_ratio == pytest.approx(0.05 * 400 / 401 - 0.10 / 401)
    assert m.se < calm.se and m.verdict == "slower"
    # a case without an error has no weight; a method of such cases, no verdict
    none = stats.Estimate(0.3, math.inf, 2, "inconclusive", 1.025)
    assert stats.precision_weights([calm, none]).tolist() == [1.0, 0.0]
    assert stats.method_estimate([none]).verdict == "inconclusive"
