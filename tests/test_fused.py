"""The second network, per-network alignment, the fused embedder, calibration as data, model import."""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from faceapp.errors import ModelError
from faceapp.vision import calibration, models
from faceapp.vision.align import align_face, realign, template_points4
from faceapp.vision.contract import (
    ARCFACE_TEMPLATE_112,
    CONTRACT_KEY,
    OMZ_TEMPLATE_96X112,
    Alignment,
    Contract,
    with_metadata,
)
from faceapp.vision.embed import Embedder, FusedEmbedder, load_embedder

ROOT = Path(__file__).resolve().parents[1]
ARCFACE = Alignment(ARCFACE_TEMPLATE_112, (112, 112), (112, 112))
OMZ = Alignment(OMZ_TEMPLATE_96X112, (112, 96), (128, 128))


@pytest.fixture
def cli(tmp_path, capsys):
    from faceapp.cli import main

    def run(*args):
        code = main(["--gallery", str(tmp_path / "gallery"), *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    return run


# ---------------------------------------------------------------------- alignment


def _dots(points: np.ndarray, shape: tuple[int, int] = (400, 400)) -> np.ndarray:
    """A black image with a small white square at each point, each in its own colour channel mix."""
    img = np.zeros((*shape, 3), np.uint8)
    for i, (x, y) in enumerate(points):
        img[int(round(y)) - 2 : int(round(y)) + 3, int(round(x)) - 2 : int(round(x)) + 3, i % 3] = 255
    return img


def _centroid(img: np.ndarray, channel: int, near: np.ndarray, radius: float = 8.0) -> np.ndarray:
    ys, xs = np.nonzero(img[:, :, channel] > 60)
    keep = np.hypot(xs - near[0], ys - near[1]) < radius
    w = img[ys[keep], xs[keep], channel].astype(np.float64)
    return np.array([(xs[keep] * w).sum() / w.sum(), (ys[keep] * w).sum() / w.sum()])


def _keypoints6(scale: float, shift: tuple[float, float], angle: float) -> np.ndarray:
    """MediaPipe-style keypoints: the ArcFace template's eyes, nose, mouth centre, moved; ears unused."""
    pts = template_points4(ARCFACE_TEMPLATE_112).astype(np.float64)
    c, s = np.cos(angle), np.sin(angle)
    moved = pts @ (scale * np.array([[c, s], [-s, c]])) + np.asarray(shift)
    return np.concatenate([moved, moved[:2] + [[-30, 0], [30, 0]]]).astype(np.float32)


def test_omz_alignment_puts_the_points_on_its_stretched_template():
    kps = _keypoints6(2.0, (80, 60), 0.2)
    crop = align_face(_dots(kps[:4]), kps, OMZ)
    assert crop.shape == (128, 128, 3)
    want = template_points4(OMZ_TEMPLATE_96X112) * np.array([128 / 96, 128 / 112])
    for i, p in enumerate(want):
        np.testing.assert_allclose(_centroid(crop, i % 3, p), p, atol=0.6)


def test_a_square_template_aligns_as_before():
    kps = _keypoints6(1.5, (50, 40), -0.1)
    img = _dots(kps[:4])
    np.testing.assert_array_equal(align_face(img, kps, ARCFACE_TEMPLATE_112, 112), align_face(img, kps, ARCFACE))


def test_realign_from_the_stored_crop_matches_aligning_from_the_photo():
    kps = _keypoints6(3.0, (40, 30), 0.3)
    img = _dots(kps[:4], (500, 500))
    stored = align_face(img, kps, ARCFACE)
    direct, again = align_face(img, kps, OMZ), realign(stored[None], ARCFACE, OMZ)[0]
    want = template_points4(OMZ_TEMPLATE_96X112) * np.array([128 / 96, 128 / 112])
    for i, p in enumerate(want):
        np.testing.assert_allclose(_centroid(again, i % 3, p), _centroid(direct, i % 3, p), atol=0.8)
    np.testing.assert_array_equal(realign(stored[None], ARCFACE, ARCFACE)[0], stored)


def test_contract_written_before_template_size_existed_reads_as_112():
    old = json.loads(Contract().to_json())
    del old["template_size"]
    c = Contract.from_json(json.dumps(old))
    assert c.template_size == (112, 112) and c.alignment == ARCFACE
    c2 = Contract.from_json(Contract(input_size=(128, 128), template=OMZ_TEMPLATE_96X112, template_size=(112, 96)).to_json())
    assert c2.alignment == OMZ
    with pytest.raises(ValueError, match="at least 16"):
        Contract(template_size=(8, 8))


# ---------------------------------------------------------------------- the fused embedder


def _tiny(path: Path, dim: int, size: int, seed: int, color: str = "RGB", meta: bool = True,
          template=ARCFACE_TEMPLATE_112, frame=(112, 112)) -> np.ndarray:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((3 * size * size, dim)).astype(np.float32) * 0.01
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["y"])], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", dim])], [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta:
        c = Contract(input_name="x", output_name="y", input_size=(size, size), color=color, mean=(127.5,) * 3,
                     std=(128.0,) * 3, embedding_size=dim, template=template, template_size=frame)
        model.metadata_props.add(key=CONTRACT_KEY, value=c.to_json())
    onnx.save(model, path)
    return w


