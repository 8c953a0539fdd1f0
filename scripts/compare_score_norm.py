"""Which decision rule beyond one threshold: a runner-up margin, or AS-norm score normalisation?

On the tuning half of a folder-per-person set plus strangers (the same fixed split that
``faceapp-cli calibrate --strangers`` tunes on), for galleries of several sizes: the FNIR at
a target FPIR, and the share of look-alike composites named, with

* the raw cosine similarity and one threshold;
* the raw similarity, a threshold and a runner-up margin;
* AS-norm scores (against a cohort of strangers nobody enrolled) and one threshold;
* AS-norm scores, a threshold and a margin on the normalised scores.

Threshold and margin are tuned as :func:`faceapp.measure.openset.operating_point` does: the lowest
FNIR with at most ``--target-fpir`` of the strangers and ``--lookalike-target`` of the
composites named.

Usage::

    python scripts/compare_score_norm.py PEOPLE --strangers DIR [--cache eval]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from faceapp.config import load_settings
from faceapp.measure.evaluate import blend, composite_groups, embed_photos, enrolment_split, labelled_photos, select
from faceapp.measure.openset import as_norm, operating_point, person_similarities, top_scores_from_matrix
from faceapp.pipeline import Pipeline


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("people", type=Path)
    ap.add_argument("--strangers", type=Path, required=True)
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100, 1000])
    ap.add_argument("--draws", type=int, default=3, help="random galleries per size")
    ap.add_argument("--composites", type=int, default=100)
    ap.add_argument("--target-fpir", type=float, default=0.01)
    ap.add_argument("--lookalike-target", type=float, default=0.1)
    ap.add_argument("--cohort-k", type=int, default=50)
    args = ap.parse_args()
    with Pipeline(load_settings()) as pipe:
        people = select(embed_photos(pipe, labelled_photos(args.people), cache_dir=args.cache), "tune")
        strangers = select(embed_photos(pipe, labelled_photos(args.strangers), cache_dir=args.cache), "tune")
        embed = pipe.embedder.embed
        first = enrolment_split(people.labels, 1)
        pool = np.arange(len(strangers)) % 2 == 0
        cohort = strangers.embeddings[pool]
        ids = np.unique(people.labels)
        variants = {
            "raw, threshold": ("raw", ()),
            "raw, threshold + margin": ("raw", tuple(np.round(np.arange(0.01, 0.205, 0.01), 3))),
            "AS-norm, threshold": ("norm", ()),
            "AS-norm, threshold + margin": ("norm", tuple(np.round(np.arange(0.1, 2.05, 0.1), 2))),
        }
        print(f"{'gallery':>7}  {'rule':<28} {'FNIR':>6} {'FPIR':>6} {'wrong':>6} {'look-alikes named':>18}")
        for size in args.sizes:
            size = min(size, len(ids))
            acc: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in variants}
            for draw in range(args.draws):
                rng = np.random.default_rng(1000 * size + draw)
                chosen = rng.choice(ids, size, replace=False)
                enrolled = np.isin(people.labels, chosen)
                g, gl = people.embeddings[enrolled & first], people.labels[enrolled & first]
                mask = ~(enrolled & first)
                probes = np.concatenate([people.embeddings[mask], strangers.embeddings[~pool]])
                plabels = np.concatenate([people.labels[mask], strangers.labels[~pool] + 1_000_000])
                groups = composite_groups(people.labels, enrolled, args.composites, rng, prefer=~first)
                comp = np.asarray(embed(blend(people.crops, groups)), np.float32)
                clabels = np.arange(len(comp)) + 2_000_000
                raw, cols = person_similarities(g, gl, probes)
                raw_c, _ = person_similarities(g, gl, comp)
                templates = np.stack([g[gl == c][0] for c in cols])
                norm = as_norm(raw, probes @ cohort.T, templates @ cohort.T, args.cohort_k)
                norm_c = as_norm(raw_c, comp @ cohort.T, templates @ cohort.T, args.cohort_k)
                mats = {"raw": (raw, raw_c), "norm": (norm, norm_c)}
                for name, (kind, margins) in variants.items():
                    m, mc = mats[kind]
                    s = top_scores_from_matrix(m, cols, plabels)
                    look = top_scores_from_matrix(mc, cols, clabels)
                    op = operating_point(s, args.target_fpir, lookalikes=look, lookalike_target=args.lookalike_target,
                                         margins=margins)
                    acc[name].append((op.rates.fnir, op.rates.fpir, op.rates.wrong_name, op.lookalikes_named or 0.0))
            for name, vals in acc.items():
                f, p, w, lk = np.mean(vals, axis=0)
                print(f"{size:7d}  {name:<28} {100 * f:5.1f}% {100 * p:5.1f}% {100 * w:5.1f}% {100 * lk:17.1f}%")


if __name__ == "__main__":
    main()
