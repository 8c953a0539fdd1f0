"""The people and gallery commands: list, remove, rename, info, check, reembed, events and gallery
copy / key / rekey."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from faceapp import __version__
from faceapp.cli.opening import gallery_from, pipeline_from
from faceapp.cli.output import EXIT_ERROR, EXIT_OK, emit, progress_bar
from faceapp.config import gallery_arg
from faceapp.errors import FaceappError


def cmd_list(args: argparse.Namespace) -> int:
    import datetime as dt

    with gallery_from(args) as gallery:
        people = gallery.list_persons(args.search)
    doc = [{"person": p.name, "templates": p.templates,
            "enrolled": dt.datetime.fromtimestamp(p.created_at).isoformat(timespec="seconds")} for p in people]
    lines = [f"{d['person']}\t{d['templates']} template(s)\tenrolled {d['enrolled']}" for d in doc]
    lines.append(f"{len(people)} people")
    emit(args, doc, lines)
    return EXIT_OK


def cmd_remove(args: argparse.Namespace) -> int:
    with gallery_from(args) as gallery:
        e = gallery.remove(args.name)
    text = (f"removed {args.name}: erased {e.templates} template(s), {e.crops} face crop(s) and "
            f"{e.negatives} negative sample(s) from the database and the index, and destroyed their data key: "
            "copies left in backups, replicas or free disk space can no longer be decrypted (only someone who "
            "kept both such a copy and this gallery's key could)")
    if not e.log_cleared:
        text += "; another faceapp process is reading the gallery, so its write-ahead log is cleared when it closes"
    emit(args, {"removed": args.name, "templates": e.templates, "crops": e.crops, "negatives": e.negatives,
                 "log_cleared": e.log_cleared}, text)
    return EXIT_OK


def cmd_rename(args: argparse.Namespace) -> int:
    with gallery_from(args) as gallery:
        person = gallery.rename(args.old, args.new)
    emit(args, {"renamed": args.old, "to": person.name}, f"renamed {args.old} to {person.name}")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    from faceapp.config import settings_path

    with pipeline_from(args) as pipe:
        emb, det = pipe.embedder_file, pipe.detector_file
        gallery = pipe.gallery
        stats = gallery.info()
        thr = pipe.thresholds()
        doc = {
            "version": __version__,
            "settings_file": str(args.config or settings_path()),
            "embedder": {"path": str(emb.path), "sha256": emb.sha256, "source": emb.source,
                         "licence": emb.licence, "bundled": emb.bundled,
                         "provenance": pipe.embedder.provenance},
            "detector": {"path": str(det.path), "sha256": det.sha256, "source": det.source, "licence": det.licence,
                         "runtime": pipe.detector.runtime_name, "runtime_note": pipe.detector_note},
            "provider": pipe.embedder.provider,
            "precision": pipe.embedder.precision,
            "provider_note": pipe.embedder.provider_note,
            "runtime": pipe.embedder.runtime_name,
            "thresholds": {"match": thr.match, "uncertain_band": thr.uncertain_band,
                           "verify": pipe.verify_threshold()},
            "gallery": stats,
        }
    lines = [
        f"faceapp {__version__}",
        f"settings:  {doc['settings_file']}",
        f"embedder:  {emb.path}",
        f"           sha256 {emb.sha256} ({emb.source}{', ' + emb.licence if emb.licence else ''})",
        f"detector:  {det.path}",
        f"           sha256 {det.sha256} ({det.source}), on {pipe.detector_note}",
        f"runtime:   {pipe.embedder.provider_note}",
        f"threshold: match {thr.match:.3f}, uncertain band {thr.uncertain_band:.3f}, verify {pipe.verify_threshold():.3f}",
        f"gallery:   {stats['path']} (id {stats['gallery_id']}, generation {stats['generation']}"
        + (f", history {stats['history']})" if stats.get("history") else ")"),
        "           encryption: " + ("on (AES-256-GCM, a data key per person" if stats["encryption"]["encrypted"] else
                                   f"OFF for {stats['encryption']['people_not_encrypted']} people (")
        + f"; key in {stats['encryption']['key_kept'] or 'no key on this device'})",
        f"           {stats['people']} people, {stats['templates']} templates, {stats['index_kind'] or 'no'} index "
        f"({stats['index_file_bytes']} bytes on disk), database {stats['database_bytes']} bytes",
        "           templates by model: " + (", ".join(f"{m[:12]}... {n}" for m, n in stats["model_ids"].items()) or "none"),
        ("           server: PostgreSQL " + str(stats.get("server_version")) + (", TLS" if stats.get("tls") else ", no TLS")
         + f"; this device's index in {gallery.root}" if stats.get("kind") == "postgresql" else
         "           permissions: " + ("private (folder 0700, files 0600)" if stats["private"] else
                                       "READABLE BY OTHERS: " + ", ".join(f"{k} {v}" for k, v in stats["permissions"].items()))
         + (", read-only" if stats["read_only"] else "")),
    ]
    emit(args, doc, lines)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from faceapp.gallery.reembed import repair_damaged
    from faceapp.vision.images import decode_crop

    with pipeline_from(args) as pipe:
        gallery = pipe.gallery
        sound = gallery.check()
        report = repair_damaged(gallery, pipe.model_id, pipe.embedder.embed, decode_crop)
        lines = [f"database: {sound}"]
        for name in report.by_person():
            rows = [d for d in report.damaged if d.name == name]
            lines.append(f"{name}: {len(rows)} damaged template(s) (ids {', '.join(str(d.row_id) for d in rows)})")
        if not report.damaged:
            lines.append("no damaged template")
        else:
            lines.append(f"re-embedded {len(report.repaired)} from their face crops")
        if report.left:
            lines.append("no face crop to embed again (negative samples, or enrolled without crops): "
                         f"enrol or mark {', '.join(sorted({d.name for d in report.left}))} again")
    emit(args, {"database": sound,
                 "damaged": [{"person": d.name, "kind": d.kind, "id": d.row_id} for d in report.damaged],
                 "reembedded": [d.row_id for d in report.repaired], "left": [d.row_id for d in report.left]}, lines)
    return EXIT_OK if sound == "ok" and not report.left else EXIT_ERROR


def cmd_reembed(args: argparse.Namespace) -> int:

    from faceapp.gallery.reembed import reembed
    from faceapp.vision.images import decode_crop

    with pipeline_from(args) as pipe:
        gallery, model_id = pipe.gallery, pipe.model_id
        if gallery.store.state().model_id in (None, model_id) and not gallery.store.reembed_status(model_id).pending:
            emit(args, {"embedded": 0, "model_id": model_id}, "the gallery already uses this model; nothing to do")
            return EXIT_OK
        with progress_bar(args, "face", "re-embed") as progress:
            report = reembed(gallery, model_id, pipe.embedder.embed, decode_crop, progress=progress)
    assert report is not None
    lines = [f"re-embedded {report.embedded} face crop(s) with model {model_id[:12]}..."
             + (f" ({report.resumed} done by an earlier, interrupted run)" if report.resumed else ""),
             f"erased {report.erased.templates} template(s) of the old model"]
    if report.without_crop:
        lines.append("no stored face crop for: " + ", ".join(report.without_crop) + "; enrol them again")
    emit(args, {"embedded": report.embedded, "resumed": report.resumed, "erased": report.erased.templates,
                 "model_id": model_id, "needs_reenrolment": list(report.without_crop)}, lines)
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    import csv
    import datetime as dt

    from faceapp.watch import require_event_store

    with gallery_from(args) as gallery:
        rows = require_event_store(gallery.store).events(since=args.since, person=args.person,
                                                         snapshots=args.export_snapshots is not None)
    docs = [{"time": dt.datetime.fromtimestamp(e.time).isoformat(timespec="seconds"), "person": e.person,
             "decision": e.decision, "similarity": None if e.similarity is None else round(e.similarity, 4),
             "track_id": e.track_id, "box": [round(float(v), 1) for v in e.box] if e.box else None,
             "source": e.source, "device": e.device, "snapshot": e.has_snapshot}
            for e in rows]
    if args.export_snapshots is not None:
        out = Path(args.export_snapshots)
        out.mkdir(parents=True, exist_ok=True)
        written = 0
        for i, e in enumerate(rows):
            if e.snapshot:
                stamp = dt.datetime.fromtimestamp(e.time).strftime("%Y%m%dT%H%M%S")
                (out / f"{stamp}-{i:06d}-{e.person or e.decision}.jpg").write_bytes(e.snapshot)
                written += 1
        emit(args, {"exported": written, "folder": str(out)}, f"wrote {written} snapshot(s) to {out}")
        return EXIT_OK
    if args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(docs[0]) if docs else ["time"], lineterminator="\n")
        w.writeheader()
        w.writerows({**d, "box": " ".join(map(str, d["box"] or []))} for d in docs)
        return EXIT_OK
    emit(args, docs, [f"{d['time']}  {d['device']}  {d['source']}  track {d['track_id']}  "
                       f"{d['person'] or '-'}  {d['decision']}  {d['similarity']}" for d in docs]
          + [f"{len(docs)} event(s)"])
    return EXIT_OK


def _since(text: str) -> float:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date/time, as Unix time."""
    import datetime as dt
    import time

    units = {"d": 86400, "h": 3600, "m": 60}
    if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(text[:-1]) * units[text[-1]]
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a time ago (7d, 12h, 30m) nor a date (2026-11-01)") \
            from None


