"""The measurement commands: bench, calibrate, evaluate and evaluate-video, and the labelled face sets
and saved calibrations they share with ``model import``."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from faceapp.cli.opening import pipeline_from
from faceapp.cli.output import EXIT_OK, emit
from faceapp.errors import FaceappError

log = logging.getLogger("faceapp")


def cmd_bench(args: argparse.Namespace) -> int:
    from faceapp.measure.bench import run_bench

    versus = None
    if args.versus is not None:
        from faceapp.pipeline import Pipeline

        versus = Pipeline(pipeline_from(args).settings.replace(model=args.versus))
    doc, lines = run_bench(
        pipeline_from(args), sizes=args.sizes, queries=args.queries, repeats=args.repeats, seed=args.seed,
        skip_pipeline=args.skip_pipeline, cold_starts=args.cold_starts, progress=not args.json, versus=versus,
    )
    emit(args, doc, lines)
    return EXIT_OK


def face_sets(pipe, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The embedded photos of ``args.people`` and ``args.strangers`` (folders); photos without a usable face are
    logged and left out."""
    from faceapp.measure.evaluate import embed_photos, labelled_photos

    progress = not args.json
    people = embed_photos(pipe, labelled_photos(args.people), cache_dir=args.cache, progress=progress)
    strangers = embed_photos(pipe, labelled_photos(args.strangers), cache_dir=args.cache, progress=progress)
    for s in (people, strangers):
        for f, e in s.failed:
            log.warning("skipped %s: %s", f, e)
    return people, strangers


def cmd_calibrate(args: argparse.Namespace) -> int:
    from faceapp.measure.calibrate import calibrate, calibrate_open_set, calibration_lines

    if args.strangers is None:
        if args.save is not None:
            raise FaceappError("--save keeps an open-set calibration: give --strangers too")
        with pipeline_from(args) as pipe:
            doc, lines = calibrate(pipe, [Path(s) for s in args.sources], gallery_size=args.gallery_size,
                                   templates_per_person=args.templates_per_person, target_fpir=args.target_fpir,
                                   progress=not args.json)
        emit(args, doc, lines)
        return EXIT_OK
    if len(args.sources) != 1:
        raise FaceappError("with --strangers, give one folder of people (a sub-folder of photos per person)")
    args.people = args.sources[0]
    with pipeline_from(args) as pipe:
        people, strangers = face_sets(pipe, args)
        rows = calibrate_open_set(people, strangers, embed=pipe.embedder.embed, target_fpir=args.target_fpir,
                                  lookalike_target=args.lookalike_target, gallery_sizes=args.gallery_sizes,
                                  composites=args.composites, n_boot=args.bootstrap, seed=args.seed,
                                  cache_dir=args.cache, progress=not args.json)
    table = [{"gallery_size": r.gallery_size, "distractors": r.distractors[0], "blended_distractors": r.distractors[1],
            "threshold": r.tuned.threshold, "margin": r.tuned.margin,
            "threshold_ci": [r.threshold_ci.low, r.threshold_ci.high],
            "tuning": {"fpir": r.tuned.rates.fpir, "fnir": r.tuned.rates.fnir, "fnir_ci": [r.fnir_ci.low, r.fnir_ci.high],
                       "wrong_name": r.tuned.rates.wrong_name, "lookalikes_named": r.tuned.lookalikes_named},
            "held_out": {"fpir": r.held_out.fpir, "fnir": r.held_out.fnir, "wrong_name": r.held_out.wrong_name,
                         "lookalikes_named": r.held_out_lookalikes, "strangers": r.held_out.strangers,
                         "enrolled_probes": r.held_out.enrolled}}
           for r in rows]
    lines = [f"target: strangers named <= {args.target_fpir:g}, look-alike composites named <= {args.lookalike_target:g}; "
             "tuned on one half of the identities, held out = the other half", *calibration_lines(rows)]
    if args.save is not None:
        lines.append(save_calibration(args, pipe.model_id, rows, str(pipe.embedder.provenance.get("name", ""))))
    emit(args, table, lines)
    return EXIT_OK