@pytest.fixture
def fused_file(tmp_path):
    _tiny(tmp_path / "a.onnx", 8, 112, 0)
    _tiny(tmp_path / "b.onnx", 16, 128, 1, color="BGR", template=OMZ_TEMPLATE_96X112, frame=(112, 96))
    doc = {"format": "faceapp.fused", "version": 1, "name": "a + b", "members": [
        {"file": "a.onnx", "sha256": models.sha256_file(tmp_path / "a.onnx"), "weight": 3},
        {"file": "b.onnx", "sha256": models.sha256_file(tmp_path / "b.onnx"), "weight": 1}]}
    path = tmp_path / "ab.json"
    path.write_text(json.dumps(doc))
    return path


def test_fused_cosine_is_the_weighted_mean_of_the_networks_cosines(fused_file, tmp_path):
    emb = load_embedder(models.check(fused_file), provider="cpu")
    assert isinstance(emb, FusedEmbedder) and emb.dim == 24 and emb.alignments == (ARCFACE, OMZ)
    a, b = (Embedder(tmp_path / n, provider="cpu") for n in ("a.onnx", "b.onnx"))
    crops = np.random.default_rng(2).integers(0, 255, (4, 112, 112, 3), dtype=np.uint8)
    y = emb.embed(crops)
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    ya, yb = a.embed(crops), b.embed(realign(crops, ARCFACE, OMZ))
    np.testing.assert_allclose(y @ y.T, 0.75 * (ya @ ya.T) + 0.25 * (yb @ yb.T), atol=1e-5)
    # crops aligned from the photo for each network go to their own network
    other = np.random.default_rng(3).integers(0, 255, (4, 128, 128, 3), dtype=np.uint8)
    z = emb.embed_aligned([crops, other])
    np.testing.assert_allclose(z[:, 8:] / np.sqrt(0.25), b.embed(other), atol=1e-5)


def test_fused_file_refuses_a_changed_network(fused_file, tmp_path):
    _tiny(tmp_path / "b.onnx", 16, 128, 9, template=OMZ_TEMPLATE_96X112, frame=(112, 96))
    with pytest.raises(ModelError, match="is not the network ab.json was made with"):
        load_embedder(models.check(fused_file), provider="cpu")
    fused_file.write_text('{"format": "faceapp.fused", "members": [{"file": "a.onnx"}]}')
    with pytest.raises(ModelError, match="not a usable fused model"):
        models.fused_members(models.check(fused_file))


def test_bundled_default_is_the_fused_model_and_checks_its_networks():
    file = models.resolve_embedder(None)
    parts = models.fused_members(file)
    assert [p.file.path.name for p in parts] == ["sface_fp32.onnx", "face_reidentification_retail_0095.onnx"]
    assert abs(sum(p.weight for p in parts) - 1) < 1e-9 and all(p.file.bundled for p in parts)
    assert calibration.lookup(file.sha256, (calibration.BUNDLED,)) is not None


