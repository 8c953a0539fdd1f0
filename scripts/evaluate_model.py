"""Open-set figures of embedder models as the app runs them, on a fine-tuning run's test people.

Each model (``bundled`` or an ONNX file) is loaded by faceapp's own pipeline, exactly as
``faceapp-cli --model FILE`` loads it: MediaPipe detection, template alignment, the model's
preprocessing contract from its metadata. The photos of the run's *test* identities
(``RUN/split.json``, never trained on nor used to pick the epoch) are embedded through it,
the first photo of each person is enrolled, the others are probes, and the run's test
strangers are the stranger probes. The figures come from :mod:`faceapp.measure.evaluate` and
:mod:`faceapp.measure.openset`, the module behind the app's open-set evaluation:

* FNIR and wrong-name rate at the threshold that names 1 % of the strangers (FPIR 1 %);
* the open-set report at the thresholds the model file recommends (the app's defaults).

    python scripts/evaluate_model.py --run RUN --people DIR --strangers DIR [--cache DIR] MODEL...
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("evaluate_model")


def test_sets(run: Path, people: Path, strangers: Path) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """``(photo, identity)`` items of the run's test people and test strangers."""
    from faceapp.measure.evaluate import labelled_photos
    from training.data import load_split

    split = load_split(run)
    test, test_strangers = set(split.test), set(split.test_strangers)
    p = [(f, n) for f, n in labelled_photos(people) if n in test]
    s = [(f, n) for f, n in labelled_photos(strangers) if n in test_strangers]
    if not p or not s:
        raise SystemExit(f"the run's test people or strangers are not in {people} / {strangers}")
    return p, s


def evaluate(model: str, people: list[tuple[Path, str]], strangers: list[tuple[Path, str]],
             cache: Path | None, target_fpir: float) -> dict[str, Any]:
    import tempfile

    from faceapp.config import Settings
    from faceapp.measure import openset
    from faceapp.measure.evaluate import embed_photos, enrolment_split, evaluate_open_set
    from faceapp.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as gallery, Pipeline(
        Settings(model=None if model == "bundled" else Path(model), gallery=Path(gallery))
    ) as pipe:
        p = embed_photos(pipe, people, cache_dir=cache, progress=True)
        s = embed_photos(pipe, strangers, cache_dir=cache, progress=True)
        defaults = pipe.thresholds()
    at_defaults = evaluate_open_set(p, s, defaults, n_boot=0)
    is_enrol = enrolment_split(p.labels, 1)
    probes = np.concatenate([p.embeddings[~is_enrol], s.embeddings])
    plabels = np.concatenate([p.labels[~is_enrol], s.labels + len(p.names)])
    scores = openset.top_scores(p.embeddings[is_enrol], p.labels[is_enrol], probes, plabels)
    op = openset.operating_point(scores, target_fpir)
    return {
        "model": model, "people": len(p.names), "photos": len(p), "strangers": len(s), "failed": len(p.failed) + len(s.failed),
        "at_target_fpir": {"target_fpir": target_fpir, "threshold": op.threshold, "fpir": op.rates.fpir,
                           "fnir": op.rates.fnir, "wrong_name": op.rates.wrong_name, "resolved": op.resolved},
        "at_model_defaults": at_defaults.to_dict() | {"det": None},
        "report_lines": at_defaults.lines(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", metavar="MODEL", help="ONNX file or 'bundled'")
    ap.add_argument("--run", type=Path, required=True, help="fine-tuning run folder (its split.json)")
    ap.add_argument("--people", type=Path, required=True, help="folder-per-person photos the run was split from")
    ap.add_argument("--strangers", type=Path, required=True, help="folder of stranger photos")
    ap.add_argument("--cache", type=Path, help="embedding cache folder")
    ap.add_argument("--target-fpir", type=float, default=0.01)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    people, strangers = test_sets(args.run, args.people, args.strangers)
    results = [evaluate(m, people, strangers, args.cache, args.target_fpir) for m in args.models]
    for r in results:
        a = r["at_target_fpir"]
        print(f"{r['model']}: {r['people']} test people ({r['photos']} photos), {r['strangers']} strangers; "
              f"at FPIR {a['fpir']:.4f} (target {a['target_fpir']:g}, threshold {a['threshold']:.3f}): "
              f"FNIR {a['fnir']:.4f}, wrong names {a['wrong_name']:.4f}")
        for line in r["report_lines"]:
            print(f"  at the model's defaults: {line}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
