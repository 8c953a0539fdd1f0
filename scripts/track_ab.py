"""The live view's tracked 5-face frame with two trackers, frame by frame in turn, in one process.

On a busy machine two separate ``faceapp-cli bench`` runs differ by more than the change being
measured; running both trackers on the same frames one after the other, alternating which goes
first, puts them under the same load. The video is ``bench``'s: five copies of the bundled face
drifting a few pixels a frame, matched against a 100-person synthetic gallery.

    git show 3c09f2d:faceapp/recognise/track.py > /tmp/old_track.py
    python scripts/track_ab.py /tmp/old_track.py --frames 400

The other tracker module is loaded from its file; its ``Tracker()`` runs with its own defaults,
this tree's through :meth:`faceapp.pipeline.Pipeline.new_tracker`.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.config import Settings
from faceapp.measure.bench import bench_face, make_frame
from faceapp.pipeline import Pipeline


def load_module(path: Path) -> Any:
    """A Python module from a file, under the name ``other_track``."""
    spec = importlib.util.spec_from_file_location("other_track", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules["other_track"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("other", type=Path, help="the other tracker's track.py")
    ap.add_argument("--frames", type=int, default=400)
    args = ap.parse_args()
    other = load_module(args.other)
    with tempfile.TemporaryDirectory() as tmp, Pipeline(Settings(gallery=Path(tmp) / "g")) as pipe:
        rng = np.random.default_rng(0)
        people = rng.standard_normal((100, pipe.embedder.dim)).astype(np.float32)
        people /= np.linalg.norm(people, axis=1, keepdims=True)
        for i in range(len(people)):
            pipe.gallery.add_templates(f"person {i:03d}", people[i : i + 1], model_id=pipe.model_id)
        frame = make_frame(bench_face(pipe), 5)
        video = [np.roll(frame, 3 * (i % 8), axis=1) for i in range(args.frames)]
        for image in video[:10]:  # warm-up
            pipe.track_frame(image, other.Tracker())
        trackers = {"other": other.Tracker(), "this": pipe.new_tracker()}
        ms: dict[str, list[float]] = {"other": [], "this": []}
        for k, image in enumerate(video):
            for name in ("other", "this") if k % 2 else ("this", "other"):
                t0 = time.perf_counter()
                pipe.track_frame(image, trackers[name])
                ms[name].append((time.perf_counter() - t0) * 1e3)
        print(f"embedder: {pipe.embedder.provider_note}")
        for name, values in ms.items():
            a = np.array(values)
            print(f"{name}: mean {a.mean():.2f} ms, median {np.median(a):.2f} ms, p90 {np.quantile(a, 0.9):.2f} ms, "
                  f"faces embedded a frame {trackers[name].embedded / args.frames:.3f}")
        print(f"this / other: mean {np.mean(ms['this']) / np.mean(ms['other']):.3f}, "
              f"median {np.median(ms['this']) / np.median(ms['other']):.3f}")


if __name__ == "__main__":
    main()
