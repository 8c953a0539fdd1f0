"""The runtime choice: a pure function of availability and timings, a cache keyed by model
hash and machine, and the real runtimes giving the same embeddings."""

import importlib.util
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from faceapp.errors import ModelError
from faceapp.vision import backends, models, runtime
from faceapp.vision.embed import Embedder
from faceapp.vision.runtime import Availability, RuntimeCache, fastest, plan, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))

NONE = Availability(cuda=False, openvino=False)
OV = Availability(cuda=False, openvino=True)
GPU = Availability(cuda=True, openvino=True)
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None


def test_plan_follows_what_is_installed():
    assert plan("auto", NONE) == ["cpu"]
    assert plan("auto", OV) == ["cpu", "openvino"]
    assert plan("auto", GPU) == ["cuda"]
    assert plan("cpu", GPU) == ["cpu"]
    assert plan("openvino", OV) == ["openvino"]
    with pytest.raises(ModelError, match="CUDA provider was asked for"):
        plan("cuda", OV)
    with pytest.raises(ModelError, match="OpenVINO is not installed"):
        plan("openvino", NONE)
    with pytest.raises(ModelError, match="unknown provider"):
        plan("tpu", OV)


def test_fastest_switches_only_for_a_clear_gain():
    assert fastest({"cpu": 16.0, "openvino": 8.0}) == "openvino"
    assert fastest({"cpu": 10.0, "openvino": 9.5}) == "cpu"  # within noise: keep onnxruntime
    assert fastest({"cpu": 8.0, "openvino": 16.0}) == "cpu"
    assert fastest({"cpu": float("nan"), "openvino": 12.0}) == "openvino"
    assert fastest({}) == "cpu"


@dataclass
class FakeBackend:
    name: str
    ms: float
    label: str = ""
    metadata: dict = field(default_factory=dict)
    input_names: list = field(default_factory=lambda: ["x"])
    output_names: list = field(default_factory=lambda: ["y"])
    batch: int | None = None
    runs: int = 0

    def __post_init__(self):
        self.label = f"fake {self.name}"

    def use_output(self, name):
        pass

    def run(self, x):
        self.runs += 1
        return x


class Opener:
    """Opens fake backends whose timed runs take ``ms`` (the clock is faked too)."""

    def __init__(self, ms, fail=()):
        self.ms, self.fail, self.opened = ms, set(fail), []

    def __call__(self, name):
        if name in self.fail:
            raise ModelError(f"{name} broken")
        self.opened.append(name)
        return FakeBackend(name, self.ms[name])


@pytest.fixture
def fake_clock(monkeypatch):
    """perf_counter advances by the running backend's ``ms`` on each of its runs."""
    now = [0.0]
    real_run = FakeBackend.run

    def run(self, x):
        now[0] += self.ms / 1e3
        return real_run(self, x)

    monkeypatch.setattr(FakeBackend, "run", run)
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: now[0])


def _probe(backend):
    return np.zeros((1, 3, 4, 4), np.float32)


