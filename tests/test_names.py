"""People's names: NFKC-normalised, invisible characters refused, and a name that looks like an
enrolled one (by its Unicode confusable skeleton, UTS #39) refused with the person it looks like."""

import re

import pytest
from vectors import unit_vectors

from faceapp.errors import GalleryError
from faceapp.gallery.gallery import Gallery
from faceapp.gallery.store import normalise_name

MODEL = "m" * 64


@pytest.mark.parametrize(("enrolled", "lookalike"), [
    ("Obama", "\u041ebama"),                # Cyrillic capital O
    ("émile", "Émile"),                     # case beyond ASCII
    ("Paypal", "Pay\u0440al"),              # Cyrillic small er
    ("Bill", "BiII"),                       # capital I for small l
])
def test_a_name_that_looks_like_an_enrolled_one_is_refused_naming_that_person(tmp_path, rng, enrolled, lookalike):
    with Gallery(tmp_path) as g:
        g.add_templates(enrolled, unit_vectors(rng, 1, 8), model_id=MODEL)
        with pytest.raises(GalleryError, match=re.escape(f"looks like {enrolled!r}")):
            g.add_templates(lookalike, unit_vectors(rng, 1, 8), model_id=MODEL)
        g.add_templates("Carla", unit_vectors(rng, 1, 8), model_id=MODEL)
        with pytest.raises(GalleryError, match=re.escape(f"looks like {enrolled!r}")):
            g.rename("Carla", lookalike)
        assert sorted(p.name for p in g.list_persons()) == sorted([enrolled, "Carla"])
        g.add_templates(enrolled, unit_vectors(rng, 1, 8), model_id=MODEL, create=False)  # the person themself


@pytest.mark.parametrize("name", ["Obama\u3164", "\u115fObama", "Ob\u00adama", "Oba\u034fma"])
def test_invisible_fillers_are_refused(name):
    with pytest.raises(GalleryError, match="invisible"):
        normalise_name(name)


@pytest.mark.parametrize(("enrolled", "same"), [("Barack Obama", "Barack\u00a0Obama"), ("Ann", "\uff21nn")])
def test_a_name_that_is_the_same_after_nfkc_is_the_same_person(tmp_path, rng, enrolled, same):
    with Gallery(tmp_path) as g:
        g.add_templates(enrolled, unit_vectors(rng, 1, 8), model_id=MODEL)
        g.add_templates(same, unit_vectors(rng, 1, 8), model_id=MODEL)  # a no-break space, a full-width letter
        assert [(p.name, p.templates) for p in g.list_persons()] == [(enrolled, 2)]


def test_names_are_nfkc_normalised_and_keys_fold_lookalikes():
    from faceapp.gallery.store import name_keys

    assert normalise_name("\uff21nn\u00a0Lee") == "Ann Lee"
    assert name_keys("\u041ebama") & name_keys("obama") and not name_keys("obama") & name_keys("Osama")
    assert normalise_name("Zoë Ångström") == "Zoë Ångström"
