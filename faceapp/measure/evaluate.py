"""``faceapp-cli evaluate``: the open-set report on a folder-per-person set plus strangers.

This module turns photo folders into embeddings (once, cached) and runs the protocol;
the figures themselves come from :mod:`faceapp.measure.openset`.

Protocol: the first ``enrol`` photos of each person (by file name) are enrolled as their
templates; every other photo of theirs is an *other-day* probe, and a re-framed copy of
the first enrolment photo (mirrored, zoomed out, darker, re-compressed) is a *same-day*
probe. Every photo in the strangers folder is a stranger probe. Look-alike composites,
the average of the aligned crops of 2-4 enrolled people, are probes that must not get a
name either.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp import private
from faceapp.errors import FaceappError, ImageError
from faceapp.measure.openset import (
    DetCurve,
    Interval,
    Misses,
    OpenSetRates,
    TopScores,
    bootstrap,
    det_curve,
    identity_groups,
    misses,
    rates,
    top_scores,
)
from faceapp.recognise.match import Thresholds
from faceapp.vision.images import IMAGE_SUFFIXES, load_image

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass(frozen=True)
class FaceSet:
    """Embedded photos with identity labels.

    Attributes:
        embeddings: ``(N, D)`` float32 unit-length embeddings.
        crops: ``(N, S, S, 3)`` RGB uint8 aligned crops.
        labels: ``(N,)`` int identity index into ``names``.
        names: identity names.
        files: ``(N,)`` source file per embedding.
        failed: ``(file, reason)`` for photos without a usable face.
    """

    embeddings: np.ndarray
    crops: np.ndarray
    labels: np.ndarray
    names: tuple[str, ...]
    files: tuple[str, ...]
    failed: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.labels)


def labelled_photos(root: str | Path) -> list[tuple[Path, str]]:
    """``(photo, identity)`` for a folder: each sub-folder is a person, each loose image a person of its own.

    Raises:
        ImageError: ``root`` is not a folder or holds no images.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root} is not a folder; give a folder of photos or of one sub-folder per person")
    out: list[tuple[Path, str]] = []
    for p in sorted(root.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir():
            out += [(f, p.name) for f in sorted(p.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES]
        elif p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            out.append((p, p.stem))
    if not out:
        raise ImageError(f"{root} holds no images (expected {root}/<name>/*.jpg or {root}/*.jpg)")
    return out


def subject_face(pipe: Any, image: np.ndarray, label: str) -> Any:
    """The face a labelled photo is about: the only face, else the one nearest the image's centre.

    Raises:
        NoFaceError: no face was found.
    """
    from faceapp.errors import NoFaceError

    faces, _ = pipe.analyze(image)
    if not faces:
        raise NoFaceError(f"no face found in {label}")
    h, w = image.shape[:2]

    def off_centre(face: Any) -> float:
        x0, y0, x1, y1 = face.detection.box
        return float(((x0 + x1) / 2 - w / 2) ** 2 + ((y0 + y1) / 2 - h / 2) ** 2)

    return min(faces, key=off_centre)


def _cache_key(pipe: Any, items: Sequence[tuple[Path, str]], variant: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([CACHE_VERSION, variant, pipe.model_id, pipe.embedder.precision,
                         pipe.embedder.runtime_name, pipe.detector_file.sha256,
                         pipe.settings.min_face_size, pipe.settings.min_detection_confidence]).encode())
    for path, ident in items:
        st = path.stat()
        h.update(f"{path.resolve()}\0{ident}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def reframe(image: np.ndarray) -> np.ndarray:
    """A same-session variant of a photo: mirrored, zoomed out 20 %, 25 % darker, re-compressed as JPEG.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
    """
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image[:, ::-1], (int(w * 0.8), int(h * 0.8)), interpolation=cv2.INTER_AREA)
    canvas = np.full_like(image, int(image.mean()))
    y, x = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
    dark = np.clip(canvas.astype(np.float32) * 0.75, 0, 255).astype(np.uint8)
    ok, buf = cv2.imencode(".jpg", dark[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    back = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
    if back is None:
        raise ImageError("could not re-encode a photo")
    return np.ascontiguousarray(back[:, :, ::-1])


def embed_photos(pipe: Any, items: Sequence[tuple[Path, str]], *, cache_dir: Path | None = None,
                 variant: str = "photo", progress: bool = False) -> FaceSet:
    """Embed the subject face of each labelled photo, reusing a cached result when nothing changed.

    Args:
        pipe: a :class:`~faceapp.pipeline.Pipeline`.
        items: ``(photo, identity)`` pairs.
        cache_dir: folder for the cache file; ``None`` caches nothing.
        variant: ``"photo"`` as it is, or ``"reframed"`` for :func:`reframe`'s same-session copy.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"faces-{_cache_key(pipe, items, variant)}.npz"
        if cache.is_file():
            with np.load(cache, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                log.info("embeddings from cache %s", cache)
                return FaceSet(z["embeddings"], z["crops"], z["labels"], tuple(meta["names"]), tuple(meta["files"]),
                               tuple((a, b) for a, b in meta["failed"]))
    ids: dict[str, int] = {}
    embs, crops, labels, files, failed = [], [], [], [], []
    for path, ident in tqdm(items, desc="embedding", unit="img", disable=not progress):
        try:
            rgb = load_image(path)
            if variant == "reframed":
                rgb = reframe(rgb)
            face = subject_face(pipe, rgb, str(path))
        except FaceappError as exc:
            failed.append((str(path), str(exc)))
            continue
        embs.append(face.embedding)
        crops.append(face.crop)
        labels.append(ids.setdefault(ident, len(ids)))
        files.append(str(path))
    size = pipe.embedder.input_size[0]
    out = FaceSet(
        np.stack(embs).astype(np.float32) if embs else np.zeros((0, pipe.embedder.dim), np.float32),
        np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8),
        np.asarray(labels, dtype=np.int64), tuple(ids), tuple(files), tuple(failed),
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"names": out.names, "files": out.files, "failed": out.failed})
        buf = io.BytesIO()
        np.savez(buf, embeddings=out.embeddings, crops=out.crops, labels=out.labels, meta=np.array(meta))
        private.write_atomically(cache, buf.getvalue())  # face crops: private
    return out


# ---------------------------------------------------------------------- protocol

EmbedFn = Callable[[np.ndarray], np.ndarray]  # (N, S, S, 3) RGB uint8 crops -> (N, D) unit-length


def half_of(name: str) -> str:
    """``"tune"`` or ``"report"``: a fixed, data-independent split of identities by a hash of the name.

    Calibration tunes on one half and reports on the other, so that the figures quoted for
    the shipped defaults come from people they were not tuned on.
    """
    return "tune" if hashlib.sha256(name.encode()).digest()[0] % 2 == 0 else "report"


def select(faces: FaceSet, half: str) -> FaceSet:
    """The photos of the identities in one half (``"tune"``, ``"report"``), or all (``"all"``)."""
    if half == "all":
        return faces
    keep_names = [i for i, n in enumerate(faces.names) if half_of(n) == half]
    keep = np.isin(faces.labels, keep_names)
    return FaceSet(faces.embeddings[keep], faces.crops[keep], faces.labels[keep], faces.names,
                   tuple(f for f, k in zip(faces.files, keep) if k), faces.failed)


def enrolment_split(labels: np.ndarray, enrol: int) -> np.ndarray:
    """``(N,)`` bool: the first ``enrol`` photos of each identity (in file order) are enrolment photos."""
    out = np.zeros(len(labels), dtype=bool)
    for g in identity_groups(labels):
        out[np.sort(g)[:enrol]] = True
    return out


def blend(crops: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Average aligned crops: one ``(S, S, 3)`` uint8 composite per group of crop indices.

    Aligned crops share the template's eye, nose and mouth positions, so their average is
    a face that resembles every source face at once.
    """
    return np.stack([np.mean(crops[list(g)].astype(np.float32), axis=0).round().astype(np.uint8) for g in groups])


def composite_groups(labels: np.ndarray, eligible: np.ndarray, n: int, rng: np.random.Generator,
                     sizes: tuple[int, int] = (2, 4), prefer: np.ndarray | None = None) -> list[list[int]]:
    """``n`` groups of crop indices, each one photo of 2-4 different identities among ``eligible`` photos.

    With ``prefer``, a person's photo is drawn from their ``prefer`` photos when they have any
    (e.g. not the enrolment photo, so a composite does not contain a template's own pixels).
    """
    def photos(lab: int) -> np.ndarray:
        mine = eligible & (labels == lab)
        if prefer is not None and (mine & prefer).any():
            mine = mine & prefer
        return np.flatnonzero(mine)

    by_id = {int(lab): photos(int(lab)) for lab in np.unique(labels[eligible])}
    ids = np.array(sorted(by_id))
    if len(ids) < sizes[0]:
        return []
    out = []
    for _ in range(n):
        k = int(rng.integers(sizes[0], min(sizes[1], len(ids)) + 1))
        out.append([int(rng.choice(by_id[int(i)])) for i in rng.choice(ids, k, replace=False)])
    return out


@dataclass(frozen=True)
class Evaluation:
    """The open-set report at one threshold and margin.

    Attributes:
        thresholds: the decision thresholds evaluated.
        people: identities enrolled.
        templates: enrolment photos used.
        other_day: figures for photos of enrolled people other than their enrolment photos,
            and for the strangers (its ``fpir``).
        same_day: figures for same-session copies of the enrolment photos (``None`` if not asked).
        composites: share of look-alike composites given a name (``None`` without composites).
        composites_count: composites made.
        intervals: bootstrap-over-identities intervals of ``fpir``, ``correct_other_day`` and
            ``wrong_name``.
        det: FPIR/FNIR across thresholds at the margin evaluated, and with no margin.
        misses: why other-day photos of enrolled people did not get their name.
    """

    thresholds: Thresholds
    people: int
    templates: int
    other_day: OpenSetRates
    same_day: OpenSetRates | None
    composites: float | None
    composites_count: int
    intervals: dict[str, Interval]
    det: dict[str, DetCurve]
    misses: Misses | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        def r(x: OpenSetRates | None) -> dict[str, Any] | None:
            return None if x is None else dataclasses.asdict(x)

        return {
            "threshold": self.thresholds.match, "margin": self.thresholds.margin,
            "people": self.people, "templates": self.templates,
            "other_day": r(self.other_day), "same_day": r(self.same_day),
            "strangers_named": self.other_day.fpir, "composites_named": self.composites,
            "composites": self.composites_count,
            "intervals": {k: dataclasses.asdict(v) for k, v in self.intervals.items()},
            "det": {k: v.rows() for k, v in self.det.items()},
            "misses": None if self.misses is None else dataclasses.asdict(self.misses),
        }

    def lines(self) -> list[str]:
        """The report as text."""
        o, s, iv = self.other_day, self.same_day, self.intervals

        def pct(x: float | None) -> str:
            return "-" if x is None or math.isnan(x) else f"{100 * x:.1f} %"

        def ci(key: str) -> str:
            v = iv.get(key)
            return "" if v is None else f" (95 % CI {pct(v.low)}-{pct(v.high)})"

        out = [
            f"threshold {self.thresholds.match:.3f}, margin {self.thresholds.margin:.3f}; "
            f"{self.people} people enrolled with {self.templates} photo(s)",
            f"other-day photos of enrolled people: {o.enrolled}, named correctly {pct(o.correct)}"
            f"{ci('correct_other_day')}, wrong name {pct(o.wrong_name)}{ci('wrong_name')}, "
            f"ambiguous or unnamed {pct(o.fnir - o.wrong_name)}",
        ]
        if self.misses is not None:
            m = self.misses
            out.append(f"  not named although their own person came first: under the threshold {pct(m.below_threshold)}, "
                       f"within the margin of the runner-up {pct(m.ambiguous)}; another person came first "
                       f"{pct(m.not_first + m.wrong_name)}")
        if s is not None:
            out.append(f"same-day photos: {s.enrolled}, named correctly {pct(s.correct)}, wrong name {pct(s.wrong_name)}")
        out.append(f"strangers: {o.strangers}, named {pct(o.fpir)}{ci('fpir')}")
        if self.composites is not None:
            out.append(f"look-alike composites of 2-4 enrolled people: {self.composites_count}, named {pct(self.composites)}")
        return out


def evaluate_open_set(people: FaceSet, strangers: FaceSet, thresholds: Thresholds, *, enrol: int = 1,
                      same_day: FaceSet | None = None, composites: int = 0, embed: EmbedFn | None = None,
                      n_boot: int = 1000, seed: int = 0, sweep: np.ndarray | None = None) -> Evaluation:
    """Enrol the first ``enrol`` photos of each person and measure who gets a name.

    Args:
        people: photos of the people to enrol, a folder per person.
        strangers: photos of people who are not enrolled.
        thresholds: the decision thresholds (``match`` and ``margin`` are used).
        enrol: enrolment photos per person.
        same_day: same-session copies of the first enrolment photo of each person.
        composites: look-alike composites to make (needs ``embed``).
        embed: crops -> embeddings, for the composites.
        n_boot: bootstrap resamples for the intervals (0 = none).
        seed: random seed (composites, bootstrap).
        sweep: thresholds of the DET curves (default 0.0 to 0.8 in steps of 0.005).

    Raises:
        FaceappError: nobody can be enrolled, or there are neither probes nor strangers.
    """
    if enrol < 1:
        raise FaceappError("--enrol must be at least 1 photo per person")
    rng = np.random.default_rng(seed)
    is_enrol = enrolment_split(people.labels, enrol)
    if not is_enrol.any():
        raise FaceappError("no photos to enrol; give a folder with one sub-folder of photos per person")
    gallery, glabels = people.embeddings[is_enrol], people.labels[is_enrol]
    offset = len(people.names)
    probes = np.concatenate([people.embeddings[~is_enrol], strangers.embeddings])
    plabels = np.concatenate([people.labels[~is_enrol], strangers.labels + offset])
    if len(probes) == 0:
        raise FaceappError("nothing to evaluate: every photo is an enrolment photo and there are no strangers; "
                           "give people more photos or a strangers folder")
    scores = top_scores(gallery, glabels, probes, plabels)
    other = rates(scores, thresholds.match, thresholds.margin)
    same = None
    if same_day is not None and len(same_day):
        index = {n: i for i, n in enumerate(people.names)}
        keep = np.array([same_day.names[lab] in index for lab in same_day.labels], dtype=bool)
        slabels = np.array([index.get(same_day.names[lab], -1) for lab in same_day.labels], dtype=np.int64)[keep]
        same = rates(top_scores(gallery, glabels, same_day.embeddings[keep], slabels), thresholds.match,
                     thresholds.margin)
    comp_share, n_comp, comp_scores = None, 0, None
    if composites > 0 and embed is not None:
        groups = composite_groups(people.labels, np.ones(len(people), bool), composites, rng, prefer=~is_enrol)
        if groups:
            cemb = np.asarray(embed(blend(people.crops, groups)), dtype=np.float32)
            n_comp = len(groups)
            clabels = np.arange(n_comp) + offset + len(strangers.names)
            comp_scores = top_scores(gallery, glabels, cemb, clabels)
            comp_share = rates(comp_scores, thresholds.match, thresholds.margin).fpir
    intervals: dict[str, Interval] = {}
    if n_boot > 0:
        keys = ("fpir", "correct_other_day", "wrong_name")

        def stat(x: TopScores) -> list[float]:
            r = rates(x, thresholds.match, thresholds.margin)
            return [r.fpir, r.correct, r.wrong_name]

        intervals = dict(zip(keys, bootstrap(scores, stat, n_boot=n_boot, seed=seed)))
    sweep = np.round(np.arange(0.0, 0.8001, 0.005), 3) if sweep is None else sweep
    det = {"margin": det_curve(scores, sweep, thresholds.margin, comp_scores),
           "no_margin": det_curve(scores, sweep, 0.0, comp_scores)}
    return Evaluation(thresholds, people=len(np.unique(glabels)), templates=len(gallery), other_day=other,
                      same_day=same, composites=comp_share, composites_count=n_comp, intervals=intervals, det=det,
                      misses=misses(scores, thresholds.match, thresholds.margin))


def plot_det(curves: dict[str, DetCurve], points: dict[str, tuple[float, float]], path: Path,
             title: str = "Open-set identification (DET)") -> Path:
    """Draw FNIR against FPIR (log-log) for each curve, with marked operating points, as a PNG.

    Args:
        curves: label -> curve.
        points: label -> ``(fpir, fnir)`` to mark.
        path: where to write the PNG.

    Raises:
        FaceappError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise FaceappError("drawing the DET plot needs matplotlib: pip install 'faceapp[train]', "
                           "or leave out --plot") from exc
    floor = 1e-3  # rates of 0 are drawn here: a log axis has no 0
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    for label, c in curves.items():
        ax.plot(np.maximum(c.fpir, floor), np.maximum(c.fnir, floor), label=label)
    for label, (x, y) in points.items():
        ax.plot([max(x, floor)], [max(y, floor)], "o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("FPIR: share of strangers given a name (0 drawn at 0.001)")
    ax.set_ylabel("FNIR: enrolled faces not given their name")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
