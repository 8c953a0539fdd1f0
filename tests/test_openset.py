import math

import numpy as np
import pytest

from faceapp.measure import openset as os_
from faceapp.recognise.match import Thresholds, aggregate, decide
from faceapp.types import Decision


def unit(v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def basis(n, d=8):
    return np.eye(d, dtype=np.float32)[:n]


def test_person_score_is_the_best_template_and_exact():
    e = basis(4)
    gallery = np.stack([e[0], unit(e[0] + e[1]), e[2]])  # person 7 has two templates
    labels = np.array([7, 7, 9])
    probe = unit(e[1] + 0.1 * e[2])[None]
    s = os_.top_scores(gallery, labels, probe, np.array([7]))
    assert s.top1_label[0] == 7
    assert s.top1[0] == pytest.approx(float(probe[0] @ gallery[1]), abs=1e-6)
    assert s.top2[0] == pytest.approx(float(probe[0] @ gallery[2]), abs=1e-6)
    assert s.enrolled[0] and s.own[0] == pytest.approx(s.top1[0])


def test_scores_match_a_brute_force_loop():
    rng = np.random.default_rng(1)
    gallery = unit(rng.normal(size=(40, 16)))
    glabels = rng.integers(0, 12, 40)
    probes = unit(rng.normal(size=(30, 16)))
    plabels = rng.integers(0, 20, 30)
    s = os_.top_scores(gallery, glabels, probes, plabels)
    for q in range(30):
        per = {p: max(float(probes[q] @ gallery[i]) for i in np.flatnonzero(glabels == p)) for p in set(glabels)}
        ranked = sorted(per.items(), key=lambda kv: -kv[1])
        assert s.top1_label[q] == ranked[0][0]
        assert s.top1[q] == pytest.approx(ranked[0][1], abs=1e-5)
        assert s.top2[q] == pytest.approx(ranked[1][1], abs=1e-5)
        assert s.enrolled[q] == (plabels[q] in per)


def make_scores(top1, label1, top2, probe_labels, enrolled):
    q = len(top1)
    return os_.TopScores(np.asarray(top1, float), np.asarray(label1), np.asarray(top2, float),
                         np.asarray(probe_labels), np.asarray(enrolled, bool), np.full(q, np.nan))


def test_rates_count_strangers_misses_and_wrong_names():
    # 4 enrolled probes (labels 1-4), 4 strangers (labels 100-103)
    s = make_scores(
        top1=[0.9, 0.8, 0.6, 0.3, 0.7, 0.45, 0.2, 0.1],
        label1=[1, 2, 9, 4, 1, 2, 3, 4],
        top2=[0.1, 0.75, 0.1, 0.1, 0.1, 0.1, 0.1, 0.0],
        probe_labels=[1, 2, 3, 4, 100, 101, 102, 103],
        enrolled=[1, 1, 1, 1, 0, 0, 0, 0],
    )
    r = os_.rates(s, 0.5)
    assert r.fpir == 0.25  # stranger 100 (0.7) named
    assert r.correct == 0.5 and r.fnir == 0.5  # probes 1, 2 right; 3 wrong; 4 below threshold
    assert r.wrong_name == 0.25
    m = os_.rates(s, 0.5, margin=0.1)  # probe 2 (gap 0.05) becomes ambiguous
    assert m.correct == 0.25 and m.fnir == 0.75 and m.fpir == 0.25
    assert m.ambiguous == pytest.approx(1 / 8)


def test_misses_say_why_enrolled_probes_were_not_named():
    # enrolled: 1 named, 2 ambiguous (gap 0.05), 3 another person first and named, 4 own first but
    # under the threshold, 5 another person first and not named; one stranger
    s = make_scores(
        top1=[0.9, 0.8, 0.6, 0.3, 0.4, 0.7],
        label1=[1, 2, 9, 4, 9, 1],
        top2=[0.1, 0.75, 0.1, 0.1, 0.1, 0.1],
        probe_labels=[1, 2, 3, 4, 5, 100],
        enrolled=[1, 1, 1, 1, 1, 0],
    )
    m = os_.misses(s, 0.5, margin=0.1)
    assert (m.below_threshold, m.ambiguous, m.not_first, m.wrong_name) == (0.2, 0.2, 0.2, 0.2)
    r = os_.rates(s, 0.5, margin=0.1)
    assert m.below_threshold + m.ambiguous + m.not_first + m.wrong_name == pytest.approx(r.fnir)
    assert os_.misses(s, 0.5).ambiguous == 0.0  # no margin, nobody ambiguous


def test_vectorised_rule_agrees_with_decide():
    rng = np.random.default_rng(3)
    top1 = rng.uniform(0.2, 0.9, 300)
    top2 = top1 - rng.uniform(0, 0.3, 300)
    top2[::7] = -np.inf  # nobody else in the gallery
    s = make_scores(top1, np.zeros(300, int), top2, np.zeros(300, int), np.ones(300))
    for t, m in [(0.5, 0.0), (0.5, 0.1), (0.3, 0.2)]:
        mask = os_.named(s, t, m)
        for i in range(300):
            hits = [(1, "a", top1[i])] + ([] if np.isinf(top2[i]) else [(2, "b", top2[i])])
            d = decide(aggregate(hits, 2), Thresholds(t, 0.0, m)).decision
            assert mask[i] == (d is Decision.MATCH)


def test_det_curve_agrees_with_rates_at_each_threshold():
    rng = np.random.default_rng(5)
    n = 200
    s = make_scores(rng.uniform(0, 1, n), rng.integers(0, 5, n), rng.uniform(0, 0.5, n),
                    rng.integers(0, 8, n), rng.uniform(size=n) < 0.6)
    curve = os_.det_curve(s, np.linspace(0, 1, 21), margin=0.05)
    for i, t in enumerate(curve.thresholds):
        r = os_.rates(s, t, 0.05)
        assert curve.fpir[i] == pytest.approx(r.fpir)
        assert curve.fnir[i] == pytest.approx(r.fnir)
        assert curve.wrong_name[i] == pytest.approx(r.wrong_name)
    assert np.all(np.diff(curve.fpir) <= 0)  # raising the threshold never names more strangers
    full = os_.det_curve(s)
    assert full.fpir[0] == pytest.approx(os_.rates(s, -1.0, 0.0).fpir) and full.fpir[-1] == 0.0


def test_threshold_for_target_fpir_is_the_smallest_that_meets_it():
    strangers = np.linspace(0.1, 0.6, 100)  # 100 strangers
    s = make_scores(strangers, np.zeros(100, int), np.full(100, -np.inf), np.arange(100) + 50, np.zeros(100))
    t = os_.threshold_for_fpir(s, 0.02)
    assert os_.rates(s, t).fpir <= 0.02
    assert os_.rates(s, np.nextafter(t, -np.inf)).fpir > 0.02
    assert os_.threshold_for_fpir(s, 0.0) > 0.6


def test_operating_point_uses_the_margin_only_when_it_helps():
    # Strangers: high top-1 but a close runner-up (look-alikes). Enrolled: clear winners.
    n = 50
    strangers = make_scores(np.full(n, 0.6), np.zeros(n, int), np.full(n, 0.57), np.arange(n) + 1000, np.zeros(n))
    enrolled = make_scores(np.linspace(0.4, 0.8, n), np.arange(n), np.full(n, 0.2), np.arange(n), np.ones(n))
    s = os_.TopScores.concat([strangers, enrolled])
    alone = os_.operating_point(s, 0.01)
    assert alone.margin == 0.0 and alone.threshold > 0.6 and alone.lookalikes_named is None
    both = os_.operating_point(s, 0.01, margins=[0.05, 0.1], min_threshold=0.3)
    assert both.margin == 0.05 and both.rates.fpir == 0.0 and both.threshold == 0.3
    assert both.rates.fnir < alone.rates.fnir
    # The floor holds even where the margin alone would keep every stranger out.
    assert os_.operating_point(s, 0.01, margins=[0.05], min_threshold=0.5).threshold == 0.5


def test_operating_point_keeps_lookalikes_within_their_target():
    n = 100
    strangers = make_scores(np.linspace(0.1, 0.5, n), np.zeros(n, int), np.full(n, 0.0), np.arange(n) + 1000,
                            np.zeros(n))
    enrolled = make_scores(np.linspace(0.4, 0.8, n), np.arange(n), np.linspace(0.1, 0.35, n), np.arange(n), np.ones(n))
    s = os_.TopScores.concat([strangers, enrolled])
    look = make_scores(np.linspace(0.45, 0.7, n), np.zeros(n, int), np.linspace(0.45, 0.7, n) - 0.05,
                       np.arange(n) + 5000, np.zeros(n))  # every look-alike has a runner-up 0.05 behind
    plain = os_.operating_point(s, 0.05, lookalikes=look, lookalike_target=0.1)
    assert plain.lookalikes_named <= 0.1 and plain.margin == 0.0 and plain.threshold > 0.67
    op = os_.operating_point(s, 0.05, lookalikes=look, lookalike_target=0.1, margins=[0.02, 0.06])
    assert op.margin == 0.06 and op.lookalikes_named == 0.0
    assert op.threshold == os_.threshold_for_fpir(s, 0.05, 0.06) and op.rates.fnir < plain.rates.fnir


def test_bootstrap_interval_covers_the_estimate_and_resamples_identities():
    rng = np.random.default_rng(0)
    n = 300
    labels = np.repeat(np.arange(100), 3)
    s = make_scores(rng.uniform(0, 1, n), labels, np.full(n, -np.inf), labels, labels < 60)
    (fpir,) = os_.bootstrap(s, lambda x: [os_.rates(x, 0.5).fpir], n_boot=200, seed=1)
    assert fpir.low <= fpir.estimate <= fpir.high and fpir.high - fpir.low > 0
    # A constant figure has a zero-width interval.
    (c,) = os_.bootstrap(s, lambda x: [float(x.enrolled.sum())], n_boot=50)
    assert c.low == c.high == 180
    groups = os_.identity_groups(labels)
    assert len(groups) == 100 and all(len(g) == 3 for g in groups)


def test_empty_gallery_and_no_strangers():
    s = os_.top_scores(np.zeros((0, 8), np.float32), np.zeros(0, int), basis(2), np.array([1, 2]))
    assert np.all(np.isneginf(s.top1)) and not s.enrolled.any()
    assert os_.rates(s, 0.3).fpir == 0.0 and math.isnan(os_.rates(s, 0.3).fnir)
    with pytest.raises(ValueError):
        os_.threshold_for_fpir(os_.top_scores(basis(2), np.array([1, 2]), basis(2), np.array([1, 2])), 0.01)


def test_far_fpir_conversion_keeps_precision():
    far = os_.far_for_fpir(1e-3, 10_000)
    assert far == pytest.approx(1.0005e-7, rel=1e-4, abs=0)
    assert os_.fpir_from_far(far, 10_000) == pytest.approx(1e-3, rel=1e-9, abs=0)
    # 1 - (1 - x) ** (1 / n) is 0.08 % off here, and 1 - (1 - far) ** n gives 0 below.
    assert os_.far_for_fpir(1e-9, 1_000_000) == pytest.approx(1e-15, rel=1e-6, abs=0)
    assert os_.fpir_from_far(1e-18, 10) == pytest.approx(1e-17, rel=1e-9, abs=0)


def test_pair_figures():
    emb = unit(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]))
    gen, imp = os_.pair_scores(emb, np.array([0, 0, 1, 1]))
    assert len(gen) == 2 and len(imp) == 4
    assert os_.roc_auc(gen, imp) == 1.0
    assert os_.roc_auc(np.array([0.5]), np.array([0.5])) == 0.5
    assert math.isnan(os_.roc_auc(np.array([]), imp))
    t = os_.empirical_threshold(np.linspace(0, 1, 101), 0.05)
    assert os_.far_at(np.linspace(0, 1, 101), t) <= 0.05
    with pytest.raises(ValueError):
        os_.empirical_threshold(np.array([]), 0.1)


def test_as_norm_discounts_a_probe_that_resembles_everyone():
    sims = np.array([[0.6, 0.2], [0.6, 0.2]])
    cohort_plain = np.array([[0.0, 0.1, 0.2, 0.1]])
    cohort_crowded = np.array([[0.5, 0.55, 0.6, 0.5]])  # the second probe is like every cohort face
    probes = np.concatenate([cohort_plain, cohort_crowded])
    people = np.array([[0.0, 0.1, 0.0, 0.1], [0.1, 0.0, 0.1, 0.0]])
    n = os_.as_norm(sims, probes, people, k=4)
    assert n[0, 0] > n[1, 0] and n[0, 0] > n[0, 1]
    mq, sq = cohort_plain.mean(), cohort_plain.std()
    mp, sp = people[0].mean(), people[0].std()
    assert n[0, 0] == pytest.approx(0.5 * ((0.6 - mq) / sq + (0.6 - mp) / sp))
