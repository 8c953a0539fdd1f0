"""How close re-embedded templates come to templates made from the photos themselves.

``faceapp-cli reembed`` rebuilds a gallery from the face crops it stores (112x112 ArcFace
crops, JPEG quality 95); a fused model's second network gets its own crop warped from the
stored one rather than aligned from the photo. This script embeds labelled photos with the
model in use, then re-embeds the same faces from their stored crops (encoded and decoded
as the gallery does), and prints the cosine between the two vectors and the open-set
figures when the enrolment templates are the re-embedded ones instead.

Usage::

    PYTHONPATH=. python scripts/reembed_fidelity.py ../shared/faces/lfw/people \
        --strangers ../shared/faces/lfw/strangers --half report
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from faceapp.config import Settings
from faceapp.measure.evaluate import embed_photos, enrolment_split, evaluate_open_set, labelled_photos, select
from faceapp.pipeline import Pipeline, decode_thumbnail, encode_thumbnail


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("people", type=Path)
    ap.add_argument("--strangers", type=Path, required=True)
    ap.add_argument("--half", choices=["all", "tune", "report"], default="report")
    ap.add_argument("--model", type=Path, help="embedder (default: the bundled one)")
    ap.add_argument("--cache", type=Path)
    args = ap.parse_args(argv)
    with Pipeline(Settings(gallery=Path("/nonexistent-unused"), model=args.model)) as pipe:
        people = select(embed_photos(pipe, labelled_photos(args.people), cache_dir=args.cache), args.half)
        strangers = select(embed_photos(pipe, labelled_photos(args.strangers), cache_dir=args.cache), args.half)
        stored = np.stack([decode_thumbnail(encode_thumbnail(c)) for c in people.crops])
        again = np.concatenate([pipe.embedder.embed(stored[i : i + 64]) for i in range(0, len(stored), 64)])
        thresholds = pipe.thresholds()
    cos = (again * people.embeddings).sum(axis=1)
    print(f"{len(cos)} faces of the {args.half} half, model {pipe.model_id[:12]}...: cosine between the vector "
          f"re-embedded from the stored crop and the one made from the photo: min {cos.min():.4f}, "
          f"1st percentile {np.quantile(cos, 0.01):.4f}, median {np.median(cos):.4f}, mean {cos.mean():.4f}")
    enrol = enrolment_split(people.labels, 1)
    moved = dataclasses.replace(people, embeddings=np.where(enrol[:, None], again, people.embeddings).astype(np.float32))
    for label, faces in (("templates from the photos", people), ("templates re-embedded from stored crops", moved)):
        ev = evaluate_open_set(faces, strangers, thresholds, n_boot=0)
        o = ev.other_day
        print(f"{label}: other-day named correctly {100 * o.correct:.1f} %, wrong name {100 * o.wrong_name:.2f} %, "
              f"strangers named {100 * o.fpir:.2f} % (threshold {thresholds.match:.3f}, margin {thresholds.margin:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
