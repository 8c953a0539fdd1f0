"""Decision thresholds as data: a versioned file keyed by model id, not part of the model.

A model's id is the sha256 of its file, and every gallery template records the id of the
model that made it. If the thresholds lived in the model file (as its
``faceapp.thresholds`` metadata once did), a new calibration would change the id and force
every gallery to re-embed. So calibrations live in JSON files of this shape::

    {"format": "faceapp.calibration", "version": 1,
     "models": {"<model sha256>": {
         "name": "...", "verify": 0.36, "uncertain_band": 0.08, "default_gallery_size": 1000,
         "gallery_sizes": {"100": {"match": 0.47, "margin": 0.05}, "1000": {...}},
         "measured": "the command that printed these numbers"}}}

The bundled file (``faceapp/data/calibration.json``) covers the shipped models; the
user's own (``calibration.json`` in the user data folder, written by ``faceapp-cli model
import``) covers imported ones and wins over the bundled one. The thresholds used are
those of ``default_gallery_size`` people.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faceapp.errors import ModelError
from faceapp.vision.contract import DEFAULT_MARGIN, RecommendedThresholds

log = logging.getLogger(__name__)

FORMAT = "faceapp.calibration"
VERSION = 1
BUNDLED = Path(__file__).resolve().parent.parent / "data" / "calibration.json"


@dataclass(frozen=True)
class SizePoint:
    """The operating point for one gallery size: threshold and runner-up margin."""

    match: float
    margin: float


@dataclass(frozen=True)
class Calibration:
    """One model's calibration.

    Attributes:
        verify: the 1:1 threshold.
        uncertain_band: width of the "uncertain" band below the match threshold.
        gallery_sizes: operating point per gallery size (people).
        default_gallery_size: the size whose point is the default.
        name: the model's name, for people reading the file.
        measured: how the numbers were measured.
    """

    verify: float
    uncertain_band: float
    gallery_sizes: dict[int, SizePoint]
    default_gallery_size: int
    name: str = ""
    measured: str = ""

    def thresholds(self, gallery_size: int | None = None) -> RecommendedThresholds:
        """The thresholds for ``gallery_size`` people (the smallest calibrated size at least as large;
        the default size when ``None``)."""
        sizes = sorted(self.gallery_sizes)
        size = self.default_gallery_size if gallery_size is None else next((s for s in sizes if s >= gallery_size),
                                                                           sizes[-1])
        point = self.gallery_sizes[size]
        return RecommendedThresholds(match=point.match, uncertain_band=self.uncertain_band, verify=self.verify,
                                     margin=point.margin)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "verify": self.verify, "uncertain_band": self.uncertain_band,
                "default_gallery_size": self.default_gallery_size, "measured": self.measured,
                "gallery_sizes": {str(k): {"match": v.match, "margin": v.margin}
                                  for k, v in sorted(self.gallery_sizes.items())}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        sizes = {int(k): SizePoint(float(v["match"]), float(v.get("margin", DEFAULT_MARGIN)))
                 for k, v in data["gallery_sizes"].items()}
        if not sizes:
            raise ValueError("no gallery sizes")
        default = int(data.get("default_gallery_size", max(sizes)))
        if default not in sizes:
            raise ValueError(f"default_gallery_size {default} is not among the calibrated sizes")
        return cls(verify=float(data["verify"]), uncertain_band=float(data.get("uncertain_band", 0.0)),
                   gallery_sizes=sizes, default_gallery_size=default, name=str(data.get("name", "")),
                   measured=str(data.get("measured", "")))


def user_file() -> Path:
    """The user's calibration file (beside the gallery in the user data folder)."""
    from faceapp.config import default_data_dir

    return default_data_dir() / "calibration.json"


def read_file(path: Path) -> dict[str, Calibration]:
    """Every model's calibration in ``path`` (empty when the file does not exist).

    Raises:
        ModelError: the file is unreadable, of another format or a newer version.
    """
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        if int(data.get("version", 0)) > VERSION:
            raise ModelError(f"calibration file {path} is version {data['version']}; this faceapp reads up to "
                             f"{VERSION}: update faceapp")
        return {sha: Calibration.from_dict(entry) for sha, entry in data.get("models", {}).items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"calibration file {path} is damaged ({exc}); fix or delete it") from exc


def lookup(model_id: str, files: tuple[Path, ...] | None = None) -> Calibration | None:
    """The calibration of ``model_id``: from the user's file, else the bundled one, else ``None``."""
    for path in files if files is not None else (user_file(), BUNDLED):
        found = read_file(path).get(model_id)
        if found is not None:
            return found
    return None


def save(model_id: str, calibration: Calibration, path: Path | None = None) -> Path:
    """Write ``model_id``'s calibration into the user's file (others' entries are kept); atomic."""
    target = path if path is not None else user_file()
    entries = read_file(target)
    entries[model_id] = calibration
    doc = {"format": FORMAT, "version": VERSION, "models": {k: v.to_dict() for k, v in sorted(entries.items())}}
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".calibration-", dir=target.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, target)
    return target