def test_pipeline_aligns_each_face_once_per_template(tmp_path, data_dir):
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(gallery=tmp_path / "g", provider="cpu")) as pipe:
        faces, _ = pipe.analyze(data_dir / "obama.jpg")
        f = faces[0]
        assert f.crop.shape == (112, 112, 3) and len(f.inputs) == 1 and f.inputs[0].shape == (128, 128, 3)
        emb = pipe.embedder
        sface, omz = (m for m, _ in emb.members)
        w = [w for _, w in emb.members]
        want = np.concatenate([np.sqrt(w[0]) * sface.embed(f.crop[None]), np.sqrt(w[1]) * omz.embed(f.inputs[0][None])], 1)
        np.testing.assert_allclose(f.embedding, want[0], atol=1e-5)
        # the vector re-made from the stored crop alone stays close to the one made from the photo
        assert float(emb.embed(f.crop[None])[0] @ f.embedding) > 0.98


# ---------------------------------------------------------------------- calibration as data


def test_calibration_file_round_trip_user_first_and_sizes(tmp_path):
    user, bundled = tmp_path / "user.json", tmp_path / "bundled.json"
    base = calibration.Calibration(verify=0.4, uncertain_band=0.05, default_gallery_size=1000,
                                   gallery_sizes={10: calibration.SizePoint(0.3, 0.1),
                                                  1000: calibration.SizePoint(0.45, 0.02)})
    calibration.save("m1", base, bundled)
    calibration.save("m1", calibration.Calibration(0.5, 0.0, {100: calibration.SizePoint(0.6, 0.0)}, 100), user)
    calibration.save("m2", base, user)
    assert calibration.lookup("m1", (user, bundled)).thresholds().match == 0.6
    found = calibration.lookup("m2", (user, bundled))
    assert found == base
    assert found.thresholds().match == 0.45 and found.thresholds(5).match == 0.3 and found.thresholds(50).margin == 0.02
    assert calibration.lookup("nobody", (user, bundled)) is None
    data = json.loads(user.read_text())
    data["version"] = 99
    user.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="update faceapp"):
        calibration.read_file(user)
    user.write_text("{not json")
    with pytest.raises(ModelError, match="damaged"):
        calibration.read_file(user)


def test_thresholds_come_from_the_calibration_file_not_the_model(tmp_path, monkeypatch):
    path = tmp_path / "a.onnx"
    _tiny(path, 8, 112, 0)
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path / "data"))
    file = models.check(path)
    assert load_embedder(file, provider="cpu").thresholds.match == 0.5  # the untuned fallback
    calibration.save(file.sha256, calibration.Calibration(0.3, 0.0, {1000: calibration.SizePoint(0.42, 0.07)}, 1000))
    thr = load_embedder(file, provider="cpu").thresholds
    assert (thr.match, thr.margin, thr.verify) == (0.42, 0.07, 0.3)
    assert models.check(path).sha256 == file.sha256  # calibrating left the model (its id) alone


# ---------------------------------------------------------------------- model import


def test_metadata_appended_without_onnx_is_read_by_onnxruntime(tmp_path):
    import onnxruntime as ort

    path = tmp_path / "plain.onnx"
    _tiny(path, 8, 112, 0, meta=False)
    data = path.read_bytes()
    out = with_metadata(data, {"k": "v" * 300, "é": "ü"})
    assert out.startswith(data)
    meta = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    assert meta["k"] == "v" * 300 and meta["é"] == "ü"


