"""How the enrolment rules treat real photos: genuine photos refused, misfiled photos let through.

For every person of a folder-per-person set (``../shared/faces/lfw/people``: 3-6 photos each,
taken on different days), the one-person rule of :func:`faceapp.recognise.enrol.review_samples`
is applied to:

* all of their photos as one enrolment (``import``, ``enroll`` with several photos): the share
  of genuine photos refused;
* their photos plus one photo of another person of the set (a misfiled photo): the share of
  such intruders refused, and of genuine photos refused beside them;
* their photos offered one at a time to a :class:`~faceapp.recognise.samples.SampleSet` (the
  dialog's "Add photos...", first photo first): genuine photos refused.

The gallery is empty, so only the sample rules act. Usage::

    python scripts/enrolment_rules.py ../shared/faces/lfw/people [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from faceapp.config import Settings  # noqa: E402
from faceapp.errors import FaceappError  # noqa: E402
from faceapp.pipeline import Pipeline  # noqa: E402
from faceapp.recognise.enrol import review_samples  # noqa: E402
from faceapp.recognise.samples import EnrolSample, Provenance, SampleSet  # noqa: E402
from faceapp.types import Decision, Match  # noqa: E402
from faceapp.vision.images import person_folders, prefetch  # noqa: E402

log = logging.getLogger("enrolment_rules")
NO_MATCH = Match(Decision.UNKNOWN, None, None)


def embed_people(pipe: Pipeline, root: Path) -> dict[str, list[EnrolSample]]:
    """Every person's photos as enrolment samples (photos without a usable face are left out)."""
    people = person_folders(root)
    photos = prefetch((img for _, images in people for img in images), pipe.load_photo)
    out: dict[str, list[EnrolSample]] = {}
    for name, images in people:
        for _ in images:
            item = next(photos)
            try:
                if item.error is not None:
                    raise item.error
                face = pipe.main_face(item.value)
            except FaceappError as exc:
                log.info("left out: %s", exc)
                continue
            out.setdefault(name, []).append(EnrolSample.from_face(face, Provenance.photo(item.source.name)))
    return {n: s for n, s in out.items() if len(s) >= 2}


def refused(samples: list[EnrolSample], same_person: float) -> set[int]:
    """Indices of the samples the one-person rule refuses in one enrolment."""
    r = review_samples("x", samples, [NO_MATCH] * len(samples), exists=False, add=False,
                       same_person=same_person, match_threshold=1.0)
    kept = {id(s) for s in r.accepted}
    return {i for i, s in enumerate(samples) if id(s) not in kept}


def measure(people: dict[str, list[EnrolSample]], same_person: float, seed: int = 0) -> dict[str, float | int]:
    rng = np.random.default_rng(seed)
    names = sorted(people)
    genuine = genuine_refused = people_hit = 0
    intruders = intruders_refused = genuine_beside = genuine_beside_refused = 0
    one_by_one = one_by_one_refused = 0
    for k, name in enumerate(names):
        own = people[name]
        out = refused(own, same_person)
        genuine += len(own)
        genuine_refused += len(out)
        people_hit += bool(out)
        other = names[(k + 1 + int(rng.integers(len(names) - 1))) % len(names)]
        intruder = people[other][int(rng.integers(len(people[other])))]
        mixed = [*own, intruder]
        out = refused(mixed, same_person)
        intruders += 1
        intruders_refused += len(own) in out
        genuine_beside += len(own)
        genuine_beside_refused += len(out - {len(own)})
        sset = SampleSet(same_person)
        for s in own:
            one_by_one += 1
            one_by_one_refused += sset.add(s) is not None
    return {
        "people": len(names), "same_person": same_person,
        "genuine_photos": genuine, "genuine_refused": genuine_refused,
        "genuine_refused_share": genuine_refused / genuine, "people_with_a_refused_photo": people_hit,
        "misfiled_photos": intruders, "misfiled_refused": intruders_refused,
        "misfiled_refused_share": intruders_refused / intruders,
        "genuine_refused_beside_a_misfiled_photo": genuine_beside_refused / genuine_beside,
        "one_at_a_time_genuine_refused_share": one_by_one_refused / one_by_one,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("people", type=Path, help="folder with one sub-folder of photos per person")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Settings(gallery=Path(tmp))) as pipe:
        people = embed_people(pipe, args.people)
        res = measure(people, pipe.verify_threshold())
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{res['people']} people, same-person threshold {res['same_person']:.3f}")
        print(f"all photos of one person at once: {res['genuine_refused']} of {res['genuine_photos']} genuine photos "
              f"refused ({100 * res['genuine_refused_share']:.1f} %), {res['people_with_a_refused_photo']} people affected")
        print(f"one misfiled photo of someone else: {res['misfiled_refused']} of {res['misfiled_photos']} refused "
              f"({100 * res['misfiled_refused_share']:.1f} %); genuine photos refused beside it: "
              f"{100 * res['genuine_refused_beside_a_misfiled_photo']:.1f} %")
        print(f"one photo at a time (the dialog): {100 * res['one_at_a_time_genuine_refused_share']:.1f} % "
              "of genuine photos refused")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