def save_calibration(args: argparse.Namespace, model_id: str, rows: Any, name: str) -> str:
    """Write the tuned points into a calibration file (the user's by default); the line that says so."""
    from faceapp.measure.calibrate import calibration_from_rows
    from faceapp.vision import calibration

    measured = (f"faceapp-cli calibrate PEOPLE --strangers STRANGERS --target-fpir {args.target_fpir:g} "
                f"--lookalike-target {args.lookalike_target:g} --gallery-sizes {' '.join(map(str, args.gallery_sizes))} "
                f"--seed {args.seed}")
    entry = calibration_from_rows(rows, name=name, measured=measured)
    path = calibration.save(model_id, entry, None if args.save == "user" else Path(args.save))
    point = entry.gallery_sizes[entry.default_gallery_size]
    return (f"saved to {path} for model {model_id[:12]}...: threshold {point.match:.4f}, margin {point.margin:.4f} "
            f"at {entry.default_gallery_size} people")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from faceapp.measure.evaluate import embed_photos, evaluate_open_set, labelled_photos, plot_det, select
    from faceapp.recognise.match import Thresholds

    with pipeline_from(args) as pipe:
        people, strangers = face_sets(pipe, args)
        people, strangers = select(people, args.half), select(strangers, args.half)
        same_day = None
        if args.same_day:
            firsts: dict[str, Path] = {}
            for path, name in labelled_photos(args.people):
                firsts.setdefault(name, path)
            same_day = select(embed_photos(pipe, [(p, n) for n, p in firsts.items()], cache_dir=args.cache,
                                           variant="reframed", progress=not args.json), args.half)
        base = pipe.thresholds(args.threshold)
        thresholds = Thresholds(base.match, base.uncertain_band, base.margin if args.margin is None else args.margin)
        ev = evaluate_open_set(people, strangers, thresholds, enrol=args.enrol, same_day=same_day,
                               composites=args.composites, embed=pipe.embedder.embed, n_boot=args.bootstrap,
                               seed=args.seed)
    lines = ev.lines()
    doc = ev.to_dict()
    if args.plot:
        o = ev.other_day
        plot_det({f"margin {thresholds.margin:.2f}": ev.det["margin"], "no margin": ev.det["no_margin"]},
                 {f"threshold {thresholds.match:.3f}": (o.fpir, o.fnir)}, args.plot,
                 title=f"{ev.people} people, {args.enrol} enrolment photo(s) each")
        lines.append(f"DET plot: {args.plot}")
        doc["plot"] = str(args.plot)
    emit(args, doc, lines)
    return EXIT_OK


