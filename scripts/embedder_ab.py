"""The default embedder on another revision's OpenVINO backend and preprocessing against this tree's, in turn.

On a busy machine two separate ``faceapp-cli bench`` runs differ by more than the change being
measured; running the embedders one after the other on the same faces, in one process, puts
them under the same load. Three embedders of the default (fused) model are timed:

* ``old``: the other revision's ``OpenVinoBackend`` and ``preprocess`` (its second network fp32);
* ``exact``: this tree's, with the second network in fp32 (the changes that keep the embeddings);
* ``new``: this tree's default (``precision = "int8"``: the second network in bf16 where the CPU has it).

It prints the cosine of each to ``old`` on real faces, then medians of wall and CPU time
(``time.process_time``, every thread of the process: steadier than wall time under load) per
640x480 frame end to end (1 and 5 faces) and per embedder call (batch 1 and 5), with ratios to ``old``::

    git show 182deb9:faceapp/vision/backends.py > /tmp/old_backends.py
    git show 182deb9:faceapp/vision/embed.py > /tmp/old_embed.py
    python scripts/embedder_ab.py /tmp/old_backends.py /tmp/old_embed.py --photos ../shared/faces/lfw/people
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.measure.bench import bench_face, make_frame
from faceapp.pipeline import Pipeline
from faceapp.vision import backends
from faceapp.vision.embed import FusedEmbedder, load_embedder
from faceapp.vision.images import load_image

KINDS = ("frame 1", "frame 5", "embed 1", "embed 5")


def load_module(path: Path, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def rebuilt(pipe: Pipeline, backend_class: Any, second_precision: str, preprocess: Any | None) -> FusedEmbedder:
    """The pipeline's fused model with each network's OpenVINO backend opened by ``backend_class``."""
    emb = load_embedder(pipe.embedder_file, provider="openvino", precision="int8", threads=pipe.settings.threads)
    assert isinstance(emb, FusedEmbedder)
    for i, (net, _) in enumerate(emb.members):
        old = net.backend
        net.backend = backend_class(old.path, threads=old.threads, precision=old.precision if i == 0 else second_precision)
        net.backend.use_output(net.contract.output_name)
        if preprocess is not None:
            net.preprocess = lambda crops, c=net.contract: preprocess(crops, c)  # type: ignore[method-assign]
    return emb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old_backends", type=Path, help="the other revision's faceapp/vision/backends.py")
    ap.add_argument("old_embed", type=Path, help="the other revision's faceapp/vision/embed.py (its preprocess)")
    ap.add_argument("--photos", type=Path, required=True, help="folder of person folders of face photos")
    ap.add_argument("--faces", type=int, default=200, help="faces to compare embeddings on")
    ap.add_argument("--rounds", type=int, default=40)
    args = ap.parse_args()
    old_backends = load_module(args.old_backends, "other_backends")
    old_embed = load_module(args.old_embed, "other_embed")
    pipe = Pipeline()
    embs = {"old": rebuilt(pipe, old_backends.OpenVinoBackend, "fp32", old_embed.preprocess),
            "exact": rebuilt(pipe, backends.OpenVinoBackend, "fp32", None),
            "new": load_embedder(pipe.embedder_file, provider="openvino", precision="int8", threads=pipe.settings.threads)}
    print("new:", embs["new"].runtime_name)
    crops, others = [], []
    for photo in sorted(args.photos.rglob("*.jpg")):
        faces, _ = pipe.analyze(load_image(photo), embed=False, still=True)
        if faces:
            crops.append(faces[0].crop)
            others.append(faces[0].inputs[0])
        if len(crops) == args.faces:
            break
    c, o = np.stack(crops), np.stack(others)
    ref = np.concatenate([embs["old"].embed_aligned([c[i : i + 5], o[i : i + 5]]) for i in range(0, len(c), 5)])
    for name in ("exact", "new"):
        one = np.concatenate([embs[name].embed_aligned([c[i : i + 1], o[i : i + 1]]) for i in range(len(c))])
        cos = (one * ref).sum(axis=1)
        print(f"{name}: cosine to old on {len(c)} real faces (batch 1 against batch 5): min {cos.min():.7f}, "
              f"mean {cos.mean():.7f}")
    frames = {n: make_frame(bench_face(pipe), n) for n in (1, 5)}

    def run(name: str, kind: str) -> None:
        n = int(kind[-1])
        pipe._embedder = embs[name]
        if kind.startswith("frame"):
            pipe.match_image(frames[n], still=False)
        else:
            embs[name].embed_aligned([c[:n], o[:n]])

    wall: dict[tuple[str, str], list[float]] = {(k, t): [] for k in embs for t in KINDS}
    cpu: dict[tuple[str, str], list[float]] = {key: [] for key in wall}
    for key in wall:
        for _ in range(3):
            run(*key)
    for r in range(args.rounds):
        for kind in KINDS:
            for name in (list(embs) if r % 2 == 0 else list(reversed(embs))):
                t0, p0 = time.perf_counter(), time.process_time()
                run(name, kind)
                wall[name, kind].append((time.perf_counter() - t0) * 1e3)
                cpu[name, kind].append((time.process_time() - p0) * 1e3)
    print(f"medians of {args.rounds} rounds, ratio to old:")
    for kind in KINDS:
        w0, p0 = np.median(wall["old", kind]), np.median(cpu["old", kind])
        print(f"{kind}: " + "; ".join(f"{k} wall {np.median(wall[k, kind]):.2f} ms ({np.median(wall[k, kind]) / w0:.2f}x) "
                                      f"cpu {np.median(cpu[k, kind]):.2f} ms ({np.median(cpu[k, kind]) / p0:.2f}x)"
                                      for k in embs))
    pipe.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
