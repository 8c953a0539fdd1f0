"""The recognition commands: enroll, import, match, verify, reject and watch."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from faceapp.cli.opening import pipeline_from
from faceapp.cli.output import EXIT_ERROR, EXIT_NO_MATCH, EXIT_OK, emit, error_line
from faceapp.config import DEFAULT_FOLDER_FPS
from faceapp.errors import FaceappError
from faceapp.types import Decision
from faceapp.vision.images import person_folders, prefetch

log = logging.getLogger("faceapp")


def cmd_enroll(args: argparse.Namespace) -> int:
    from faceapp.recognise.enrol import EnrolSample, Provenance

    with pipeline_from(args) as pipe:
        samples = [EnrolSample.from_face(pipe.main_face(Path(p)), Provenance.photo(Path(p).name)) for p in args.images]
        done = pipe.enrolment().enrol(args.name, samples, add=args.add, despite_match=args.despite_match)
        person, review = done.person, done.review
        emit(
            args,
            {"person": person.name, "added": len(done.added), "templates": person.templates,
             "samples": [{"source": s.provenance.label} for s in done.added],
             "also_matches": [{"person": lk.name, "similarity": round(lk.similarity, 4)} for lk in review.lookalikes]},
            f"enrolled {person.name}: {len(done.added)} photo(s) added, {person.templates} template(s) in total",
        )
    return EXIT_OK


def cmd_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from faceapp.recognise.enrol import EnrolmentError, EnrolSample, Provenance, low_quality

    people = person_folders(args.dir)
    report: dict[str, Any] = {"enrolled": [], "skipped_people": [], "bad_images": [], "refused": []}
    added: list[EnrolSample] = []
    with pipeline_from(args) as pipe:
        enrolment = pipe.enrolment()
        total = sum(len(imgs) for _, imgs in people)
        todo = {name for name, _ in people if args.add or not pipe.gallery.has_person(name)}
        # Photos are decoded on a background thread while the previous ones are analysed.
        photos = prefetch((img for name, images in people if name in todo for img in images), pipe.load_photo)
        with tqdm(total=total, unit="img", desc="import", disable=args.json or None, file=sys.stderr) as bar, \
                _interrupt_names(report["enrolled"]):
            for name, images in people:
                if name not in todo:
                    report["skipped_people"].append({"person": name, "reason": "already enrolled (use --add)"})
                    bar.update(len(images))
                    continue
                faces, paths = [], []
                for _ in images:
                    item = next(photos)
                    try:
                        if item.error is not None:
                            raise item.error
                        faces.append(pipe.main_face(item.value, embed=False))  # embedded together below
                        paths.append(item.source)
                    except FaceappError as exc:
                        report["bad_images"].append({"image": str(item.source), "error": str(exc)})
                        log.warning("%s", exc)
                    bar.update(1)
                if not faces:
                    report["skipped_people"].append({"person": name, "reason": "no usable face in any photo"})
                    continue
                samples = [EnrolSample.from_face(f, Provenance.photo(p.name))
                           for f, p in zip(pipe.embed_faces(faces), paths)]
                try:
                    done = enrolment.enrol(name, samples, add=args.add, despite_match=args.despite_match,
                                           drop_refused=True)
                except EnrolmentError as exc:
                    report["skipped_people"].append({"person": name, "reason": str(exc)})
                    log.warning("skipped %s: %s", name, exc)
                    continue
                where = {id(s): p for s, p in zip(samples, paths)}
                for r in done.review.refused:
                    report["refused"].append({"image": str(where[id(r.sample)]), "reason": r.message})
                    log.warning("%s", r.message)
                report["enrolled"].append({"person": done.person.name, "added": len(done.added),
                                           "templates": done.person.templates})
                added.extend(done.added)
    flagged = low_quality(s.quality for s in added)
    report["low_quality"] = {"samples": flagged.flagged, "of": flagged.total, "reasons": dict(flagged.reasons)}
    lines = [f"enrolled {e['person']}: {e['added']} photo(s)" for e in report["enrolled"]]
    lines += [f"skipped {s['person']}: {s['reason']}" for s in report["skipped_people"]]
    lines += [f"left out {r['image']}: {r['reason']}" for r in report["refused"]]
    lines.append(
        f"{len(report['enrolled'])} people enrolled, {len(report['skipped_people'])} skipped, "
        f"{len(report['bad_images'])} photo(s) without a usable face, {len(report['refused'])} photo(s) left out"
    )
    if flagged.flagged:
        lines.append(str(flagged))
    emit(args, report, lines)
    return EXIT_OK if report["enrolled"] or report["skipped_people"] else EXIT_ERROR


@contextlib.contextmanager
def _interrupt_names(enrolled: list[dict[str, Any]]) -> Iterator[None]:
    """Turn Ctrl-C into one line that says who this import had already enrolled."""
    try:
        yield
    except KeyboardInterrupt as exc:
        names = [e["person"] for e in enrolled]
        who = f"{len(names)} person{'' if len(names) == 1 else 's'} enrolled ({', '.join(names) or 'nobody'})"
        raise KeyboardInterrupt(f"import interrupted with {who}; run it again to go on: "
                                "people already enrolled are skipped") from exc


def cmd_match(args: argparse.Namespace) -> int:
    docs: list[dict[str, Any]] = []
    lines: list[str] = []
    any_error = any_match = False
    with pipeline_from(args) as pipe:
        photos = prefetch((Path(p) for p in args.images), pipe.load_photo)
        answers = pipe.match_photos(photos, threshold=args.threshold, top_k=args.top_k)
        for path, (_, result) in zip(args.images, answers):
            try:
                if isinstance(result, Exception):
                    raise result
            except FaceappError as exc:
                if not _is_fatal(exc):
                    any_error = True
                    docs.append({"image": path, "faces": [], "error": str(exc)})
                    error_line(exc)  # the message names the image
                    continue
                raise
            faces = []
            if not result.faces:
                lines.append(f"{path}: no face found")
            for i, fr in enumerate(result.faces, 1):
                m = fr.match
                any_match |= m.decision is Decision.MATCH
                faces.append({
                    "box": _box(fr.face),
                    "person": m.person,
                    "similarity": None if m.similarity is None else round(m.similarity, 4),
                    "decision": m.decision.value,
                    "candidates": [{"person": c.name, "similarity": round(c.similarity, 4)} for c in m.candidates],
                })
                lines.append(f"{path}: face {i} {faces[-1]['box']} -> {_answer(m)} [{m.decision.value}]")
            docs.append({"image": path, "faces": faces, "error": None})
    if docs and (args.json or lines):
        emit(args, docs, lines)
    if any_error:
        return EXIT_ERROR
    if args.require_match and not any_match:
        return EXIT_NO_MATCH
    return EXIT_OK


def _box(face: Any) -> list[float]:
    return [round(float(v), 1) for v in face.detection.box]


def _answer(m: Any) -> str:
    """What the text output says about one face: a name only for a match, as the live view does."""
    sim = "-" if m.similarity is None else f"{m.similarity:.3f}"
    if m.decision is Decision.MATCH:
        return f"{m.person} similarity {sim}"
    if m.decision is Decision.AMBIGUOUS and len(m.candidates) >= 2:
        return f"looks like {m.candidates[0].name} or {m.candidates[1].name}, no name given (similarity {sim})"
    return f"{'not sure' if m.decision is Decision.UNCERTAIN else 'unknown'} (best similarity {sim}; --json lists who came close)"


def _is_fatal(exc: FaceappError) -> bool:
    """Errors that concern the whole run (model, gallery) rather than one image."""
    from faceapp.errors import GalleryError, ModelError, SettingsError

    return isinstance(exc, (ModelError, GalleryError, SettingsError))


def cmd_verify(args: argparse.Namespace) -> int:
    with pipeline_from(args) as pipe:
        v = pipe.verify(Path(args.a), Path(args.b))
    verdict = "same person" if v.same else "different people"
    emit(
        args,
        {"a": args.a, "b": args.b, "similarity": round(v.similarity, 4), "same": v.same, "threshold": v.threshold},
        f"{verdict}: similarity {v.similarity:.3f} (threshold {v.threshold:.3f})",
    )
    return EXIT_OK if v.same else EXIT_NO_MATCH


def cmd_reject(args: argparse.Namespace) -> int:
    with pipeline_from(args) as pipe:
        face = pipe.main_face(Path(args.image))
        before = pipe.match_faces([face])[0].match
        nid = pipe.reject(args.name, face)
        after = pipe.match_faces([face])[0].match
    emit(
        args,
        {"image": args.image, "not": args.name, "negative_id": nid,
         "before": {"person": before.person, "decision": before.decision.value},
         "now": {"person": after.person, "decision": after.decision.value}},
        f"kept the face in {args.image} as not {args.name}; it is now "
        f"{after.person or 'not named'} [{after.decision.value}] (was {before.person or 'not named'} "
        f"[{before.decision.value}])",
    )
    return EXIT_OK


def cmd_watch(args: argparse.Namespace) -> int:
    import signal
    import threading

    from faceapp.watch import Event, EventRecorder, watch

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("stopping on signal %d", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    spec: str | int = int(args.source) if args.source.isdigit() else args.source
    if args.snapshots and not args.record:
        raise FaceappError("--snapshots keeps face crops with recorded events; add --record")
    with pipeline_from(args) as pipe:
        keep = EventRecorder(pipe.gallery.store, args.retention_days, args.device, args.snapshots) \
            if args.record else None

        def emit(event: Event) -> None:
            print(json.dumps(event.as_dict(), ensure_ascii=False), flush=True)
            if keep is not None:
                keep(event)

        frames = watch(pipe, spec, emit, stop, max_frames=args.max_frames, fast=args.fast, folder_fps=args.folder_fps)
    log.info("watched %d frame(s)", frames)
    return EXIT_OK


def _positive_rate(text: str) -> float:
    """A rate in frames a second, more than 0."""
    try:
        rate = float(text)
    except ValueError:
        rate = 0.0
    if not 0.0 < rate <= 1000.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate between 0 and 1000 frames a second (e.g. 2 or 0.5)")
    return rate


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add enroll, import, match, verify, reject and watch to the parser."""
    s = sub.add_parser("enroll", help="enrol one person from one or more photos (largest face of each)")
    s.add_argument("name")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("--add", action="store_true", help="add the photos to an existing person")
    s.add_argument("--despite-match", action="store_true",
                   help="store them under NAME even though they match someone already enrolled (NAME is someone else)")
    s.set_defaults(func=cmd_enroll)

    s = sub.add_parser("import", help="enrol a folder-per-person tree DIR/<name>/*.jpg")
    s.add_argument("dir", metavar="DIR")
    s.add_argument("--add", action="store_true", help="add photos to people already enrolled")
    s.add_argument("--despite-match", action="store_true",
                   help="enrol a folder even when its photos match someone enrolled under another name")
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("match", help="match every face in every image against the gallery")
    s.add_argument("images", nargs="+", metavar="IMAGE")
    s.add_argument("--threshold", type=float, help="match threshold (cosine similarity)")
    s.add_argument("--top-k", type=int, default=None, help="candidates to report per face")
    s.add_argument("--require-match", action="store_true", help="exit 1 when no face matches anyone")
    s.set_defaults(func=cmd_match)

    s = sub.add_parser("verify", help="are the main faces of two photos the same person?")
    s.add_argument("a", metavar="A")
    s.add_argument("b", metavar="B")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("reject", help='"this is not NAME": keep the main face of IMAGE as a negative sample of NAME')
    s.add_argument("image", metavar="IMAGE")
    s.add_argument("--not", dest="name", required=True, metavar="NAME", help="the person this face is not")
    s.set_defaults(func=cmd_reject)

    s = sub.add_parser("watch", help="headless device: report who is seen, one JSON line per event (stops on SIGTERM)")
    s.add_argument("source", metavar="SOURCE", help="camera index (0), stream URL (rtsp://...), video file or image folder")
    s.add_argument("--max-frames", type=int, help="stop after this many frames")
    s.add_argument("--fast", action="store_true",
                   help="batch work: read video files and image folders as fast as frames are processed "
                        "(not real time; by default a video plays at its own frame rate)")
    s.add_argument("--folder-fps", type=_positive_rate, metavar="RATE",
                   help=f"images a second from an image folder (default: the folder_fps setting, {DEFAULT_FOLDER_FPS:g})")
    s.add_argument("--record", action="store_true", help="keep the events in the gallery's history (folder or PostgreSQL)")
    s.add_argument("--retention-days", type=float, default=30.0, help="with --record: keep events this many days")
    s.add_argument("--device", help="with --record: this device's name (default: the host name)")
    s.add_argument("--snapshots", action="store_true",
                   help="with --record: keep each event's aligned face crop (biometric data, erased with the person)")
    s.set_defaults(func=cmd_watch)
