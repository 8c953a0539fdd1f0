"""The only module that knows the order of the stages: detect -> align -> embed -> gallery -> match.

:class:`Pipeline` is what the CLI and the GUI call. Models and the gallery are loaded
on first use, so a command that only lists the gallery never loads a network.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faceapp.config import Settings
from faceapp.errors import ImageError, ManyFacesError, NoFaceError
from faceapp.gallery.store import Person
from faceapp.recognise.enrol import Enrolment
from faceapp.recognise.match import Thresholds, aggregate, decide, same_person
from faceapp.recognise.samples import EnrolSample, Provenance
from faceapp.recognise.track import Tracker, TrackerConfig, TrackResult
from faceapp.types import Detection, Face, FaceResult, Match
from faceapp.vision import models
from faceapp.vision.align import align_face, face_quality
from faceapp.vision.images import Loaded, Photo, as_rgb8, encode_crop, load_photo

log = logging.getLogger(__name__)

# With several faces in an enrolment photo, the largest is used only when it is clearly
# the subject: the runner-up's box area must be below this fraction of the largest's.
DOMINANT_FACE_RATIO = 0.5
# Templates fetched per requested person, so that people with many templates do not
# crowd others out of the top-k.
TEMPLATES_PER_PERSON = 8
# Enrolled people looked at per enrolment sample, for look-alikes and the target's similarity.
ENROL_CANDIDATES = 10
# Photos are decoded for detection at no less than this longer side (JPEG draft scales):
# the detector itself looks at 192x192, so more pixels only cost decoding time.
PHOTO_DETECT_SIDE = 640
# A face is aligned from the full-resolution photo when its box in the reduced photo is
# narrower than this many times the crop size, so small faces keep every pixel.
FULL_RES_FACE_RATIO = 1.5
# Photos whose faces `match` embeds in one call: the int8 embedder takes about 3.9 ms a face at
# batch 5 against 6.0 ms at batch 1 (`faceapp-cli bench`, quiet 2-core AVX-512 machine).
MATCH_BATCH = 8


@dataclass(frozen=True)
class StageTimes:
    """Milliseconds spent in each stage for one image."""

    detect: float = 0.0
    align: float = 0.0
    embed: float = 0.0
    search: float = 0.0

    @property
    def total(self) -> float:
        return self.detect + self.align + self.embed + self.search


@dataclass(frozen=True)
class ImageResult:
    """Every face in one image with its match, and where the time went."""

    faces: list[FaceResult]
    times: StageTimes = field(default_factory=StageTimes)


@dataclass(frozen=True)
class Verification:
    """1:1 comparison of the main faces of two images."""

    similarity: float
    same: bool
    threshold: float


class Pipeline:
    """Face matching with the models and gallery named by ``settings``.

    Args:
        settings: thresholds, model paths, provider, gallery location.
        interactive: the pipeline serves a live view that shares the CPU with a camera and
            a display; with ``threads = 0`` the embedder then leaves a core free on small
            CPUs (:func:`faceapp.vision.backends.default_threads`).
    """

    def __init__(self, settings: Settings | None = None, *, interactive: bool = False) -> None:
        self.settings = settings or Settings()
        self.interactive = interactive
        self.detector_note = ""  # the detector's runtime and why, once it is loaded
        self._detector = None
        self._embedder = None
        self._gallery = None
        self._embedder_file: models.ModelFile | None = None
        self._detector_file: models.ModelFile | None = None
        self._load_lock = threading.RLock()
        # Detection (from the GUI worker and the GUI thread) and close take this lock, so
        # closing the pipeline waits for a detection in progress instead of failing it.
        self._detect_lock = threading.Lock()

    # ------------------------------------------------------------------ components

    @property
    def detector(self):  # type: ignore[no-untyped-def]
        with self._load_lock:
            if self._detector is None:
                from faceapp.config import default_cache_dir
                from faceapp.vision.detect import FaceDetector, select_backend

                file = models.resolve_detector(self.settings.detector)
                self._detector_file = file
                selection = select_backend(file.path, file.sha256, self.settings.provider, threads=self._threads(),
                                           cache_dir=default_cache_dir())
                self._detector = FaceDetector(
                    file.path,
                    min_confidence=self.settings.min_detection_confidence,
                    max_side=self.settings.max_detect_side,
                    backend=selection.backend,
                )
                self.detector_note = selection.note
                log.info("detector %s on %s", file.path.name, selection.note)
            return self._detector

    @property
    def embedder(self):  # type: ignore[no-untyped-def]
        with self._load_lock:
            if self._embedder is None:
                from faceapp.vision.embed import load_embedder

                file = models.resolve_embedder(self.settings.model)
                self._embedder_file = file
                self._embedder = load_embedder(file, provider=self.settings.provider, precision=self.settings.precision,
                                               threads=self._threads())
                log.info("embedder %s on %s", file.path.name, self._embedder.provider_note)
            return self._embedder

    def _threads(self) -> int:
        """Inference threads: the setting, else every core (a live view leaves one free on small CPUs)."""
        from faceapp.vision.backends import default_threads

        return self.settings.threads or default_threads(interactive=self.interactive)

    @property
    def embedder_file(self) -> models.ModelFile:
        _ = self.embedder
        assert self._embedder_file is not None
        return self._embedder_file

    @property
    def detector_file(self) -> models.ModelFile:
        _ = self.detector
        assert self._detector_file is not None
        return self._detector_file

    @property
    def gallery(self):  # type: ignore[no-untyped-def]
        with self._load_lock:
            if self._gallery is None:
                from faceapp.gallery.gallery import open_gallery

                self._gallery = open_gallery(self.settings.gallery_spec(), index=self.settings.index)
            return self._gallery

    @property
    def model_id(self) -> str:
        return self.embedder_file.sha256

    def thresholds(self, threshold: float | None = None) -> Thresholds:
        """Decision thresholds: ``threshold`` if given, else settings, else the model's."""
        rec = self.embedder.thresholds
        match = threshold if threshold is not None else self.settings.threshold
        band = self.settings.uncertain_band
        margin = self.settings.margin
        return Thresholds(
            match=rec.match if match is None else float(match),
            uncertain_band=rec.uncertain_band if band is None else float(band),
            margin=rec.margin if margin is None else float(margin),
        )

    def verify_threshold(self) -> float:
        vt = self.settings.verify_threshold
        return self.embedder.thresholds.verify if vt is None else float(vt)

    # ------------------------------------------------------------------ stages

    def load_photo(self, path: str | Path) -> Photo:
        """Decode a photo file at the size detection needs (see :func:`~faceapp.vision.images.load_photo`)."""
        return load_photo(path, PHOTO_DETECT_SIDE, self.settings.max_image_pixels)

    def analyze(self, image: np.ndarray | str | Path | Photo, *, embed: bool = True,
                still: bool = True) -> tuple[list[Face], StageTimes]:
        """Detect, align, measure and (optionally) embed every face in an image.

        Args:
            image: RGB uint8 ``(H, W, 3)`` array, a path to an image file, or a
                :class:`~faceapp.vision.images.Photo` (a path is decoded with :meth:`load_photo`).
            embed: also compute embeddings (in one batch for all faces).
            still: a photo rather than a video frame: worth a second detection pass
                when the first finds nothing.

        Returns:
            Faces largest first (boxes and keypoints in full-resolution pixels), and the
            time spent per stage.
        """
        if isinstance(image, (str, Path)):
            image = self.load_photo(image)
        photo = image if isinstance(image, Photo) else None
        rgb = image.image if isinstance(image, Photo) else as_rgb8(image)
        t0 = time.perf_counter()
        with self._detect_lock:
            detections = self.detector.detect(rgb, min_confidence=self.settings.min_detection_confidence,
                                              retry_padded=still)
        t1 = time.perf_counter()
        alignments = self.embedder.alignments  # one crop per distinct template, the first one stored
        # The stored crop's size decides where a face is aligned from: a face whose box is 1.5 of its
        # 112 pixels still gives the second network's 128x128 input (a 96x112 face) more than one
        # source pixel per input pixel.
        size = alignments[0].input_size[1]
        sources = [(rgb, d.keypoints) for d in detections]
        if photo is not None and photo.scale != 1.0:
            detections, sources = self._to_full_resolution(photo, detections, size)
        faces = []
        for det, (src, points) in zip(detections, sources):
            crop = align_face(src, points, alignments[0])
            q = face_quality(det.keypoints, crop)
            if q.face_size < self.settings.min_face_size:
                continue
            others = tuple(align_face(src, points, a) for a in alignments[1:])
            faces.append(Face(detection=det, crop=crop, quality=q, inputs=others))
        t2 = time.perf_counter()
        if embed:
            faces = self.embed_faces(faces)
        t3 = time.perf_counter()
        return faces, StageTimes(detect=(t1 - t0) * 1e3, align=(t2 - t1) * 1e3, embed=(t3 - t2) * 1e3)

    def embed_faces(self, faces: Sequence[Face]) -> list[Face]:
        """``faces`` with their embeddings, all computed in one embedder call.

        Faces that already carry an embedding are returned as they are.
        """
        todo = [i for i, f in enumerate(faces) if f.embedding is None]
        out = list(faces)
        if todo:
            crops = np.stack([faces[i].crop for i in todo])
            n_other = len(self.embedder.alignments) - 1
            if n_other and all(len(faces[i].inputs) == n_other for i in todo):
                stacks = [crops] + [np.stack([faces[i].inputs[j] for i in todo]) for j in range(n_other)]
                emb = self.embedder.embed_aligned(stacks)
            else:
                emb = self.embedder.embed(crops)
            for row, i in enumerate(todo):
                out[i] = dataclasses.replace(faces[i], embedding=emb[row])
        return out

    @staticmethod
    def _to_full_resolution(photo: Photo, detections: list[Detection],
                            crop_size: int) -> tuple[list[Detection], list[tuple[np.ndarray, np.ndarray]]]:
        """Detections in full-resolution pixels, with the image (and keypoints in it) to align from.

        Keypoints are scaled back to the full photo; a face is aligned from the reduced
        image (already decoded) unless it is small there, then from the full-resolution
        region around it (a face width on every side: more than the aligned crop takes).
        """
        inv = 1.0 / photo.scale
        out, sources = [], []
        for det in detections:
            points = (det.keypoints * inv).astype(np.float32)
            box = (det.box[0] * inv, det.box[1] * inv, det.box[2] * inv, det.box[3] * inv)
            out.append(Detection(box=box, keypoints=points, score=det.score))
            if det.width < FULL_RES_FACE_RATIO * crop_size:
                m = (box[2] - box[0]) + (box[3] - box[1])
                region, (ox, oy) = photo.region((box[0] - m, box[1] - m, box[2] + m, box[3] + m))
                sources.append((region, points - np.array([ox, oy], np.float32)))
            else:
                sources.append((photo.image, det.keypoints))
        return out, sources

    def match_embeddings(self, embeddings: np.ndarray, *, threshold: float | None = None,
                         top_k: int | None = None) -> list[Match]:
        """Decisions for ``(N, D)`` unit-length embeddings against the gallery (one search for all)."""
        if len(embeddings) == 0:
            return []
        thresholds = self.thresholds(threshold)
        k = top_k or self.settings.top_k
        emb = np.asarray(embeddings, dtype=np.float32)
        hits = self.gallery.search(emb, k * TEMPLATES_PER_PERSON, model_id=self.model_id)
        negatives = self.gallery.negative_similarities(emb, model_id=self.model_id)
        return [decide(aggregate(((h.person_id, h.name, h.similarity) for h in face_hits), k), thresholds, negs)
                for face_hits, negs in zip(hits, negatives)]

    def match_faces(self, faces: Sequence[Face], *, threshold: float | None = None,
                    top_k: int | None = None) -> list[FaceResult]:
        """Match embedded faces against the gallery."""
        if not faces:
            return []
        emb = np.stack([f.embedding for f in faces if f.embedding is not None])
        if len(emb) != len(faces):
            raise ValueError("every face must be embedded before matching")
        matches = self.match_embeddings(emb, threshold=threshold, top_k=top_k)
        return [FaceResult(face=face, match=m) for face, m in zip(faces, matches)]

    def match_image(self, image: np.ndarray | str | Path | Photo, *, threshold: float | None = None,
                    top_k: int | None = None, still: bool = True) -> ImageResult:
        """Every face in an image with its best person (or unknown); ``still`` as in :meth:`analyze`."""
        faces, times = self.analyze(image, still=still)
        t0 = time.perf_counter()
        results = self.match_faces(faces, threshold=threshold, top_k=top_k)
        search_ms = (time.perf_counter() - t0) * 1e3
        return ImageResult(faces=results, times=dataclasses.replace(times, search=search_ms))

    def match_photos(self, photos: Iterable[Loaded[Photo]], *, threshold: float | None = None, top_k: int | None = None,
                     batch: int = MATCH_BATCH) -> Iterator[tuple[Loaded[Photo], ImageResult | Exception]]:
        """:meth:`match_image` over a stream of photos, in order, with their faces embedded together.

        Each photo is detected and aligned as it arrives (so decoding the next ones, e.g. by
        :func:`~faceapp.vision.images.prefetch`, overlaps with it); the faces of up to ``batch``
        photos then go to the embedder in one call and to the gallery in one search. A
        photo that could not be loaded or analysed comes back with its error instead of a
        result; errors that concern the whole run (model, gallery) are raised.

        Args:
            photos: loaded photos, e.g. from :func:`~faceapp.vision.images.prefetch`.
            threshold: match threshold override.
            top_k: candidates per face.
            batch: photos whose faces are embedded together.
        """
        pending: list[tuple[Loaded[Photo], list[Face] | Exception, StageTimes]] = []

        def flush() -> Iterator[tuple[Loaded[Photo], ImageResult | Exception]]:
            faces = [f for _, found, _ in pending if not isinstance(found, Exception) for f in found]
            t0 = time.perf_counter()
            embedded = self.embed_faces(faces)
            t1 = time.perf_counter()
            results = iter(self.match_faces(embedded, threshold=threshold, top_k=top_k))
            t2 = time.perf_counter()
            per_face = max(1, len(faces))  # the batch's embedding and search time, shared out per face
            for item, found, times in pending:
                if isinstance(found, Exception):
                    yield item, found
                    continue
                mine = [next(results) for _ in found]
                n = len(mine) / per_face * 1e3
                yield item, ImageResult(faces=mine, times=dataclasses.replace(times, embed=(t1 - t0) * n,
                                                                             search=(t2 - t1) * n))
            pending.clear()

        for item in photos:
            if item.error is not None or item.value is None:
                pending.append((item, item.error or ValueError(f"{item.source} was not loaded"), StageTimes()))
            else:
                try:
                    found, times = self.analyze(item.value, embed=False)
                    pending.append((item, found, times))
                except ImageError as exc:
                    pending.append((item, exc, StageTimes()))
            if len(pending) >= batch:
                yield from flush()
        yield from flush()

    def track_frame(self, image: np.ndarray, tracker: Tracker, *, threshold: float | None = None) -> list[TrackResult]:
        """Faces of one video frame, followed across frames and decided per track.

        Detection runs on every frame (on a frame downscaled to ``max_detect_side``); a face
        is embedded only when its track needs it (see :mod:`faceapp.recognise.track`), all such faces
        in one embedder call, and the gallery is searched only for those.

        Args:
            image: RGB uint8 ``(H, W, 3)`` frame.
            tracker: the :class:`~faceapp.recognise.track.Tracker` of this video or camera.
            threshold: match threshold override.
        """
        match = self.thresholds(threshold).match
        if tracker.config.threshold != match:  # the threshold in force now sets the name bar too
            tracker.config = dataclasses.replace(tracker.config, threshold=match)
        faces, _ = self.analyze(image, embed=False, still=False)
        return tracker.update(faces, self.embedder.embed,
                              lambda emb: self.match_embeddings(emb, threshold=threshold))

    def new_tracker(self) -> Tracker:
        """A tracker for one video or camera: a face less like its track than the model's 1:1
        verification threshold is someone else, and a name is first shown a little above the match
        threshold (:class:`~faceapp.recognise.track.TrackerConfig`)."""
        return Tracker(TrackerConfig(switch_similarity=self.verify_threshold(), threshold=self.thresholds().match))

    # ------------------------------------------------------------------ single-face helpers

    def main_face(self, image: np.ndarray | str | Path | Photo, name: str = "the image", *, embed: bool = True) -> Face:
        """The one face a photo is about: the only face, or the clearly largest one.

        Only that face is embedded, and only when ``embed`` is true (several photos' faces
        can then be embedded in one call with :meth:`embed_faces`).

        Raises:
            NoFaceError: no face was found.
            ManyFacesError: several faces of similar size.
        """
        faces, _ = self.analyze(image, embed=False)
        label = str(image) if isinstance(image, (str, Path)) else str(image.path) if isinstance(image, Photo) else name
        if not faces:
            raise NoFaceError(f"no face found in {label}; use a photo where the face is clearly visible")
        if len(faces) > 1 and faces[1].detection.area >= DOMINANT_FACE_RATIO * faces[0].detection.area:
            raise ManyFacesError(
                f"{label} shows {len(faces)} faces of similar size; crop it to one person or use another photo"
            )
        return self.embed_faces(faces[:1])[0] if embed else faces[0]

    def enrolment(self) -> Enrolment:
        """The enrolment use case over this pipeline's gallery, model and thresholds."""
        return Enrolment(
            gallery=self.gallery,
            match=lambda emb: self.match_embeddings(emb, top_k=max(self.settings.top_k, ENROL_CANDIDATES)),
            model_id=self.model_id, same_person=self.verify_threshold(), match_threshold=self.thresholds().match,
            encode=encode_crop if self.settings.store_thumbnails else None,
        )

    def enroll(self, name: str, faces: Sequence[Face], *, sources: Sequence[str | None] | None = None,
               add: bool = False, despite_match: bool = False) -> Person:
        """Store faces from photos as templates of ``name`` in one transaction, under the
        enrolment rules (:class:`~faceapp.recognise.enrol.Enrolment`).

        Args:
            name: the person's name.
            faces: embedded faces (e.g. from :meth:`main_face`).
            sources: per face, the photo's file name.
            add: add to an existing person instead of refusing an existing name.
            despite_match: store them under ``name`` even though they match someone else
                enrolled (the caller knows ``name`` is another person).

        Returns:
            The stored :class:`~faceapp.gallery.store.Person`.

        Raises:
            NoFaceError: no face given.
            DuplicatePersonError, UnlikeSamplesError, LookalikeError: see
                :meth:`~faceapp.recognise.enrol.Enrolment.enrol`.
        """
        if not faces:
            raise NoFaceError("no usable face to enrol")
        names = list(sources) if sources is not None else [None] * len(faces)
        if len(names) != len(faces):
            raise ValueError("one source per face is needed")
        samples = [EnrolSample.from_face(f, Provenance.photo(src or "")) for f, src in zip(faces, names)]
        return self.enrolment().enrol(name, samples, add=add, despite_match=despite_match).person

    def reject(self, name: str, face: Face) -> int:
        """Keep ``face`` as a "this is not ``name``" sample: a probe nearer to it than to
        ``name``'s templates is not named ``name``.

        Returns:
            The negative sample's id.

        Raises:
            UnknownPersonError: nobody called ``name`` is enrolled.
        """
        if face.embedding is None:
            raise ValueError("the face must be embedded before it can be kept as a negative sample")
        crop = encode_crop(face.crop) if self.settings.store_thumbnails else None
        return int(self.gallery.add_negative(name, face.embedding, model_id=self.model_id, crop=crop))

    def verify(self, a: np.ndarray | str | Path, b: np.ndarray | str | Path) -> Verification:
        """Are the main faces of two images the same person?"""
        fa = self.main_face(a, "the first image")
        fb = self.main_face(b, "the second image")
        sim = float(np.dot(fa.embedding, fb.embedding))  # type: ignore[arg-type]
        thr = self.verify_threshold()
        return Verification(similarity=sim, same=same_person(sim, thr), threshold=thr)

    def close(self) -> None:
        """Release the models and the gallery; waits for a detection in progress to finish."""
        with self._detect_lock:
            if self._detector is not None:
                self._detector.close()
                self._detector = None
        if self._gallery is not None:
            self._gallery.close()
            self._gallery = None

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
