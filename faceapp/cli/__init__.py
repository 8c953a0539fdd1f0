"""``faceapp-cli``: the headless face matcher.

Exit codes: 0 success; 1 no match where one was required (``verify`` says different,
``match --require-match`` found nobody); 2 usage or input error. Every error is one line
on stderr that says what to do.

This module holds the global options, the wiring of the parser and the error handling; each
group of commands is a module that adds its own sub-commands (``register``):

- ``recognition``: enroll, import, match, verify, reject, watch
- ``people``: list, remove, rename, info, check, reembed, events, gallery copy / key / rekey
- ``measurement``: bench, calibrate, evaluate, evaluate-video
- ``models``: model import, model weights

``output`` is what every command prints (results, the error line, progress, exit codes) and
``opening`` the pipeline and gallery that the global options name.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from faceapp import __version__
from faceapp.cli import measurement, models, people, recognition
from faceapp.cli.output import EXIT_BROKEN_PIPE, error_line
from faceapp.config import DETECTORS, PRECISIONS, PROVIDERS, gallery_arg
from faceapp.errors import FaceappError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: the global options, then each group's commands."""
    p = argparse.ArgumentParser(prog="faceapp-cli", description="Private, local face matching.")
    p.add_argument("--version", action="version", version=f"faceapp {__version__}")
    p.add_argument("--gallery", type=gallery_arg, metavar="FOLDER|DSN",
                   help="gallery folder (default: in the user data directory) or PostgreSQL address "
                        "postgresql://user@host:port/dbname (password from ~/.pgpass or PGPASSWORD)")
    p.add_argument("--model", type=Path,
                   help="embedder: an ONNX file with faceapp's contract (see `model import`) or a fused model's "
                        ".json (default: the bundled fusion of SFace and Open Model Zoo's face-reidentification-retail-0095)")
    p.add_argument("--provider", choices=PROVIDERS,
                   help="where the embedder runs: auto (default: CUDA if it works, else the faster CPU runtime, "
                        "timed once and cached), cuda, openvino or cpu (onnxruntime)")
    p.add_argument("--precision", choices=PRECISIONS,
                   help="embedder precision on OpenVINO: int8 (default: about twice as fast, embeddings within a "
                        "cosine of 0.99 of fp32) or fp32")
    p.add_argument("--detector", choices=DETECTORS, help="face detector model: full (default) or short range")
    p.add_argument("--config", type=Path, help="settings file (default: the user config directory)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    recognition.register(sub)
    people.register(sub)
    measurement.register(sub)
    models.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``argv``, default the process's arguments) and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="faceapp-cli: %(message)s", stream=sys.stderr)
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # a reader that has gone is noticed here, not at interpreter exit
        return code
    except FaceappError as exc:
        error_line(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"faceapp-cli: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader closed the pipe (``| head``): stop quietly, as other command-line tools do.
        # stdout is pointed at /dev/null so the interpreter's final flush cannot fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