def cmd_gallery_copy(args: argparse.Namespace) -> int:

    from faceapp.gallery.copy import copy_gallery

    with progress_bar(args, "template", "copy") as progress:
        report, where = copy_gallery(args.src, args.dst, progress=progress)
    counts = ", ".join(f"{n} of model {m[:12]}..." for m, n in report.templates.items()) or "no templates"
    lines = [f"copied {report.people} people ({counts}, {report.negatives} negative samples) to {where}; "
             "counts and model ids checked"]
    if report.skipped:
        lines.append("not copied (no templates; enrol them again): " + ", ".join(report.skipped))
    emit(args, {"people": report.people, "templates": report.templates, "negatives": report.negatives,
                 "skipped": list(report.skipped), "destination": where}, lines)
    return EXIT_OK


def cmd_gallery_key(args: argparse.Namespace) -> int:
    from faceapp.gallery.keys import KeyStore, ask_passphrase, export_key, import_key

    keys = KeyStore()
    if args.key_command == "import":
        gid, where = import_key(keys, args.file, ask_passphrase(f"passphrase of {args.file}: "), replace=args.replace,
                               keep_passphrase=args.keep_passphrase)
        emit(args, {"gallery_id": gid, "kept": where}, f"imported the key of gallery {gid}; kept in {where}")
        return EXIT_OK
    passphrase = ask_passphrase("passphrase to protect the exported key: ", confirm=True) if args.passphrase else None
    if args.passphrase and passphrase is None:
        raise FaceappError("--passphrase needs a terminal to type it in, or FACEAPP_KEY_PASSPHRASE")
    with gallery_from(args) as gallery:
        state = gallery.store.state()
        export_key(keys, state.gallery_id, gallery.store.location, args.file, passphrase)
    emit(args, {"gallery_id": state.gallery_id, "file": str(args.file), "protected": passphrase is not None},
          f"exported the key of gallery {state.gallery_id} to {args.file}"
          + (" (protected by the passphrase)" if passphrase else "; anyone with this file and a copy of the gallery "
             "can read it: keep it safe, or export with --passphrase"))
    return EXIT_OK


