import pytest

from faceapp.recognise.match import Thresholds, aggregate, decide, same_person
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


def test_uncertain_shows_no_name_but_keeps_candidates():
    m = decide(aggregate([(1, "a", 0.5)], 1), Thresholds(0.55, 0.08))
    assert m.decision is Decision.UNCERTAIN and m.person is None
    assert [c.name for c in m.candidates] == ["a"]


def test_close_runner_up_is_ambiguous_not_a_name():
    cands = aggregate([(1, "a", 0.62), (2, "b", 0.58), (3, "c", 0.2)], 3)
    m = decide(cands, Thresholds(0.48, 0.08, margin=0.1))
    assert m.decision is Decision.AMBIGUOUS and m.person is None
    assert [c.name for c in m.candidates[:2]] == ["a", "b"]
    clear = decide(aggregate([(1, "a", 0.62), (2, "b", 0.40)], 2), Thresholds(0.48, 0.08, margin=0.1))
    assert clear.decision is Decision.MATCH and clear.person == "a"
    # With no runner-up there is nobody to confuse the best person with.
    alone = decide(aggregate([(1, "a", 0.62)], 2), Thresholds(0.48, 0.08, margin=0.1))
    assert alone.decision is Decision.MATCH
    # A margin of 0 turns the rule off.
    assert decide(cands, Thresholds(0.48, 0.08)).decision is Decision.MATCH


def test_a_probe_nearer_to_a_negative_is_not_named_that_person():
    cands = aggregate([(1, "a", 0.60), (2, "b", 0.30)], 2)
    t = Thresholds(0.48)
    assert decide(cands, t).person == "a"
    m = decide(cands, t, negatives={1: 0.70})  # "this is not a", and the probe is nearer to that face
    assert m.person is None and m.decision is Decision.UNKNOWN
    assert [c.name for c in m.candidates] == ["b"]
    # A negative less similar than the person's templates does not veto them.
    assert decide(cands, t, negatives={1: 0.55}).person == "a"
    # Another person's negatives do not matter; the runner-up can be named once the best is dropped.
    assert decide(cands, t, negatives={2: 0.9}).person == "a"
    both = aggregate([(1, "a", 0.60), (2, "b", 0.58)], 2)
    assert decide(both, Thresholds(0.48, margin=0.1)).decision is Decision.AMBIGUOUS
    assert decide(both, Thresholds(0.48, margin=0.1), negatives={1: 0.8}).person == "b"
