"""Do mirrored or jittered enrolment templates, or another alignment fit, separate people better?

Each photo of a folder-per-person set and of a strangers folder is detected once (the face
nearest the centre, as ``faceapp-cli evaluate`` picks it) and aligned several ways:

* ``base``: the app's 4-point fit (eyes, nose tip, mouth centre) onto the ArcFace template;
* ``flip``: the photo and its keypoints mirrored, then the same fit (an exactly aligned mirror);
* ``s0.95``, ``s1.05``, ``d2,0``, ...: the base crop zoomed 5 % in or out, or shifted 2 pixels;
* ``eyes_nose``, ``eyes_mouth``: 3-point fits without the mouth or without the nose tip (the
  nose tip stands out of the face's plane, so a turned head moves it);
* ``five``: 5 points, the mouth corners made from the mouth centre along the eye line at the
  template's mouth width.

A configuration is the crops fused into an enrolment template (the normalised mean of their
embeddings) and into a probe. For one half of the identities (``--half``, the split
``faceapp-cli calibrate`` tunes on), it prints: TAR at a per-comparison FAR of 1e-4 and 1e-3
over every (enrolment photo, other-day photo) pair against every (enrolment photo, stranger)
pair, with a 95 % paired bootstrap interval (over people and strangers) of the difference to
``base``; and the ``faceapp-cli evaluate`` protocol's share named correctly at the default
threshold and margin and at the threshold that names 1 % of the strangers.

Usage::

    python scripts/compare_enrolment_variants.py PEOPLE --strangers DIR --cache eval [--half tune]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from faceapp.config import load_settings
from faceapp.errors import FaceappError
from faceapp.measure.evaluate import FaceSet, enrolment_split, evaluate_open_set, half_of, labelled_photos, select
from faceapp.measure.openset import rates, threshold_for_fpir, top_scores
from faceapp.pipeline import Pipeline
from faceapp.vision.align import CROP_SIZE, keypoints4, similarity_transform, template_points4
from faceapp.vision.images import load_image

JITTER = ["s0.95", "s1.05", "d2,0", "d-2,0", "d0,2", "d0,-2"]
CONFIGS: dict[str, tuple[list[str], list[str]]] = {  # name -> (enrolment crops, probe crops)
    "baseline": (["base"], ["base"]),
    "enrol mirror": (["base", "flip"], ["base"]),
    "enrol jitter": (["base", *JITTER], ["base"]),
    "enrol mirror+jitter": (["base", "flip", *JITTER], ["base"]),
    "enrol+probe mirror": (["base", "flip"], ["base", "flip"]),
    "align eyes+nose": (["eyes_nose"], ["eyes_nose"]),
    "align eyes+mouth": (["eyes_mouth"], ["eyes_mouth"]),
    "align 5pt synth": (["five"], ["five"]),
}


def _warp(img: np.ndarray, m: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.warpAffine(img, m, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=(0, 0, 0))


def _then(m: np.ndarray, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """``m`` followed by a zoom about the crop's centre and a shift, in crop pixels."""
    c = CROP_SIZE / 2
    a = np.array([[scale, 0, c * (1 - scale) + dx], [0, scale, c * (1 - scale) + dy], [0, 0, 1.0]])
    return (a @ np.vstack([m, [0, 0, 1.0]]))[:2]


def crops(rgb: np.ndarray, kp: np.ndarray, template: tuple[tuple[float, float], ...]) -> dict[str, np.ndarray]:
    """Every variant's ``(112, 112, 3)`` crop of one face (``kp``: MediaPipe's 6 keypoints)."""
    t4 = template_points4(template).astype(np.float64)
    t5 = np.asarray(template, np.float64)
    k4 = keypoints4(kp).astype(np.float64)
    m = similarity_transform(k4, t4)
    out = {"base": _warp(rgb, m)}
    w = rgb.shape[1]
    kf = kp.astype(np.float64).copy()
    kf[:, 0] = (w - 1) - kf[:, 0]
    kf = kf[[1, 0, 2, 3, 5, 4]]  # the mirrored left eye is the right eye, and so on
    out["flip"] = _warp(np.ascontiguousarray(rgb[:, ::-1]), similarity_transform(keypoints4(kf), t4))
    for s in (0.95, 1.05):
        out[f"s{s}"] = _warp(rgb, _then(m, scale=s))
    for dx, dy in ((2, 0), (-2, 0), (0, 2), (0, -2)):
        out[f"d{dx},{dy}"] = _warp(rgb, _then(m, dx=dx, dy=dy))
    out["eyes_nose"] = _warp(rgb, similarity_transform(k4[:3], t4[:3]))
    out["eyes_mouth"] = _warp(rgb, similarity_transform(k4[[0, 1, 3]], t4[[0, 1, 3]]))
    half = (k4[1] - k4[0]) / np.linalg.norm(t5[1] - t5[0]) * (t5[4] - t5[3]) / 2.0
    k5 = np.stack([k4[0], k4[1], k4[2], k4[3] - half, k4[3] + half])
    out["five"] = _warp(rgb, similarity_transform(k5, t5))
    return out


