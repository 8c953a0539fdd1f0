import pytest

from faceapp.match import Thresholds, aggregate, decide, same_person
from faceapp.types import Decision


def test_aggregate_keeps_best_template_per_person():
    hits = [(1, "a", 0.3), (2, "b", 0.6), (1, "a", 0.7), (3, "c", 0.1)]
    cands = aggregate(hits, k=2)
    assert [(c.name, c.similarity) for c in cands] == [("a", 0.7), ("b", 0.6)]


def test_decisions_across_the_band():
    cands = aggregate([(1, "a", 0.5)], 1)
    t = Thresholds(match=0.48, uncertain_band=0.08)
    assert decide(cands, t).decision is Decision.MATCH
    assert decide(cands, Thresholds(0.55, 0.08)).decision is Decision.UNCERTAIN
    assert decide(cands, Thresholds(0.55, 0.08)).person == "a"
    low = decide(cands, Thresholds(0.7, 0.08))
    assert low.decision is Decision.UNKNOWN and low.person is None and low.similarity == 0.5
    assert decide(cands, Thresholds(0.55, 0.0)).decision is Decision.UNKNOWN


def test_threshold_is_inclusive():
    cands = aggregate([(1, "a", 0.48)], 1)
    assert decide(cands, Thresholds(0.48)).decision is Decision.MATCH
    assert same_person(0.363, 0.363) and not same_person(0.362, 0.363)


def test_empty_gallery_is_unknown():
    m = decide([], Thresholds(0.5))
    assert m.decision is Decision.UNKNOWN and m.similarity is None


def test_bad_thresholds_raise():
    with pytest.raises(ValueError):
        Thresholds(1.5)
    with pytest.raises(ValueError):
        Thresholds(0.5, -0.1)