def cmd_gallery_rekey(args: argparse.Namespace) -> int:
    with gallery_from(args) as gallery:
        where = gallery.rekey()
    emit(args, {"kept": where}, f"the gallery has a new key, kept in {where}; the old key no longer opens it: "
          "export the new one (`gallery key export FILE`) to every other device that uses the gallery")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add list, remove, rename, reembed, events, gallery, check and info to the parser."""
    s = sub.add_parser("list", help="list enrolled people")
    s.add_argument("--search", help="only names containing this text")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("remove", help="erase a person: templates, face crops and negative samples, from every file")
    s.add_argument("name")
    s.set_defaults(func=cmd_remove)

    s = sub.add_parser("rename", help="rename a person")
    s.add_argument("old")
    s.add_argument("new")
    s.set_defaults(func=cmd_rename)

    s = sub.add_parser("reembed", help="rebuild the gallery's templates with the current model from the stored face crops")
    s.set_defaults(func=cmd_reembed)

    s = sub.add_parser("events", help="the kept event history of the gallery (watch --record, the app's record_events)")
    s.add_argument("--since", type=_since, help="only events since 7d / 12h / 30m ago or a date (2026-11-01T08:00)")
    s.add_argument("--person", help="only this person's events")
    s.add_argument("--csv", action="store_true", help="print CSV")
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print JSON (as the global --json)")
    s.add_argument("--export-snapshots", metavar="DIR",
                   help="write the events' kept face snapshots as JPEG files into DIR")
    s.set_defaults(func=cmd_events)

    s = sub.add_parser("gallery", help="manage whole galleries")
    gsub = s.add_subparsers(dest="gallery_command", required=True, metavar="ACTION")
    c = gsub.add_parser("copy", help="copy a gallery into an empty one: folder <-> PostgreSQL, checked at the end")
    c.add_argument("src", type=gallery_arg, metavar="SRC", help="gallery folder or PostgreSQL address")
    c.add_argument("dst", type=gallery_arg, metavar="DST", help="empty gallery folder or PostgreSQL database")
    c.set_defaults(func=cmd_gallery_copy)
    k = gsub.add_parser("key", help="move the gallery's key to another device (export to a file, import it there)")
    ksub = k.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    c = ksub.add_parser("export", help="write the gallery's key to FILE (0600)")
    c.add_argument("file", type=Path, metavar="FILE")
    c.add_argument("--passphrase", action="store_true", help="protect the file with a passphrase (asked for)")
    c.set_defaults(func=cmd_gallery_key)
    c = ksub.add_parser("import", help="keep the key in FILE on this device (asks for its passphrase if it has one)")
    c.add_argument("file", type=Path, metavar="FILE")
    c.add_argument("--replace", action="store_true", help="replace a different key this device holds for the gallery")
    c.add_argument("--keep-passphrase", action="store_true",
                   help="keep the key protected by its passphrase here too (asked for whenever the gallery is opened)")
    c.set_defaults(func=cmd_gallery_key)
    c = gsub.add_parser("rekey", help="give the gallery a new key (its people's data keys are wrapped again)")
    c.set_defaults(func=cmd_gallery_rekey)

    s = sub.add_parser("check", help="check the gallery: list damaged templates by person and embed them again "
                                     "from their face crops")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("info", help="models, hashes, provider, thresholds, gallery size and location")
    s.set_defaults(func=cmd_info)
