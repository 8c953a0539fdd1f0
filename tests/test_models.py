import hashlib
import json
import shutil

import numpy as np
import pytest

from faceapp.errors import ModelError
from faceapp.vision import models
from faceapp.vision.contract import Contract, RecommendedThresholds, metadata_props
from faceapp.vision.embed import Embedder


@pytest.fixture
def models_copy(tmp_path, monkeypatch):
    """A private copy of the bundled models folder, used instead of the real one."""
    dst = tmp_path / "models"
    shutil.copytree(models.models_dir(), dst)
    monkeypatch.setenv("FACEAPP_MODELS_DIR", str(dst))
    models.models_dir.cache_clear()
    models.manifest.cache_clear()
    yield dst
    models.models_dir.cache_clear()
    models.manifest.cache_clear()


def test_manifest_matches_the_shipped_files():
    man = models.manifest()
    assert {e["role"] for e in man["files"]} >= {"embedder", "detector-full-range", "detector-short-range"}
    for entry in man["files"]:
        info = models.check(models.models_dir() / entry["file"])
        assert info.bundled and info.sha256 == entry["sha256"]
        packages = {p["name"] for p in man["packages"]}
        assert entry["licence"] and (entry.get("transform") == "fused" or entry["package"] in packages)


def test_tampered_model_is_refused(models_copy):
    target = models_copy / "sface_fp32.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged or was modified"):
        models.fused_members(models.resolve_embedder(None))  # the default model is fused: its networks are checked


def test_missing_model_is_refused(models_copy):
    (models_copy / "face_detection_full_range.onnx").unlink()
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve_detector("full")


def test_user_model_is_accepted_with_its_hash(tmp_path):
    own = tmp_path / "mine.onnx"
    shutil.copy(models.bundled_path(models.ROLE_SFACE), own)
    info = models.resolve_embedder(own)
    assert not info.bundled and info.source == "user-supplied"
    assert info.sha256 == hashlib.sha256(own.read_bytes()).hexdigest()


def _tiny_onnx(path, with_metadata=True, dim=8):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((3 * 112 * 112, dim)).astype(np.float32) * 0.01
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 112, 112])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if with_metadata:
        props = metadata_props(
            Contract(input_name="x", output_name="y", embedding_size=dim, mean=(127.5,) * 3, std=(128.0,) * 3),
            RecommendedThresholds(match=0.6, uncertain_band=0.05, verify=0.4),
            {"name": "tiny"},
        )
        for k, v in props.items():
            model.metadata_props.add(key=k, value=v)
    onnx.save(model, path)
    return w