def test_auto_times_the_cpu_runtimes_and_caches_the_winner(tmp_path, fake_clock):
    cache = RuntimeCache(tmp_path / "runtime.json")
    first = Opener({"cpu": 16.0, "openvino": 8.0})
    sel = select("auto", first, avail=OV, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m1")
    assert sel.backend.name == "openvino" and first.opened == ["cpu", "openvino"]
    assert sel.timings_ms == pytest.approx({"cpu": 16.0, "openvino": 8.0})
    assert "8.0 ms vs onnxruntime CPU 16.0 ms" in sel.note

    # the same model on the same machine: the cached winner is opened alone, nothing timed
    again = Opener({"cpu": 1.0, "openvino": 100.0})
    sel = select("auto", again, avail=OV, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m1")
    assert again.opened == ["openvino"] and sel.backend.runs == 0 and sel.backend.name == "openvino"

    # another model (hash) or another machine: timed afresh, and the new result is kept beside the old
    other = Opener({"cpu": 5.0, "openvino": 10.0})
    sel = select("auto", other, avail=OV, model_sha256="b" * 64, cache=cache, probe=_probe, machine="m1")
    assert other.opened == ["cpu", "openvino"] and sel.backend.name == "cpu"
    moved = Opener({"cpu": 5.0, "openvino": 10.0})
    sel = select("auto", moved, avail=OV, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m2")
    assert moved.opened == ["cpu", "openvino"] and sel.backend.name == "cpu"
    assert cache.get("a" * 64, "m1")["runtime"] == "openvino"
    assert cache.get("b" * 64, "m1")["runtime"] == "cpu"


def test_explicit_runtimes_and_cuda_are_not_timed(tmp_path, fake_clock):
    cache = RuntimeCache(tmp_path / "runtime.json")
    for requested, avail, expect in (("cpu", OV, "cpu"), ("openvino", OV, "openvino"), ("auto", NONE, "cpu"),
                                     ("auto", GPU, "cuda"), ("cuda", GPU, "cuda")):
        op = Opener({"cpu": 9.0, "openvino": 3.0, "cuda": 1.0})
        sel = select(requested, op, avail=avail, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m")
        assert sel.backend.name == expect and op.opened == [expect] and sel.backend.runs == 0
    assert not cache.path.exists()


def test_broken_cuda_falls_back_to_timing_the_cpu_runtimes(tmp_path, fake_clock):
    op = Opener({"cpu": 16.0, "openvino": 8.0}, fail={"cuda"})
    sel = select("auto", op, avail=GPU, model_sha256="a" * 64, cache=None, probe=_probe, machine="m")
    assert sel.backend.name == "openvino"
    with pytest.raises(ModelError, match="cuda broken"):
        select("cuda", op, avail=GPU, model_sha256="a" * 64, cache=None, probe=_probe, machine="m")


def test_broken_openvino_leaves_onnxruntime(tmp_path, fake_clock):
    cache = RuntimeCache(tmp_path / "runtime.json")
    op = Opener({"cpu": 16.0, "openvino": 8.0}, fail={"openvino"})
    sel = select("auto", op, avail=OV, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m")
    assert sel.backend.name == "cpu" and "failed to load" in sel.note


def test_unreadable_cache_is_ignored_and_rewritten(tmp_path, fake_clock):
    cache = RuntimeCache(tmp_path / "runtime.json")
    cache.path.write_text("{not json")
    op = Opener({"cpu": 16.0, "openvino": 8.0})
    assert select("auto", op, avail=OV, model_sha256="a" * 64, cache=cache, probe=_probe, machine="m").backend.name == "openvino"
    assert json.loads(cache.path.read_text())["version"] == runtime.CACHE_VERSION


# ---------------------------------------------------------------------- the real runtimes


def test_thread_default_leaves_a_core_free_only_for_the_live_view_on_small_cpus():
    assert [backends.default_threads(n, interactive=True) for n in (1, 2, 3, 4, 8, 16)] == [1, 1, 2, 3, 0, 0]
    assert [backends.default_threads(n) for n in (1, 2, 4, 16)] == [0, 0, 0, 0]  # every core


def test_the_gui_pipeline_leaves_a_core_free_and_the_command_line_does_not(monkeypatch, tmp_path):
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    seen = []

    def fake_init(self, *args, **kwargs):
        seen.append(kwargs["threads"])
        self.provider_note = "fake"

    monkeypatch.setattr("faceapp.vision.embed.Embedder.__init__", fake_init)
    sface = models.bundled_path(models.ROLE_SFACE)
    for interactive in (False, True):
        _ = Pipeline(Settings(gallery=tmp_path, model=sface), interactive=interactive).embedder
    _ = Pipeline(Settings(gallery=tmp_path, threads=2, model=sface), interactive=True).embedder  # what the user set wins
    assert seen == [0, 1, 2]


def test_machine_key_names_the_runtime_versions():
    key = runtime.machine_key()
    assert "onnxruntime" in key and str(__import__("os").cpu_count()) in key


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_and_onnxruntime_give_the_same_embeddings(tmp_path, faces):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    crops = np.stack([f.crop for f in faces.values()])
    ort = Embedder(bundled.path, "cpu", model_sha256=bundled.sha256, ort_model_path=models.onnxruntime_variant(bundled),
                   cache_dir=tmp_path)
    ov = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path)
    assert ort.provider == "cpu" and ov.provider == "openvino" and ov.runtime_name.startswith("OpenVINO")
    assert ov.contract == ort.contract and ov.thresholds == ort.thresholds
    np.testing.assert_allclose(ov.embed(crops), ort.embed(crops), atol=1e-5)


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_is_imported_without_its_telemetry():
    import subprocess

    code = ("import sys; from faceapp.vision.backends import import_openvino; import_openvino(); "
            "print(sys.modules['openvino.tools.ovc.telemetry_utils'].tm.__name__, 'openvino_telemetry' in sys.modules)")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "CI": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["openvino.tools.ovc.telemetry_stub", "False"]


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_second_start_takes_the_metadata_from_its_cache(tmp_path):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    first = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path)
    cache = RuntimeCache(tmp_path / "runtime.json")
    assert cache.get_metadata(bundled.sha256) == first.backend.metadata and "faceapp.contract" in first.backend.metadata
    second = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path)
    assert second.contract == first.contract
    # with metadata known and a compiled network cached, the metadata is not read from the file
    probe = backends.OpenVinoBackend(bundled.path, cache_dir=tmp_path / "openvino", known_metadata={"k": "v"})
    assert probe.metadata == {"k": "v"} and probe.output_names == ["fc1"] and probe.batch is None
    crops = np.random.default_rng(0).integers(0, 255, (2, 112, 112, 3), dtype=np.uint8)
    np.testing.assert_array_equal(second.embed(crops), first.embed(crops))


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_auto_on_the_bundled_model_caches_its_choice(tmp_path):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    emb = Embedder(bundled.path, "auto", model_sha256=bundled.sha256, cache_dir=tmp_path)
    key = f"{runtime.machine_key()}|threads=0|precision=fp32"
    record = RuntimeCache(tmp_path / "runtime.json").get(bundled.sha256, key)
    assert record is not None and record["runtime"] == emb.provider
    assert set(record["timings_ms"]) == {"cpu", "openvino"} and "auto:" in emb.provider_note


# ---------------------------------------------------------------------- the PRelu-free graph


def _prelu_graph():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    slope = rng.uniform(-0.5, 0.5, (4, 1, 1)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], name="conv"),
         helper.make_node("PRelu", ["c", "s"], ["p"], name="act"),
         helper.make_node("PRelu", ["p", "s"], ["y"], name="act2")],
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 8, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(slope, "s")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model.metadata_props.add(key="k", value="v")
    return model.SerializeToString()


