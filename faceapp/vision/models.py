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

from faceapp.errors import Fix, ModelError
from faceapp.private import sha256_file

ROLE_DETECTOR = {"full": "detector-full-range", "short": "detector-short-range"}
ROLE_EMBEDDER = "embedder"  # the default: SFace and Open Model Zoo's network fused
ROLE_SFACE = "embedder-sface"  # SFace alone, the default before the fused model
FUSED_FORMAT = "faceapp.fused"


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


def missing_file(path: Path) -> ModelError:
    """The error for a model file that is not there."""
    return ModelError(f"model file {path} does not exist", Fix.CHOOSE_MODEL_OR_REINSTALL)


def check(path: Path) -> ModelFile:
    """Find out what ``path`` is and verify it when it is one of the bundled models.

    Raises:
        ModelError: the file is missing or unreadable, or it is a bundled model whose
            sha256 differs from the manifest (damaged or tampered with).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise missing_file(path)
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
                pkg = next((p for p in manifest()["packages"] if p["name"] == entry.get("package")), None)
                return ModelFile(
                    path=resolved,
                    sha256=digest,
                    bundled=True,
                    source=f"{pkg['name']}=={pkg['version']} {entry['member']}" if pkg else str(entry.get("source", "")),
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


@dataclass(frozen=True)
class FusedMember:
    """One network of a fused embedder: its checked file and its weight (the weights sum to 1)."""

    file: ModelFile
    weight: float


def is_fused(path: Path) -> bool:
    """Whether ``path`` names a fused embedder (a JSON file listing networks) rather than one ONNX network."""
    return Path(path).suffix.lower() == ".json"


def fused_members(model: ModelFile) -> list[FusedMember]:
    """The checked networks of a fused embedder file, with their weights normalised to sum to 1.

    The file is JSON: ``{"format": "faceapp.fused", "version": 1, "name": ..., "members":
    [{"file": ..., "sha256": ..., "weight": ...}, ...]}``. Member files are found beside it;
    each must have the sha256 the file records (so the fused file's own hash, the model id,
    stands for its members too).

    Raises:
        ModelError: the file is not a fused embedder, or a member is missing or differs.
    """
    try:
        data = json.loads(model.path.read_text(encoding="utf-8"))
        if data.get("format") != FUSED_FORMAT:
            raise ValueError(f"not a {FUSED_FORMAT} file")
        entries = [(str(m["file"]), str(m["sha256"]), float(m["weight"])) for m in data["members"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{model.path} is not a usable fused model ({exc})", Fix.CHOOSE_MODEL) from exc
    total = sum(w for _, _, w in entries)
    if len(entries) < 2 or any(w <= 0 for _, _, w in entries):
        raise ModelError(f"{model.path} must list at least two networks with positive weights", Fix.CHOOSE_MODEL)
    out = []
    for name, sha, weight in entries:
        member = check(model.path.parent / name)
        if member.sha256 != sha:
            raise ModelError(f"{member.path} is not the network {model.path.name} was made with (sha256 "
                             f"{member.sha256[:12]}..., expected {sha[:12]}...); restore it or reinstall faceapp")
        out.append(FusedMember(member, weight / total))
    return out


def onnxruntime_variant(model: ModelFile) -> Path | None:
    """The checked equivalent fp32 graph onnxruntime should load instead of ``model``, if one is shipped."""
    return runtime_variant(model, "onnxruntime")


def user_models_dir() -> Path:
    """Where ``faceapp-cli model import`` keeps imported models: ``models`` in the user data folder."""
    from faceapp.config import default_data_dir

    return default_data_dir() / "models"


def import_model(source: Path, contract: Any, *, name: str | None = None, dest_dir: Path | None = None,
                 provenance: dict[str, Any] | None = None) -> ModelFile:
    """Copy an ONNX embedder into the user's model folder with ``contract`` written into it.

    The graph is opened with onnxruntime first: its input must take ``contract``'s input
    size and layout, and its output is run once to learn the embedding size (written into
    the contract). Empty input or output names in ``contract`` mean the graph's first.

    Args:
        source: an ONNX file without faceapp metadata.
        contract: the preprocessing :class:`~faceapp.vision.contract.Contract`.
        name: the copy's file name without ``.onnx`` (default: the source's).
        dest_dir: the folder (default :func:`user_models_dir`).
        provenance: what to record about where the model came from.

    Raises:
        ModelError: the file is missing, not ONNX, already carries a contract, does not take
            the stated input, or a different model of that name was imported before.
    """
    import dataclasses

    import numpy as np
    import onnxruntime as ort

    from faceapp.vision.contract import CONTRACT_KEY, PROVENANCE_KEY, with_metadata

    source = Path(source).expanduser()
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {source} ({exc.strerror}); give an ONNX file") from exc
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ModelError(f"{source} is not an ONNX model onnxruntime can load; give an ONNX file") from exc
    if CONTRACT_KEY in sess.get_modelmeta().custom_metadata_map:
        raise ModelError(f"{source} already carries a faceapp contract; use it directly with --model")
    inp = contract.input_name or sess.get_inputs()[0].name
    out = contract.output_name or sess.get_outputs()[0].name
    if inp not in [i.name for i in sess.get_inputs()] or out not in [o.name for o in sess.get_outputs()]:
        raise ModelError(f"{source} has inputs {[i.name for i in sess.get_inputs()]} and outputs "
                         f"{[o.name for o in sess.get_outputs()]}; give --input and --output names from these")
    h, w = contract.input_size
    shape = (1, 3, h, w) if contract.layout == "NCHW" else (1, h, w, 3)
    try:
        y = np.asarray(sess.run([out], {inp: np.zeros(shape, np.float32)})[0])
    except Exception as exc:  # onnxruntime raises its own unexported exception types
        raise ModelError(f"{source} does not take a {contract.layout} input of {h}x{w} pixels; check --input-size "
                         "and --layout") from exc
    contract = dataclasses.replace(contract, input_name=inp, output_name=out, embedding_size=int(y.size))
    copy = with_metadata(data, {CONTRACT_KEY: contract.to_json(),
                                PROVENANCE_KEY: json.dumps(provenance or {"source": str(source)}, sort_keys=True)})
    folder = dest_dir if dest_dir is not None else user_models_dir()
    target = folder / f"{name or source.stem}.onnx"
    if target.is_file() and target.read_bytes() != copy:
        raise ModelError(f"{target} exists and is another model; give another --name or delete it")
    folder.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(copy)
    tmp.replace(target)
    return check(target)