def embed_variants(pipe: Pipeline, root: Path, cache: Path) -> dict[str, np.ndarray]:
    """``emb_<variant>`` ``(N, D)``, ``labels``, ``names``, ``files`` and ``crops_base`` of a folder."""
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    template = pipe.embedder.contract.template
    ids: dict[str, int] = {}
    labels, files, by_variant = [], [], {}
    for path, ident in labelled_photos(root):
        try:
            rgb = load_image(path)
            faces, _ = pipe.analyze(rgb, embed=False)
        except FaceappError:
            continue
        if not faces:
            continue
        h, w = rgb.shape[:2]
        face = min(faces, key=lambda f: ((f.detection.box[0] + f.detection.box[2]) / 2 - w / 2) ** 2
                   + ((f.detection.box[1] + f.detection.box[3]) / 2 - h / 2) ** 2)
        for k, v in crops(rgb, face.detection.keypoints, template).items():
            by_variant.setdefault(k, []).append(v)
        labels.append(ids.setdefault(ident, len(ids)))
        files.append(str(path))
    out = {"labels": np.array(labels), "names": np.array(list(ids)), "files": np.array(files),
           "crops_base": np.stack(by_variant["base"])}
    for k, v in by_variant.items():
        arr = np.stack(v)
        out[f"emb_{k}"] = np.concatenate([pipe.embedder.embed(arr[s : s + 64]) for s in range(0, len(arr), 64)])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **out)
    return out


def _fuse(z: dict[str, np.ndarray], names: list[str]) -> np.ndarray:
    x = sum(z[f"emb_{n}"] for n in names)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _tar(gen: np.ndarray, imp: np.ndarray, far: float) -> float:
    return float((gen >= np.quantile(imp.ravel(), 1 - far)).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("people", type=Path)
    ap.add_argument("--strangers", type=Path, required=True)
    ap.add_argument("--cache", type=Path, required=True, help="folder for the variants' embeddings")
    ap.add_argument("--half", choices=["tune", "report"], default="tune")
    ap.add_argument("--bootstrap", type=int, default=300)
    args = ap.parse_args()
    with Pipeline(load_settings()) as pipe:
        pz = embed_variants(pipe, args.people, args.cache / "variants-people.npz")
        sz = embed_variants(pipe, args.strangers, args.cache / "variants-strangers.npz")
        embed, default = pipe.embedder.embed, pipe.thresholds()
    pk = np.array([half_of(str(n)) == args.half for n in pz["names"]])[pz["labels"]]
    sk = np.array([half_of(str(n)) == args.half for n in sz["names"]])[sz["labels"]]
    lab = pz["labels"][pk]
    first = enrolment_split(lab, 1)
    people_ids = np.unique(lab)
    rng = np.random.default_rng(0)
    n_str = int(sk.sum())
    draws = [(rng.integers(0, len(people_ids), len(people_ids)), rng.integers(0, n_str, n_str))
             for _ in range(args.bootstrap)]

    def pairs(ev: list[str], pv: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        g, gl = _fuse(pz, ev)[pk][first], lab[first]
        pr, pl = _fuse(pz, pv)[pk][~first], lab[~first]
        return (pr * g[np.searchsorted(gl, pl)]).sum(1), pl, _fuse(sz, pv)[sk] @ g.T

    def faceset(z: dict[str, np.ndarray], emb: np.ndarray) -> FaceSet:
        return FaceSet(emb, z["crops_base"], z["labels"].astype(np.int64), tuple(str(n) for n in z["names"]),
                       tuple(str(f) for f in z["files"]))

    base = pairs(*CONFIGS["baseline"])
    print(f"half {args.half}: {len(people_ids)} people, {len(base[0])} genuine pairs, {base[2].size} impostor pairs; "
          f"defaults: threshold {default.match:.3f}, margin {default.margin:.2f}", file=sys.stderr)
    print("| configuration | TAR at FAR 1e-4 | difference [95 % CI] | TAR at FAR 1e-3 | difference [95 % CI] "
          "| named correctly at the defaults | at 1 % of strangers named (threshold) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (ev, pv) in CONFIGS.items():
        gen, pl, imp = pairs(ev, pv)
        cells = []
        for far in (1e-4, 1e-3):
            diffs = []
            for pi, si in draws:
                sel = np.concatenate([np.flatnonzero(pl == people_ids[i]) for i in pi])
                diffs.append(_tar(gen[sel], imp[si][:, pi], far) - _tar(base[0][sel], base[2][si][:, pi], far))
            lo, hi = np.quantile(diffs, [0.025, 0.975])
            d = _tar(gen, imp, far) - _tar(base[0], base[2], far)
            cells += [f"{100 * _tar(gen, imp, far):.1f} %", f"{100 * d:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"]
        # the evaluate protocol: enrolment photos carry the enrolment template
        people = faceset(pz, _fuse(pz, pv))
        is_first = enrolment_split(people.labels, 1)
        people.embeddings[is_first] = _fuse(pz, ev)[is_first]
        people, strangers = select(people, args.half), select(faceset(sz, _fuse(sz, pv)), args.half)
        ev_ = evaluate_open_set(people, strangers, default, embed=embed, n_boot=0)
        g_first = enrolment_split(people.labels, 1)
        sc = top_scores(people.embeddings[g_first], people.labels[g_first],
                        np.concatenate([people.embeddings[~g_first], strangers.embeddings]),
                        np.concatenate([people.labels[~g_first], strangers.labels + len(people.names)]))
        t1 = threshold_for_fpir(sc, 0.01, default.margin)
        cells += [f"{100 * ev_.other_day.correct:.1f} %", f"{100 * rates(sc, t1, default.margin).correct:.1f} % ({t1:.3f})"]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
