"""The one place that finds model files and checks that they are intact.

Bundled models live in a ``models`` folder with a ``manifest.json`` that records each
file's source package, version, member path, licence and sha256. A bundled file whose
hash does not match is refused; a model the user points to elsewhere is accepted and
its hash reported.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from faceapp.errors import ModelError
from faceapp.private import sha256_file

ROLE_DETECTOR = {"full": "detector-full-range", "short": "detector-short-range"}
ROLE_EMBEDDER = "embedder"


@dataclass(frozen=True)
class ModelFile:
    """A model file that was found and checked.

    Attributes:
        path: absolute path.
        sha256: hex digest of the file's bytes.
        bundled: the file is one of faceapp's own (listed in the manifest).
        source: where it came from (package==version member), or ``"user-supplied"``.
        licence: its licence, when known.
    """

    path: Path
    sha256: str
    bundled: bool
    source: str
    licence: str | None


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    env = os.environ.get("FACEAPP_MODELS_DIR")
    if env:
        dirs.append(Path(env))
    frozen = getattr(sys, "_MEIPASS", None)  # PyInstaller bundle
    if frozen:
        dirs.append(Path(frozen) / "models")
    package = Path(__file__).resolve().parent.parent  # faceapp/
    dirs.append(package / "_models")  # installed wheel
    dirs.append(package.parent / "models")  # source checkout / editable install
    return dirs


@lru_cache(maxsize=1)
def models_dir() -> Path:
    """The folder holding the bundled models and their manifest.

    Raises:
        ModelError: no folder with a ``manifest.json`` was found.
    """
    for d in _candidate_dirs():
        if (d / "manifest.json").is_file():
            return d.resolve()
    searched = ", ".join(str(d) for d in _candidate_dirs())
    raise ModelError(
        f"faceapp's model folder was not found (looked in {searched}); reinstall faceapp "
        "or set FACEAPP_MODELS_DIR to a folder built by models/build.py"
    )


@lru_cache(maxsize=1)
def manifest() -> dict[str, Any]:
    path = models_dir() / "manifest.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"model manifest {path} is unreadable ({exc}); reinstall faceapp") from exc
    return data


def _entry_for_role(role: str) -> dict[str, Any]:
    for entry in manifest()["files"]:
        if entry["role"] == role:
            return dict(entry)
    raise ModelError(f"the model manifest lists no {role}; reinstall faceapp")


def bundled_path(role: str) -> Path:
    """Path of the bundled model for ``role`` (not checked yet)."""
    return models_dir() / _entry_for_role(role)["file"]


def check(path: Path) -> ModelFile:
    """Find out what ``path`` is and verify it when it is one of the bundled models.

    Raises:
        ModelError: the file is missing or unreadable, or it is a bundled model whose
            sha256 differs from the manifest (damaged or tampered with).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; check --model or reinstall faceapp")
    try:
        digest = sha256_file(path)
    except OSError as exc:
        raise ModelError(f"model file {path} cannot be read ({exc.strerror})") from exc
    resolved = path.resolve()
    try:
        mdir = models_dir()
    except ModelError:
        mdir = None
    if mdir is not None and resolved.parent == mdir:
        for entry in manifest()["files"]:
            if entry["file"] == resolved.name:
                if digest != entry["sha256"]:
                    raise ModelError(
                        f"model file {resolved} is damaged or was modified (sha256 {digest[:12]}..., "
                        f"expected {entry['sha256'][:12]}...); reinstall faceapp or rebuild it with "
                        "`python models/build.py`"
                    )
                pkg = next(p for p in manifest()["packages"] if p["name"] == entry["package"])
                return ModelFile(
                    path=resolved,
                    sha256=digest,
                    bundled=True,
                    source=f"{pkg['name']}=={pkg['version']} {entry['member']}",
                    licence=entry.get("licence"),
                )
    return ModelFile(path=resolved, sha256=digest, bundled=False, source="user-supplied", licence=None)


def resolve_detector(kind: str) -> ModelFile:
    """The checked bundled detector model, ``kind`` = ``"full"`` or ``"short"``."""
    if kind not in ROLE_DETECTOR:
        raise ModelError(f"unknown detector {kind!r}; use 'full' or 'short'")
    return check(bundled_path(ROLE_DETECTOR[kind]))


def resolve_embedder(path: Path | None) -> ModelFile:
    """The checked embedder: ``path`` when given, else the bundled one."""
    return check(path if path is not None else bundled_path(ROLE_EMBEDDER))


def runtime_variant(model: ModelFile, runtime: str, precision: str = "fp32") -> Path | None:
    """The checked graph ``runtime`` should load instead of ``model``, if one is shipped.

    The manifest may list, for a bundled model, other graphs of the same network
    (``"variant_of"`` names the model): a rewrite that gives the same outputs and runs
    faster on onnxruntime (``"runtime": "onnxruntime"``), or a statically quantised graph
    for OpenVINO (``"runtime": "openvino", "precision": "int8"``) whose embeddings stay
    within a cosine of 0.99 of the model's. Either keeps the model's identity: templates
    made with one are compared with those made by the other. User-supplied models have none.

    Args:
        model: the checked embedder.
        runtime: ``"onnxruntime"`` or ``"openvino"``.
        precision: ``"fp32"`` (same outputs) or ``"int8"``.

    Raises:
        ModelError: the variant is listed but missing or damaged.
    """
    if not model.bundled:
        return None
    for entry in manifest()["files"]:
        if (entry.get("variant_of") == model.path.name and entry.get("runtime") == runtime
                and entry.get("precision", "fp32") == precision):
            return check(models_dir() / entry["file"]).path
    return None


def onnxruntime_variant(model: ModelFile) -> Path | None:
    """The checked equivalent fp32 graph onnxruntime should load instead of ``model``, if one is shipped."""
    return runtime_variant(model, "onnxruntime")
