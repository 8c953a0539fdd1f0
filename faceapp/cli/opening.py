"""The pipeline and the gallery that the global options (--gallery, --model, --config, ...) name."""

from __future__ import annotations

import argparse

from faceapp.cli.output import progress_bar
from faceapp.config import Settings, load_settings


def pipeline_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ``Pipeline`` of the settings file with the global options laid over it."""
    from faceapp.pipeline import Pipeline

    settings: Settings = load_settings(args.config)
    settings = settings.replace(
        gallery=args.gallery, model=args.model, provider=args.provider, detector=args.detector,
        precision=args.precision,
    )
    return Pipeline(settings)


def gallery_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The gallery alone, without models: for the commands that only read or manage it."""
    from faceapp.gallery.gallery import open_gallery

    settings = load_settings(args.config).replace(gallery=args.gallery)
    with progress_bar(args, "person", "encrypt") as progress:  # shown only while a gallery is encrypted
        return open_gallery(settings.gallery_spec(), index=settings.index, progress=progress)