def test_cli_model_import_writes_a_copy_the_app_loads(cli, tmp_path, monkeypatch, data_dir):
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path / "data"))
    src = tmp_path / "arc.onnx"
    w = _tiny(src, 8, 112, 4, meta=False)
    code, out, err = cli("--json", "model", "import", src, "--color", "BGR", "--mean", "127.5", "--std", "128",
                         "--name", "mine")
    assert code == 0, err
    doc = json.loads(out)
    copy = Path(doc["path"])
    assert copy == tmp_path / "data" / "models" / "mine.onnx" and src.read_bytes() != copy.read_bytes()
    emb = Embedder(copy, provider="cpu")
    assert emb.contract.color == "BGR" and emb.dim == 8 and emb.contract.input_name == "x"
    crops = np.random.default_rng(1).integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    x = ((crops[..., ::-1].astype(np.float32) - 127.5) / 128.0).transpose(0, 3, 1, 2).reshape(2, -1) @ w
    np.testing.assert_allclose(emb.embed(crops), x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-4)
    code, out, err = cli("--model", copy, "enroll", "obama", data_dir / "obama.jpg")
    assert code == 0, err
    # importing again: the copy already carries a contract
    code, _, err = cli("model", "import", copy)
    assert code == 2 and err.count("\n") == 1 and "already carries a faceapp contract" in err
    code, _, err = cli("model", "import", src, "--input-size", "96")
    assert code == 2 and err.count("\n") == 1 and "--input-size" in err
    code, _, err = cli("model", "import", tmp_path / "missing.onnx")
    assert code == 2 and err.count("\n") == 1 and "cannot read" in err
    code, _, err = cli("model", "import", src, "--people", data_dir)
    assert code == 2 and err.count("\n") == 1 and "--strangers" in err


# ---------------------------------------------------------------------- the IR and its ONNX graph


def test_ir_files_are_intel_s_release_and_the_onnx_graph_matches_openvino(data_dir):
    pytest.importorskip("onnx")
    pytest.importorskip("openvino")
    import hashlib

    sys.path.insert(0, str(ROOT / "models"))
    from ir_onnx import convert, onnxruntime_outputs, openvino_outputs

    from faceapp.vision.detect import FaceDetector
    from faceapp.vision.images import load_image

    man = {e["file"]: e for e in models.manifest()["files"]}
    xml = (models.models_dir() / "face-reidentification-retail-0095.xml").read_bytes()
    weights = (models.models_dir() / "face-reidentification-retail-0095.bin").read_bytes()
    assert hashlib.sha384(xml).hexdigest() == man["face-reidentification-retail-0095.xml"]["sha384"]
    assert hashlib.sha384(weights).hexdigest() == man["face-reidentification-retail-0095.bin"]["sha384"]
    det = FaceDetector(models.resolve_detector("full").path)
    crops = []
    for name in ("obama.jpg", "obama2.jpg", "biden.jpg", "t1.jpg"):
        img = load_image(data_dir / name)
        crops += [align_face(img, d.keypoints, OMZ) for d in det.detect(img)]
    det.close()
    x = np.ascontiguousarray(np.stack(crops)[..., ::-1].astype(np.float32).transpose(0, 3, 1, 2))
    graph = convert(xml, weights)
    ref, got = openvino_outputs(xml, weights, x), onnxruntime_outputs(graph, x)
    assert len(crops) >= 4 and np.abs(ref).max() > 0.5
    np.testing.assert_allclose(got, ref, atol=1e-4)
    # the shipped graph is this conversion with its contract, and runs on onnxruntime like the IR on OpenVINO
    shipped = Embedder(models.bundled_path("embedder-omz"), provider="cpu")
    y = shipped.embed(np.stack(crops))
    e_ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert float((y * e_ref).sum(1).min()) > 0.99999


def test_converter_names_an_operator_it_does_not_know():
    sys.path.insert(0, str(ROOT / "models"))
    from ir_onnx import convert

    xml = b"""<net name="n" version="11"><layers>
      <layer id="0" name="in" type="Parameter"><data shape="1,3,4,4" element_type="f32"/>
        <output><port id="0"><dim>1</dim><dim>3</dim><dim>4</dim><dim>4</dim></port></output></layer>
      <layer id="1" name="odd" type="Swish"><input><port id="0"/></input><output><port id="1"/></output></layer>
      <layer id="2" name="out" type="Result"><input><port id="0"/></input></layer>
    </layers><edges><edge from-layer="0" from-port="0" to-layer="1" to-port="0"/>
      <edge from-layer="1" from-port="1" to-layer="2" to-port="0"/></edges></net>"""
    pytest.importorskip("onnx")
    with pytest.raises(ValueError, match="'Swish'"):
        convert(xml, b"")