def test_prelu_rewrite_is_bit_identical_on_a_small_graph():
    import onnx
    import onnxruntime as ort
    from build import prelu_to_relu

    original = _prelu_graph()
    rewritten = prelu_to_relu(original)
    model = onnx.load_from_string(rewritten)
    assert not [n for n in model.graph.node if n.op_type == "PRelu"]
    assert {p.key: p.value for p in model.metadata_props} == {"k": "v"}
    x = np.random.default_rng(1).standard_normal((3, 4, 8, 8)).astype(np.float32) * 3
    a = ort.InferenceSession(original, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    b = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert (a < 0).any() and (a > 0).any()
    np.testing.assert_array_equal(a, b)


def test_shipped_prelu_free_embedder_equals_the_original_on_real_faces(faces):
    from build import compare_graphs

    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    variant = models.onnxruntime_variant(bundled)
    assert variant is not None and variant.name == "sface_fp32_relu.onnx"
    crops = np.stack([f.crop for f in faces.values()])
    diff, changed = compare_graphs(bundled.path.read_bytes(), variant.read_bytes(), crops)
    assert diff == 0.0 and changed == 0


def test_build_writes_only_files_whose_hash_matches(tmp_path):
    from build import write_checked

    target = tmp_path / "model.onnx"
    target.write_bytes(b"shipped")
    import hashlib

    assert not write_checked(target, b"something else", hashlib.sha256(b"expected").hexdigest())
    assert target.read_bytes() == b"shipped" and sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    assert write_checked(target, b"expected", hashlib.sha256(b"expected").hexdigest())
    assert target.read_bytes() == b"expected"


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_embeds_from_several_threads_at_once(tmp_path):
    """The GUI embeds from its worker and from the GUI thread: every call gets its own answer."""
    import threading

    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    emb = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path)
    rng = np.random.default_rng(1)
    batches = [rng.integers(0, 255, (2, 112, 112, 3), dtype=np.uint8) for _ in range(4)]
    expected = [emb.embed(b) for b in batches]
    got: dict[int, list[np.ndarray]] = {i: [] for i in range(4)}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(15):
                got[i].append(emb.embed(batches[i]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i in range(4):
        for out in got[i]:
            np.testing.assert_allclose(out, expected[i], atol=1e-6)


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_the_onnxruntime_graph_is_looked_up_only_when_onnxruntime_opens(tmp_path):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    asked = []

    def variant():
        asked.append(1)
        return models.onnxruntime_variant(bundled)

    Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, ort_model_path=variant, cache_dir=tmp_path)
    assert asked == []  # OpenVINO loads the original graph: the 38 MB variant is not hashed at start
    Embedder(bundled.path, "cpu", model_sha256=bundled.sha256, ort_model_path=variant, cache_dir=tmp_path)
    assert asked == [1]


# ---------------------------------------------------------------------- the int8 graph


def test_int8_variant_is_found_only_for_openvino_and_only_for_the_bundled_model(tmp_path):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    int8 = models.runtime_variant(bundled, "openvino", "int8")
    assert int8 is not None and int8.name == "sface_int8.onnx"
    assert models.runtime_variant(bundled, "onnxruntime", "int8") is None
    assert models.runtime_variant(bundled, "openvino") is None  # OpenVINO's fp32 graph is the model itself
    assert models.runtime_variant(bundled, "onnxruntime") == models.onnxruntime_variant(bundled)
    copy = tmp_path / "mine.onnx"
    copy.write_bytes(bundled.path.read_bytes())
    assert models.runtime_variant(models.resolve_embedder(copy), "openvino", "int8") is None


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_int8_on_openvino_stays_within_a_cosine_of_099_of_fp32_and_says_so(tmp_path, faces):
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    crops = np.stack([f.crop for f in faces.values()])
    fp32 = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path)
    int8 = Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path, precision="int8",
                    ov_model_path=lambda: models.runtime_variant(bundled, "openvino", "int8"))
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert int8.runtime_name.endswith("CPU int8") and not fp32.runtime_name.endswith("int8")
    a, b = fp32.embed(crops), int8.embed(crops)
    cos = (a * b).sum(axis=1)
    assert cos.min() >= 0.99
    assert np.abs(a - b).max() > 1e-4  # a different graph ran, not the fp32 one again


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_pipeline_precision_setting_picks_the_graph_openvino_loads(tmp_path):
    from faceapp.config import Settings
    from faceapp.errors import SettingsError
    from faceapp.pipeline import Pipeline

    for precision in ("int8", "fp32"):
        with Pipeline(Settings(gallery=tmp_path / "g", provider="openvino", precision=precision,
                               model=models.bundled_path(models.ROLE_SFACE))) as pipe:
            assert pipe.embedder.precision == precision
            assert pipe.embedder.backend.path.name == ("sface_int8.onnx" if precision == "int8" else "sface_fp32.onnx")
    with Pipeline(Settings(gallery=tmp_path / "g", provider="cpu", precision="int8")) as pipe:
        assert pipe.embedder.precision == "fp32"  # onnxruntime always runs the fp32 graph
    with pytest.raises(SettingsError, match="precision must be one of int8, fp32"):
        Settings(precision="int4")


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_int8_on_a_network_without_an_int8_graph_runs_bf16_where_the_cpu_has_it(tmp_path, pipeline, faces):
    """The second network ships no int8 graph: int8 runs its float graph in bf16 on CPUs with bf16."""
    from faceapp.vision.backends import import_openvino
    from faceapp.vision.embed import load_embedder

    has_bf16 = "BF16" in import_openvino().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    omz = models.check(models.bundled_path("embedder-omz"))
    fast, exact = (load_embedder(omz, provider="openvino", precision=p) for p in ("int8", "fp32"))
    assert exact.backend.precision == "fp32" and exact.precision == "fp32"
    assert fast.backend.precision == ("bf16" if has_bf16 else "fp32")
    assert fast.runtime_name.endswith(" bf16") == has_bf16 and fast.precision == ("int8" if has_bf16 else "fp32")
    fused = load_embedder(pipeline.embedder_file, provider="openvino", precision="int8")
    assert fused.runtime_name.endswith("CPU int8 + bf16" if has_bf16 else "CPU int8 + fp32")
    inputs = np.stack([f.inputs[0] for f in faces.values()])  # the second network's own alignment
    cos = (fast.embed(inputs) * exact.embed(inputs)).sum(axis=1)
    assert cos.min() >= 0.999
    if has_bf16:
        assert cos.min() < 1 - 1e-6  # bf16 ran, not fp32 again
    # a graph that is already quantised keeps its float layers in fp32, as it was built and checked
    quantised = load_embedder(models.check(models.bundled_path("embedder-int8")), provider="openvino", precision="int8")
    assert quantised.backend.precision == "int8" and quantised.runtime_name.endswith(" int8")
    crops = np.stack([f.crop for f in faces.values()])
    np.testing.assert_allclose(quantised.embed(crops), fused.members[0][0].embed(crops), atol=1e-6)


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_build_refuses_an_int8_graph_that_moves_a_face_and_skips_without_photos(monkeypatch, faces):
    import build
    import onnx
    from onnx import numpy_helper

    fp32 = models.check(models.bundled_path(models.ROLE_SFACE)).path.read_bytes()
    crops = np.stack([f.crop for f in faces.values()])
    monkeypatch.setattr(build, "lfw_half", lambda faces_dir, half: [])
    monkeypatch.setattr(build, "INT8_CALIBRATION_FACES", 1)
    monkeypatch.setattr(build, "aligned_faces",
                        lambda photos, detector, limit, alignment=None: np.zeros((0, 112, 112, 3), np.uint8))
    assert build.build_int8(fp32, Path("unused"), None) is None  # no photos: nothing to calibrate on, skipped

    def damaging_quantiser(graph: bytes, calibration: np.ndarray, contract=None) -> bytes:
        model = onnx.load_from_string(graph)
        gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
        init = next(i for i in model.graph.initializer if i.name == gemm.input[1])
        w = numpy_helper.to_array(init)
        init.CopyFrom(numpy_helper.from_array(w + np.random.default_rng(0).normal(0, 2 * w.std(), w.shape).astype(w.dtype),
                                              init.name))
        return model.SerializeToString()

    monkeypatch.setattr(build, "aligned_faces", lambda photos, detector, limit, alignment=None: crops)
    monkeypatch.setattr(build, "quantise_int8", damaging_quantiser)
    with pytest.raises(SystemExit, match="must be >= 0.99"):
        build.build_int8(fp32, Path("unused"), None)
    monkeypatch.setattr(build, "quantise_int8", lambda graph, calibration, contract=None: graph)
    assert build.build_int8(fp32, Path("unused"), None) == fp32


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_compiles_a_model_into_its_cache_once(tmp_path):
    """The first start (which reads the model's metadata) and later ones share one cache entry per
    compiled network: the one of any batch size and the one for a single face."""
    bundled = models.check(models.bundled_path(models.ROLE_SFACE))
    face = np.zeros((1, 112, 112, 3), np.uint8)
    for _ in range(3):
        Embedder(bundled.path, "openvino", model_sha256=bundled.sha256, cache_dir=tmp_path).embed(face)
    blobs = [p for p in (tmp_path / "openvino").rglob("*") if p.is_file() and p.stat().st_size > 1_000_000]
    assert len(blobs) == 2, sorted(str(p) for p in (tmp_path / "openvino").rglob("*"))
    # both are recorded, so the next start trusts them instead of compiling again
    assert backends.verify_compiled_cache(tmp_path / "openvino" / bundled.path.stem)


@pytest.mark.skipif(not HAS_OPENVINO, reason="OpenVINO is not installed")
def test_openvino_runs_one_face_on_a_fixed_shape_network_with_the_same_output(tmp_path):
    omz = models.check(models.bundled_path("embedder-omz"))
    backend = backends.OpenVinoBackend(omz.path, cache_dir=tmp_path)
    assert backend.batch is None and backend.input_shape == (None, 3, 128, 128)  # still takes any batch
    x = np.random.default_rng(4).uniform(0, 255, (3, 3, 128, 128)).astype(np.float32)
    batch = backend.run(x)
    one = np.concatenate([backend.run(x[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(one, batch, atol=1e-5 * float(np.abs(batch).max()))
    np.testing.assert_allclose(backend.run_all(x[:1])[0], batch[:1], atol=1e-5 * float(np.abs(batch).max()))
