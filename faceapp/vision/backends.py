"""The networks' runtimes as one interface: onnxruntime (CPU or CUDA) and OpenVINO (CPU).

A :class:`Backend` is a loaded network that maps its input to its first output. OpenVINO
keeps compiled networks in a cache folder whose files are checked against digests kept
beside them before they are used. Which backend a model gets is chosen in
:mod:`faceapp.vision.runtime`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceapp import private
from faceapp.errors import Fix, ModelError

log = logging.getLogger(__name__)
ORT_CPU = "CPUExecutionProvider"
ORT_CUDA = "CUDAExecutionProvider"


def import_openvino() -> Any:
    """Import OpenVINO with its usage telemetry off.

    ``import openvino`` imports OpenVINO's model-conversion tools, which send a usage event
    to Google Analytics through the ``openvino-telemetry`` package unless the user has
    opted out (and then hold the process at exit while the sender times out offline).
    faceapp sends nothing anywhere: the telemetry package is hidden during the import, so
    OpenVINO falls back to its own no-op stub.
    """

    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    missing = object()
    saved = sys.modules.get("openvino_telemetry", missing)
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import openvino
    finally:
        if saved is missing:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = saved  # type: ignore[assignment]
    return openvino


# ---------------------------------------------------------------------- compiled-model cache


CACHE_DIGESTS = "digests.json"


def _cache_files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file() and p.name != CACHE_DIGESTS}


def _digests(files: Mapping[str, Path]) -> dict[str, str]:
    from faceapp.vision.models import sha256_file

    return {name: sha256_file(p) for name, p in sorted(files.items())}


def verify_compiled_cache(folder: Path) -> bool:
    """Check OpenVINO's compiled networks in ``folder`` against the sha256 digests kept beside
    them; files that differ or were never recorded are deleted, so OpenVINO compiles again
    (its own check misses bits flipped in much of a file, and a damaged network answers NaN
    or zeros).

    Returns:
        Whether the cache was sound (``False``: something was deleted, or there was nothing).
    """
    files = _cache_files(folder)
    try:
        recorded = json.loads((folder / CACHE_DIGESTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    bad = [name for name, digest in _digests(files).items() if recorded.get(name) != digest]
    damaged = [name for name in bad if name in recorded]
    if damaged:
        log.warning("the compiled-model cache %s differs from its digests (%s); compiling the model again",
                    folder, ", ".join(damaged))
    for name in bad:
        files[name].unlink(missing_ok=True)
    return bool(files) and not bad


def record_compiled_cache(folder: Path) -> None:
    """Keep the sha256 of each compiled network in ``folder`` (``0600``, like the files) for
    :func:`verify_compiled_cache`; a cache that cannot be written is compiled again next time."""
    try:
        files = _cache_files(folder)
        for p in files.values():
            os.chmod(p, private.FILE_MODE)
        private.write_atomically(folder / CACHE_DIGESTS, json.dumps(_digests(files)))
    except OSError as exc:
        log.warning("cannot record the compiled-model cache digests in %s (%s)", folder, exc)


# ---------------------------------------------------------------------- backends


class Backend(Protocol):
    """A loaded network: ``run`` maps the model input to its first output."""

    name: str
    label: str
    metadata: dict[str, str]
    input_names: list[str]
    input_shape: tuple[int | None, ...]  # the first input's shape, None for a dynamic dimension
    output_names: list[str]
    batch: int | None  # fixed batch size, or None when dynamic

    def use_output(self, name: str) -> None:
        """Make :meth:`run` return the output called ``name``."""

    def run(self, x: np.ndarray) -> np.ndarray:
        """The chosen output (by default the first) for input ``x``."""

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output for input ``x``, in the order of ``output_names``."""

    def output_index(self, name: str) -> int:
        """Position of the output called ``name`` among the outputs (ValueError when none is)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def default_threads(cpus: int | None = None, *, interactive: bool = False) -> int:
    """Inference threads for ``cpus`` cores (default: this machine's).

    Photos and frames processed one after another (the command line, ``bench``) use every
    core: on a quiet 2-core machine two threads embed a face in about 0.6x the time of one
    (see README, "Performance"). An ``interactive`` caller (the GUI's live view, where the
    camera, the display and the detector share the CPU with inference) leaves one core free
    on small CPUs (up to 4 cores): on a busy 2-core machine one inference thread was about
    1.8x faster than two. Returned as 0 where the runtime's own default (every core) is meant.
    """
    n = cpus if cpus is not None else (os.cpu_count() or 1)
    return max(1, n - 1) if interactive and n <= 4 else 0


def ort_options(threads: int = 0) -> Any:
    """onnxruntime session options for low latency on a small shared CPU."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.inter_op_num_threads = 1
    if threads:
        opts.intra_op_num_threads = threads
    # Spinning workers burn the cores the GUI and the camera need, and under load they
    # make every run slower, not faster.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


@dataclass
class LoadedNetwork:
    """What every backend tells once its network is loaded (the fields of :class:`Backend`)."""

    name: str = field(init=False)
    label: str = field(init=False)
    metadata: dict[str, str] = field(init=False)
    input_names: list[str] = field(init=False)
    input_shape: tuple[int | None, ...] = field(init=False)
    output_names: list[str] = field(init=False)
    batch: int | None = field(init=False)


@dataclass
class OrtBackend(LoadedNetwork):
    """onnxruntime on the CPU or CUDA provider.

    Args:
        path: ONNX file.
        cuda: use the CUDA provider (CPU as onnxruntime's fallback for unsupported nodes).
        threads: intra-op threads (0 = onnxruntime's default, one per core).
    """

    path: Path
    cuda: bool = False
    threads: int = 0
    session: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import onnxruntime as ort

        providers = [ORT_CUDA, ORT_CPU] if self.cuda else [ORT_CPU]
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=ort_options(self.threads),
                                                providers=providers)
        except (FileNotFoundError, PermissionError) as exc:
            raise ModelError(f"model file {self.path} cannot be read ({exc})") from exc
        except Exception as exc:  # onnxruntime raises its own unexported exception types
            if self.cuda:
                raise ModelError(f"the CUDA provider failed ({_first_line(exc)})", Fix.PROVIDER_AUTO_OR_CPU) from exc
            raise ModelError(f"{self.path} is not a usable ONNX model ({_first_line(exc)})", Fix.CHOOSE_MODEL) from exc
        if self.cuda and self.session.get_providers()[0] != ORT_CUDA:
            raise ModelError(
                "the CUDA provider was asked for but did not initialise (no usable GPU or CUDA libraries)",
                Fix.PROVIDER_AUTO_OR_CPU)
        self.name = "cuda" if self.cuda else "cpu"
        self.label = f"onnxruntime {ort.__version__} {'CUDA' if self.cuda else 'CPU'}"
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.batch = self.input_shape[0]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._output = self.output_names[0]
        self._input = self.input_names[0]

    def use_output(self, name: str) -> None:
        self._output = name

    def run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run([self._output], {self._input: x})[0])

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(y) for y in self.session.run(None, {self._input: x})]

    def output_index(self, name: str) -> int:
        return self.output_names.index(name)