def test_embedder_reads_the_contract_from_metadata(tmp_path):
    path = tmp_path / "tiny.onnx"
    w = _tiny_onnx(path)
    emb = Embedder(path, provider="cpu")
    assert emb.contract.input_name == "x" and emb.dim == 8
    assert emb.thresholds.match == 0.6 and emb.provenance == {"name": "tiny"}
    crops = np.random.default_rng(1).integers(0, 255, (3, 112, 112, 3), dtype=np.uint8)
    out = emb.embed(crops)
    x = ((crops.astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).reshape(3, -1)
    ref = x @ w
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    np.testing.assert_allclose(out, ref, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


def test_model_without_metadata_or_not_onnx_is_refused(tmp_path):
    path = tmp_path / "plain.onnx"
    _tiny_onnx(path, with_metadata=False)
    with pytest.raises(ModelError, match="carries no 'faceapp.contract' metadata"):
        Embedder(path, provider="cpu")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not a model" * 50)
    with pytest.raises(ModelError, match="not a usable ONNX model"):
        Embedder(junk, provider="cpu")


def test_bundled_embedder_contract_and_dynamic_batch():
    emb = Embedder(models.bundled_path(models.ROLE_SFACE), provider="auto")
    assert emb.provider in ("cpu", "cuda", "openvino") and emb.provider_note
    assert emb.contract.color == "RGB" and emb.contract.input_size == (112, 112) and emb.dim == 128
    assert emb.backend.batch is None
    crops = np.random.default_rng(2).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    batched = emb.embed(crops)
    single = np.concatenate([emb.embed(crops[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    meta = json.loads(emb.backend.metadata["faceapp.thresholds"])
    assert meta["match"] == emb.thresholds.match


def test_cuda_request_without_cuda_is_a_clear_error():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(ModelError, match="CUDA provider was asked for"):
        Embedder(models.bundled_path(models.ROLE_SFACE), provider="cuda")


def test_blockwise_dequantisation_matches_onnxruntime(tmp_path):
    """The model build's int8 -> fp32 conversion agrees with onnxruntime's DequantizeLinear."""
    import importlib.util

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    spec = importlib.util.spec_from_file_location("build", models.models_dir().parent / "models" / "build.py")
    if spec is None or not (models.models_dir().parent / "models" / "build.py").exists():
        pytest.skip("models/build.py is not part of this installation")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    rng = np.random.default_rng(3)
    q = rng.integers(-128, 127, (4, 130), dtype=np.int8)
    scale = rng.uniform(0.001, 0.01, (4, 3)).astype(np.float32)
    zero = rng.integers(-5, 5, (4, 3), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1, block_size=64)],
        "dq", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 130])],
        [numpy_helper.from_array(q, "q"), numpy_helper.from_array(scale, "s"), numpy_helper.from_array(zero, "z")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {})[0]
    np.testing.assert_allclose(build._blockwise_dequantize(q, scale, zero, 1, 64), expected, rtol=1e-6)
    assert onnx.checker.check_model(model) is None


def test_thresholds_metadata_reads_a_margin_and_defaults_it_for_older_files():
    from faceapp.vision.contract import DEFAULT_MARGIN

    old = RecommendedThresholds.from_json('{"match": 0.5, "uncertain_band": 0.1, "verify": 0.4}')
    assert old.margin == DEFAULT_MARGIN
    new = RecommendedThresholds(match=0.5, uncertain_band=0.1, verify=0.4, margin=0.07)
    assert RecommendedThresholds.from_json(new.to_json()) == new


def test_margin_setting_overrides_the_model_and_is_checked():
    from faceapp.config import Settings
    from faceapp.errors import SettingsError
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(margin=0.12)) as pipe:
        assert pipe.thresholds().margin == 0.12
    with Pipeline(Settings()) as pipe:
        assert pipe.thresholds().margin == pipe.embedder.thresholds.margin
    with pytest.raises(SettingsError):
        Settings(margin=-0.1)


def test_detector_and_embedder_refuse_a_tampered_bundled_network_alike(models_copy):
    """Both load through one base (faceapp.vision.loading): a bundled file is verified before any runtime opens it."""
    from faceapp.vision.detect import FaceDetector

    for name in ("face_detection_full_range.onnx", "sface_fp32.onnx"):
        target = models_copy / name
        data = bytearray(target.read_bytes())
        data[-len(data) // 3] ^= 0x01  # one weight bit: the graph still loads, with other weights
        target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="damaged or was modified"):
        FaceDetector(models_copy / "face_detection_full_range.onnx")
    with pytest.raises(ModelError, match="damaged or was modified"):
        Embedder(models_copy / "sface_fp32.onnx", provider="cpu")
    missing = models_copy / "gone.onnx"
    with pytest.raises(ModelError, match="does not exist; check --model"):
        FaceDetector(missing)
    with pytest.raises(ModelError, match="does not exist; check --model"):
        Embedder(missing, provider="cpu")


@pytest.mark.parametrize("color", ["RGB", "BGR"])
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("mean, std", [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.0, 0.0, 0.0), (2.0, 1.0, 0.25)),
                                       ((127.5, 100.0, 3.0), (128.0, 0.5, 2.0))])
def test_preprocess_matches_a_pixel_by_pixel_reading_of_the_contract(color, layout, mean, std):
    from faceapp.vision.embed import preprocess

    contract = Contract(input_size=(16, 17), color=color, layout=layout, mean=mean, std=std)
    crops = np.random.default_rng(3).integers(0, 256, (2, 16, 17, 3), dtype=np.uint8)
    got = preprocess(crops, contract)
    order = [2, 1, 0] if color == "BGR" else [0, 1, 2]
    want = np.zeros((2, 3, 16, 17) if layout == "NCHW" else (2, 16, 17, 3), np.float32)
    for n, y, x, c in np.ndindex(2, 16, 17, 3):
        value = (np.float32(crops[n, y, x, order[c]]) - np.float32(mean[c])) / np.float32(std[c])
        want[(n, c, y, x) if layout == "NCHW" else (n, y, x, c)] = value
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(preprocess(crops[0], contract), want[:1])  # one crop is a batch of one