def cmd_evaluate_video(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np

    from faceapp.measure.video import SCENARIOS, build_scripts, prepare_actors, score_videos
    from faceapp.pipeline import Pipeline
    from faceapp.watch import LiveView

    scenarios = args.scenarios.split(",") if args.scenarios else list(SCENARIOS)
    settings = pipeline_from(args).settings  # the gallery is a temporary one: only these people are enrolled
    with tempfile.TemporaryDirectory(prefix="faceapp-video-") as tmp, \
            Pipeline(settings.replace(gallery=Path(tmp) / "gallery")) as pipe:
        actors = prepare_actors(pipe, args.people, args.strangers, max_people=args.people_shown,
                                max_strangers=args.strangers_shown, seed=args.seed)
        scripts, segments = build_scripts(actors, segment_frames=args.segment_frames,
                                          per_scenario=args.per_scenario, scenarios=scenarios, seed=args.seed)

        def live_view() -> Callable[[np.ndarray], Sequence[Any]]:  # the GUI's and watch's path, one per video
            view = LiveView(pipe)
            return lambda frame: view.step(frame, 0.0, "evaluate-video")[0]

        report = score_videos(scripts, segments, actors, live_view, progress=not args.json)
    doc = {"people_shown": sum(a.name is not None for a in actors),
           "strangers_shown": sum(a.name is None for a in actors), **report.to_dict()}
    emit(args, doc, report.lines())
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add bench, calibrate, evaluate and evaluate-video to the parser."""
    s = sub.add_parser("bench", help="time the embedder runtimes, the pipeline stages, cold start and gallery search")
    s.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                   help="synthetic gallery sizes (templates)")
    s.add_argument("--queries", type=int, default=1000, help="search queries per gallery size")
    s.add_argument("--repeats", type=int, default=50, help="timed frames per pipeline case")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--skip-pipeline", action="store_true", help="only the gallery search")
    s.add_argument("--cold-starts", type=int, default=3, metavar="N",
                   help="time N fresh `faceapp-cli match` processes (0 = skip)")
    s.add_argument("--versus", type=Path, metavar="MODEL",
                   help="also time MODEL (e.g. models/sface_fp32.onnx, the previous default) frame by frame in turn "
                        "with the model in use, and give the ratios")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("calibrate", help="similarity statistics and a 1:N threshold from labelled photos")
    s.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="folder-per-person tree DIR/<name>/*.jpg, or a pairs CSV (file_x,file_y,Decision)")
    s.add_argument("--gallery-size", type=int, default=100, help="people in the gallery the threshold is for")
    s.add_argument("--templates-per-person", type=int, default=1, help="templates each gallery person has")
    s.add_argument("--target-fpir", type=float, default=0.01,
                   help="accepted chance that a stranger matches someone in such a gallery")
    s.add_argument("--strangers", type=Path,
                   help="open-set calibration: a folder of people not among SOURCE's; tunes threshold and margin "
                        "per gallery size on half of the identities and reports on the other half")
    s.add_argument("--gallery-sizes", type=int, nargs="+", default=[10, 100, 1000, 10000],
                   help="with --strangers: gallery sizes to tune for (larger than the set: blended distractors)")
    s.add_argument("--lookalike-target", type=float, default=0.1,
                   help="with --strangers: accepted share of look-alike composites given a name")
    s.add_argument("--composites", type=int, default=200, help="with --strangers: look-alike composites per size")
    s.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples for the intervals")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cache", type=Path, help="folder to keep embeddings between runs")
    s.add_argument("--save", nargs="?", const="user", metavar="FILE",
                   help="with --strangers: keep the tuned thresholds for this model in the user's calibration file "
                        "(or in FILE); they become the model's defaults")
    s.set_defaults(func=cmd_calibrate)

    s = sub.add_parser("evaluate", help="open-set report: who gets a name, on people's photos plus strangers")
    s.add_argument("people", metavar="PEOPLE", type=Path, help="folder with one sub-folder of photos per person")
    s.add_argument("--strangers", type=Path, required=True,
                   help="folder of photos of people not enrolled (loose images or a sub-folder per person)")
    s.add_argument("--enrol", type=int, default=1, help="enrolment photos per person (the first by file name)")
    s.add_argument("--same-day", action="store_true",
                   help="also probe with a re-framed copy of each first enrolment photo")
    s.add_argument("--composites", type=int, default=200, help="look-alike composites of 2-4 enrolled people")
    s.add_argument("--threshold", type=float, help="match threshold (default: the model's)")
    s.add_argument("--margin", type=float, help="runner-up margin (default: the model's)")
    s.add_argument("--half", choices=["all", "tune", "report"], default="all",
                   help="only the identities of one half of the fixed split that calibrate tunes on")
    s.add_argument("--plot", type=Path, help="write the DET plot (FNIR against FPIR) to this PNG")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the intervals (0 = none)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--cache", type=Path, help="folder to keep embeddings between runs")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("evaluate-video", help="tracking report: names shown in synthetic videos of people plus strangers")
    s.add_argument("people", metavar="PEOPLE", type=Path,
                   help="folder with one sub-folder of photos per person (the first photo is enrolled, the second "
                        "appears in the videos)")
    s.add_argument("--strangers", type=Path, required=True,
                   help="folder of photos of people not enrolled (loose images or a sub-folder per person)")
    s.add_argument("--people-shown", type=int, help="enrolled people that appear in the videos (default: all)")
    s.add_argument("--strangers-shown", type=int, help="strangers that appear in the videos (default: all)")
    s.add_argument("--per-scenario", type=int, default=20,
                   help="people in each video other than the cuts video (default: 20)")
    s.add_argument("--segment-frames", type=int, default=30, help="frames each person is shown in the cuts video")
    s.add_argument("--scenarios", help="comma-separated videos to play (default: cuts,walk,crossing,scale,blur)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_evaluate_video)