def test_tampered_second_network_is_refused(tmp_path, monkeypatch):
    dst = tmp_path / "models"
    shutil.copytree(models.models_dir(), dst)
    target = dst / "face_reidentification_retail_0095.onnx"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.setenv("FACEAPP_MODELS_DIR", str(dst))
    models.models_dir.cache_clear()
    models.manifest.cache_clear()
    try:
        with pytest.raises(ModelError, match="damaged or was modified"):
            models.fused_members(models.resolve_embedder(None))
    finally:
        models.models_dir.cache_clear()
        models.manifest.cache_clear()


# ---------------------------------------------------------------------- choosing weights


def test_reweight_recovers_each_network_and_the_sweep_picks_the_better_one():
    from faceapp.measure.evaluate import FaceSet
    from faceapp.measure.fusion import best, reweight, weight_sweep

    rng = np.random.default_rng(0)
    ids, per = 40, 3
    centres = rng.standard_normal((ids, 4)).astype(np.float32)
    labels = np.repeat(np.arange(ids), per)
    good = centres[labels] + 0.1 * rng.standard_normal((ids * per, 4)).astype(np.float32)
    noise = rng.standard_normal((ids * per, 4)).astype(np.float32)  # a network that knows nobody
    unit = [v / np.linalg.norm(v, axis=1, keepdims=True) for v in (good, noise)]
    fused = np.concatenate([np.sqrt(0.5) * unit[0], np.sqrt(0.5) * unit[1]], 1)
    np.testing.assert_allclose(reweight(fused, [4, 4], [0.5, 0.5], [1.0, 0.0])[:, :4], unit[0], atol=1e-6)
    np.testing.assert_allclose(reweight(reweight(fused, [4, 4], [0.5, 0.5], [0.2, 0.8]), [4, 4], [0.2, 0.8], [0.5, 0.5]),
                               fused, atol=1e-6)
    names = tuple(f"p{i}" for i in range(ids))
    people = FaceSet(fused[: 30 * per], np.zeros((30 * per, 1, 1, 3), np.uint8), labels[: 30 * per], names, (), ())
    strangers = FaceSet(fused[30 * per :], np.zeros((10 * per, 1, 1, 3), np.uint8), labels[30 * per :] - 30,
                        names[30:], (), ())
    rows = weight_sweep(people, strangers, [4, 4], [0.5, 0.5], half="all", target_fpir=0.1, grid=(0.0, 0.5, 1.0))
    assert best(rows).weights[0] > 0.0 and rows[0].correct < best(rows).correct


def test_a_gallery_of_the_previous_model_moves_to_the_fused_one(cli, data_dir):
    sface = models.bundled_path(models.ROLE_SFACE)
    for name, photo in (("obama", "obama.jpg"), ("biden", "biden.jpg")):
        assert cli("--model", sface, "enroll", name, data_dir / photo)[0] == 0
    code, _, err = cli("match", data_dir / "obama2.jpg")  # the default (fused) model meets SFace templates
    assert code == 2 and "reembed" in err and err.count("\n") == 1
    code, out, err = cli("--json", "reembed")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["embedded"] == 2 and doc["model_id"] == models.resolve_embedder(None).sha256
    code, out, _ = cli("--json", "match", data_dir / "obama2.jpg")
    faces = json.loads(out)[0]["faces"]
    assert code == 0 and faces[0]["person"] == "obama"


def test_weights_and_save_refuse_what_they_cannot_do_in_one_line(cli, data_dir):
    code, _, err = cli("--model", models.bundled_path(models.ROLE_SFACE), "model", "weights", data_dir,
                       "--strangers", data_dir)
    assert code == 2 and err.count("\n") == 1 and "not a fusion of two networks" in err
    code, _, err = cli("calibrate", data_dir, "--save")
    assert code == 2 and err.count("\n") == 1 and "--strangers" in err
