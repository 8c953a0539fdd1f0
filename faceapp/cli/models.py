"""The model commands: ``model import`` (bring your own embedder) and ``model weights`` (weigh a fused
model's networks)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from faceapp.cli.measurement import face_sets, save_calibration
from faceapp.cli.opening import pipeline_from
from faceapp.cli.output import EXIT_OK, emit
from faceapp.errors import FaceappError

TEMPLATES = ("arcface", "omz")


def _size(text: str) -> tuple[int, int]:
    """``112`` or ``112x96`` (height x width) as ``(h, w)``."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size; give 112 or HEIGHTxWIDTH such as 112x96") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 16:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size of at least 16 pixels; give 112 or 112x96")
    return parts[0], parts[1]


def _triple(text: str) -> tuple[float, float, float]:
    """``127.5`` or ``123.7,116.3,103.5`` as three per-channel values."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or three numbers separated by commas") from None
    if len(parts) not in (1, 3):
        raise argparse.ArgumentTypeError(f"{text!r}: give one value or three (one per channel, in --color order)")
    return (parts[0],) * 3 if len(parts) == 1 else (parts[0], parts[1], parts[2])


def cmd_model_import(args: argparse.Namespace) -> int:
    from faceapp.vision import models
    from faceapp.vision.contract import ARCFACE_TEMPLATE_112, OMZ_TEMPLATE_96X112, Contract

    template, frame = (ARCFACE_TEMPLATE_112, (112, 112)) if args.template == "arcface" else (OMZ_TEMPLATE_96X112, (112, 96))
    try:
        contract = Contract(input_name=args.input or "", output_name=args.output or "", input_size=args.input_size,
                            layout=args.layout, color=args.color, mean=args.mean, std=args.std, template=template,
                            template_size=frame)
    except ValueError as exc:
        raise FaceappError(f"{exc}; check the preprocessing options") from exc
    if (args.people is None) != (args.strangers is None):
        raise FaceappError("to calibrate the model give both --people and --strangers")
    file = models.import_model(args.file, contract, name=args.name,
                               provenance={"source": str(Path(args.file).resolve()), "imported_by": "faceapp-cli model import",
                                           "licence": args.licence or "not stated"})
    lines = [f"imported {args.file} as {file.path} (model id {file.sha256[:12]}...)"]
    doc: dict[str, Any] = {"path": str(file.path), "sha256": file.sha256}
    if args.people is not None:
        from faceapp.measure.calibrate import calibrate_open_set

        args.model, args.target_fpir, args.lookalike_target = file.path, 0.01, 0.1
        args.gallery_sizes, args.seed, args.save, args.cache = [10, 100, 1000], 0, "user", None
        with pipeline_from(args) as pipe:
            people, strangers = face_sets(pipe, args)
            rows = calibrate_open_set(people, strangers, embed=pipe.embedder.embed, gallery_sizes=args.gallery_sizes,
                                      progress=not args.json)
            lines.append(save_calibration(args, pipe.model_id, rows, Path(args.file).stem))
        doc["calibrated"] = True
    else:
        lines.append("not calibrated: its thresholds are untuned until `faceapp-cli --model "
                     f"{file.path} calibrate PEOPLE --strangers STRANGERS --save` runs")
    lines.append(f"use it with --model {file.path} (or set model in the settings file or the GUI's settings); "
                 "re-embed the gallery with `faceapp-cli --model ... reembed`")
    emit(args, doc, lines)
    return EXIT_OK


def cmd_model_weights(args: argparse.Namespace) -> int:
    from faceapp.measure.fusion import best, weight_sweep
    from faceapp.vision.embed import FusedEmbedder

    with pipeline_from(args) as pipe:
        emb = pipe.embedder
        if not isinstance(emb, FusedEmbedder) or len(emb.members) != 2:
            raise FaceappError("the model is not a fusion of two networks; give --model FUSED.json")
        people, strangers = face_sets(pipe, args)
        dims, made = [m.dim for m, _ in emb.members], [w for _, w in emb.members]
        names = [m.model_path.name for m, _ in emb.members]
    rows = weight_sweep(people, strangers, dims, made, half=args.half, target_fpir=args.target_fpir)
    top = best(rows)
    lines = [f"{args.half} half: one enrolment photo, threshold where {100 * args.target_fpir:g} % of strangers "
             f"get a name; weight of {names[0]} (the rest: {names[1]})"]
    lines += [f"  {r.weights[0]:.2f}: threshold {r.threshold:.4f}, named correctly {100 * r.correct:.1f} %, "
              f"wrong name {100 * r.wrong_name:.2f} %" for r in rows]
    lines.append(f"best: {top.weights[0]:.2f} / {top.weights[1]:.2f}")
    doc = {"half": args.half, "members": names, "best": list(top.weights),
           "rows": [{"weights": list(r.weights), "threshold": r.threshold, "correct": r.correct,
                     "wrong_name": r.wrong_name} for r in rows]}
    emit(args, doc, lines)
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add model import and model weights to the parser."""
    s = sub.add_parser("model", help="bring your own embedder; weigh a fused model's networks")
    msub = s.add_subparsers(dest="model_command", required=True, metavar="ACTION")
    c = msub.add_parser("import", help="copy an ONNX embedder into the user's model folder with its preprocessing "
                                       "written into it (and calibrate it when photos are given)")
    c.add_argument("file", type=Path, metavar="FILE.onnx", help="an ArcFace-family ONNX embedder")
    c.add_argument("--input-size", type=_size, default=(112, 112), metavar="SIZE",
                   help="network input, 112 or HEIGHTxWIDTH (default 112)")
    c.add_argument("--color", choices=["RGB", "BGR"], default="RGB", help="channel order the network expects")
    c.add_argument("--mean", type=_triple, default=(127.5, 127.5, 127.5), metavar="M",
                   help="subtracted from 0-255 pixels: one value or three, in --color order (default 127.5)")
    c.add_argument("--std", type=_triple, default=(127.5, 127.5, 127.5), metavar="S",
                   help="then divided by: one value or three (default 127.5)")
    c.add_argument("--template", choices=TEMPLATES, default="arcface",
                   help="alignment: arcface (5-point ArcFace template on 112x112, insightface and AdaFace models) "
                        "or omz (Open Model Zoo's 96x112 face stretched to the input)")
    c.add_argument("--layout", choices=["NCHW", "NHWC"], default="NCHW", help="input layout (default NCHW)")
    c.add_argument("--input", help="input name (default: the graph's first)")
    c.add_argument("--output", help="embedding output name (default: the graph's first)")
    c.add_argument("--name", help="file name of the copy, without .onnx (default: the file's)")
    c.add_argument("--licence", help="the model's licence, recorded in the copy")
    c.add_argument("--people", type=Path, help="calibrate: folder with one sub-folder of photos per person")
    c.add_argument("--strangers", type=Path, help="calibrate: photos of people not among --people")
    c.set_defaults(func=cmd_model_import, cache=None)
    c = msub.add_parser("weights", help="score a fused model's weights on labelled photos (one enrolment photo each)")
    c.add_argument("people", type=Path, metavar="PEOPLE", help="folder with one sub-folder of photos per person")
    c.add_argument("--strangers", type=Path, required=True, help="photos of people not among PEOPLE")
    c.add_argument("--half", choices=["all", "tune", "report"], default="tune",
                   help="identities to score on (default tune: choose there, report on the other half)")
    c.add_argument("--target-fpir", type=float, default=0.01, help="share of strangers allowed a name")
    c.add_argument("--cache", type=Path, help="folder to keep embeddings between runs")
    c.set_defaults(func=cmd_model_weights)