@dataclass
class OpenVinoBackend(LoadedNetwork):
    """The OpenVINO runtime on the CPU, latency hint, dynamic batch.

    Floating-point layers run in fp32 unless ``precision`` is ``"bf16"`` and the CPU has bf16
    instructions; a quantised (int8) graph runs its quantised layers in int8.

    Compiled networks are cached in ``cache_dir/<model file name>`` (OpenVINO's own model
    cache), checked against the digests kept beside them (:func:`verify_compiled_cache`). When the
    model's metadata is passed in as well (kept from an earlier load), the metadata is not read
    from the file and a network of fixed shape is not parsed at all: OpenVINO loads the compiled
    network from its cache. A network whose batch is dynamic is also compiled for a batch of
    one when it first runs a single face (not at start-up), which runs single faces faster.

    Args:
        path: ONNX file.
        cache_dir: OpenVINO model cache folder, or ``None`` for none.
        threads: inference threads (0 = OpenVINO's default).
        precision: ``"int8"`` when ``path`` is the statically quantised graph, ``"bf16"`` to run
            a float graph's layers in bf16 (:meth:`_float_precision`: it then says what ran),
            else ``"fp32"``; shown in the label.
        known_metadata: the model's ONNX metadata when already known, else ``None``.
    """

    path: Path
    cache_dir: Path | None = None
    threads: int = 0
    precision: str = "fp32"
    known_metadata: InitVar[dict[str, str] | None] = None
    name: str = field(init=False, default="openvino")

    def __post_init__(self, known_metadata: dict[str, str] | None) -> None:
        ov = import_openvino()

        core = ov.Core()
        # fp32 keeps embeddings equal to onnxruntime's: on CPUs with bf16 support OpenVINO
        # would otherwise run in bf16 and move embeddings by ~5e-4 in cosine.
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                  "ENABLE_CPU_PINNING": False}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        cache_sound = False
        # each model file has a folder of its own, so that its digests describe its networks only
        model_cache = self.cache_dir / self.path.stem if self.cache_dir is not None else None
        if self.cache_dir is not None and model_cache is not None:
            try:
                for folder in (self.cache_dir.parent, self.cache_dir, model_cache):
                    private.make_private_dir(folder)
                cache_sound = verify_compiled_cache(model_cache)
                config["CACHE_DIR"] = str(model_cache)
            except OSError:
                pass
        model = None
        try:
            if self.precision == "bf16":
                model = core.read_model(str(self.path))
                self.precision = self._float_precision(core, model)
                config["INFERENCE_PRECISION_HINT"] = "bf16" if self.precision == "bf16" else "f32"
            if model is None and known_metadata is not None and "CACHE_DIR" in config:
                self.metadata = dict(known_metadata)
                compiled = core.compile_model(str(self.path), "CPU", config)
            else:
                model = model if model is not None else core.read_model(str(self.path))
                # ONNX metadata_props arrive in OpenVINO's rt_info under "framework".
                rt_info = model.get_rt_info()
                framework = rt_info["framework"] if "framework" in rt_info else {}
                self.metadata = {str(k): v.astype(str) for k, v in dict(framework).items()}
                # Compiled from the file, as later starts do, so that they find it in the cache:
                # OpenVINO keys a model compiled from memory differently from one compiled from a path.
                compiled = core.compile_model(str(self.path) if "CACHE_DIR" in config else model, "CPU", config)
            self.input_names = [p.get_any_name() for p in compiled.inputs]
            self.output_names = [p.get_any_name() for p in compiled.outputs]
            self.input_shape = tuple(None if d.is_dynamic else int(d.get_length())
                                     for d in compiled.input(0).get_partial_shape())
            self.batch = self.input_shape[0]
        except Exception as exc:  # OpenVINO raises RuntimeError subclasses of its own
            raise ModelError(f"OpenVINO cannot load {self.path} ({_first_line(exc)})", Fix.PROVIDER_CPU) from exc
        if "CACHE_DIR" in config and not cache_sound and model_cache is not None:
            record_compiled_cache(model_cache)
        self._compiled = compiled
        # One infer request per compiled network serves every call; a request runs one inference
        # at a time, and the GUI embeds from its worker and from the GUI thread (enrolment, "Not X").
        self._request_lock = threading.Lock()
        self._request = compiled.create_infer_request()
        self._single: Any = None
        # compiled for one face when the first single face comes, not at start-up (it costs a compile)
        self._single_from: tuple[Any, Any, dict[str, Any]] | None = (core, model, config)
        self._model_cache = model_cache if "CACHE_DIR" in config else None
        self._output = 0
        self.label = f"OpenVINO {ov.get_version().split('-')[0]} CPU" + (f" {self.precision}" if self.precision != "fp32" else "")

    @staticmethod
    def _float_precision(core: Any, model: Any) -> str:
        """What ``"bf16"`` comes to for ``model``: bf16 where the CPU has bf16 instructions
        (elsewhere OpenVINO would emulate it, slower than fp32), except that a quantised graph
        keeps its float layers in fp32, as it was built and checked (``"int8"``)."""
        if any(op.get_type_name() == "FakeQuantize" for op in model.get_ops()):
            return "int8"
        return "bf16" if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES") else "fp32"

    def _single_face(self, core: Any, model: Any, config: dict[str, Any]) -> Any:
        """The network compiled for a batch of one, when its batch is dynamic (else ``None``).

        OpenVINO runs a graph of fixed shape much faster than one whose batch is dynamic: on
        the second face network one face took 0.6x the CPU time (see README, "Performance"),
        and one face at a time is what live video mostly embeds. The outputs are the same.
        """
        if self.batch is not None or len(self.input_names) != 1 or None in self.input_shape[1:]:
            return None
        model = model if model is not None else core.read_model(str(self.path))
        model.reshape({0: [1, *self.input_shape[1:]]})
        return core.compile_model(model, "CPU", config)

    def _request_for(self, x: np.ndarray) -> Any:
        if len(x) != 1:
            return self._request
        if self._single_from is not None:
            core, model, config = self._single_from
            self._single_from = None
            try:
                single = self._single_face(core, model, config)
            except Exception as exc:  # noqa: BLE001 - OpenVINO's own errors: the dynamic network still runs it
                log.debug("%s: no single-face network (%s); one face runs on the dynamic one", self.path, exc)
                single = None
            self._single = single.create_infer_request() if single is not None else None
            if single is not None and self._model_cache is not None:
                record_compiled_cache(self._model_cache)  # its compiled network joins the checked cache
        return self._single if self._single is not None else self._request

    def use_output(self, name: str) -> None:
        self._output = self.output_index(name)

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._request_lock:
            # a copy: the request's buffer is reused
            return np.array(self._request_for(x).infer({0: x})[self._output])

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        with self._request_lock:
            result = self._request_for(x).infer({0: x})
            return [np.array(result[i]) for i in range(len(self.output_names))]

    def output_index(self, name: str) -> int:
        # A compiled output can carry several tensor names (the ONNX output's and an inner
        # node's); ``output_names`` shows one of them.
        for i, out in enumerate(self._compiled.outputs):
            if name in out.get_names():
                return i
        raise ValueError(f"no output called {name!r}")


