"""Where the embedder's network runs: onnxruntime on CPU or CUDA, or OpenVINO on CPU.

A *runtime* is one of ``"cpu"`` (onnxruntime's CPU provider), ``"openvino"`` (the
OpenVINO runtime, CPU device, fp32) or ``"cuda"`` (onnxruntime-gpu). ``"auto"`` takes
CUDA when it works; otherwise, when more than one CPU runtime is installed, it times
them on the model once per model and machine, keeps the faster one and caches that
choice (a JSON file in the user cache directory), so later starts load only the winner.

The choice itself is a pure function of what is installed and what was measured
(:func:`plan`, :func:`fastest`); opening and timing the networks is kept apart from it.
Thread settings aim at latency on small CPUs shared with a GUI and a camera: no
spin-waiting threads, one inter-op thread, OpenVINO without thread pinning.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from faceapp import private
from faceapp.errors import ModelError

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "cuda", "openvino", "cpu")
CPU_RUNTIMES = ("cpu", "openvino")
ORT_CPU = "CPUExecutionProvider"
ORT_CUDA = "CUDAExecutionProvider"
# Another CPU runtime replaces onnxruntime's only when it is at least this much faster
# (a ratio of batch-1 medians), so that timing noise does not flip the choice.
SWITCH_RATIO = 0.9
CACHE_VERSION = 1


@dataclass(frozen=True)
class Availability:
    """Which runtimes this installation can use.

    Attributes:
        cuda: onnxruntime lists the CUDA execution provider (onnxruntime-gpu).
        openvino: the ``openvino`` package is importable.
    """

    cuda: bool
    openvino: bool


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


def availability() -> Availability:
    """What is installed (cheap: no network is loaded, OpenVINO is not imported)."""
    import importlib.util

    import onnxruntime as ort

    return Availability(
        cuda=ORT_CUDA in ort.get_available_providers(),
        openvino=importlib.util.find_spec("openvino") is not None,
    )


def plan(requested: str, avail: Availability) -> list[str]:
    """The runtimes to consider for ``requested``; more than one means "time them".

    Args:
        requested: ``"auto"``, ``"cuda"``, ``"openvino"`` or ``"cpu"``.
        avail: what is installed.

    Raises:
        ModelError: an unknown runtime, or one asked for by name that is not installed.
    """
    if requested not in RUNTIMES:
        raise ModelError(f"unknown provider {requested!r}; use {', '.join(RUNTIMES)}")
    if requested == "cuda" and not avail.cuda:
        raise ModelError(
            "--provider cuda was asked for but onnxruntime has no CUDA provider; install onnxruntime-gpu "
            "or use --provider auto or cpu"
        )
    if requested == "openvino" and not avail.openvino:
        raise ModelError(
            "--provider openvino was asked for but OpenVINO is not installed; pip install 'faceapp[openvino]' "
            "or use --provider auto or cpu"
        )
    if requested != "auto":
        return [requested]
    if avail.cuda:
        return ["cuda"]
    return ["cpu", "openvino"] if avail.openvino else ["cpu"]


def fastest(timings_ms: Mapping[str, float], default: str = "cpu", ratio: float = SWITCH_RATIO) -> str:
    """The runtime to use given measured batch-1 times.

    ``default`` wins unless another runtime takes at most ``ratio`` of its time.

    Args:
        timings_ms: runtime -> median milliseconds (missing or non-finite = unusable).
        default: the runtime kept on a near tie.
        ratio: how much faster another runtime must be to replace ``default``.
    """
    usable = {k: v for k, v in timings_ms.items() if np.isfinite(v) and v > 0}
    if not usable:
        return default
    best = min(usable, key=usable.__getitem__)
    if default not in usable:
        return best
    return best if usable[best] <= ratio * usable[default] else default


# ---------------------------------------------------------------------- cache of measured choices


def machine_key() -> str:
    """What a measurement depends on besides the model: CPU, core count, runtime versions."""
    # platform.processor() runs `uname -p` on Linux; the app starts no programs, so the CPU's
    # name comes from /proc/cpuinfo where there is one.
    cpu = platform.machine() if sys.platform.startswith("linux") else (platform.processor() or platform.machine())
    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name") and cpu in ("", platform.machine()):
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = "+".join(x for x in ("avx512f", "avx2", "avx512_bf16", "amx_tile") if x in have)
                    break
    except OSError:
        pass
    return f"{cpu}|{flags}|{os.cpu_count()}|{_versions()}"


def _versions() -> str:
    from importlib import metadata

    out = []
    for dist in ("onnxruntime", "onnxruntime-gpu", "openvino"):
        try:
            out.append(f"{dist}={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            continue
    return ",".join(out)


@dataclass(frozen=True)
class RuntimeCache:
    """Measured runtime choices, one per model hash and machine, in a JSON file.

    Args:
        path: the JSON file (created on the first :meth:`put`).
    """

    path: Path

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        return data

    def get_metadata(self, model_sha256: str) -> dict[str, str] | None:
        """The ONNX metadata recorded for a model hash, or ``None``."""
        meta = self._read().get("metadata", {}).get(model_sha256)
        return meta if isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()) else None

    def put_metadata(self, model_sha256: str, metadata: Mapping[str, str]) -> None:
        """Record a model's ONNX metadata, so that a later load need not parse the file."""
        self._write(lambda data: data.setdefault("metadata", {}).__setitem__(model_sha256, dict(metadata)))

    def get(self, model_sha256: str, machine: str) -> dict[str, Any] | None:
        """The stored record for this model and machine, or ``None``."""
        rec = self._read().get("choices", {}).get(f"{model_sha256}|{machine}")
        return rec if isinstance(rec, dict) and rec.get("runtime") in CPU_RUNTIMES else None

    def put(self, model_sha256: str, machine: str, runtime: str, timings_ms: Mapping[str, float]) -> None:
        """Store a choice; a cache that cannot be written only costs a new measurement next time."""
        record = {
            "runtime": runtime, "timings_ms": {k: round(float(v), 3) for k, v in timings_ms.items()},
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        self._write(lambda data: data.setdefault("choices", {}).__setitem__(f"{model_sha256}|{machine}", record))

    def _write(self, change: Callable[[dict[str, Any]], None]) -> None:
        try:
            private.make_private_dir(self.path.parent)
            with private.update_lock(self.path):  # another process may be recording its own choice
                data = self._read() or {"version": CACHE_VERSION}
                change(data)
                private.write_atomically(self.path, json.dumps(data, indent=1))
        except OSError as exc:
            log.warning("cannot write the runtime cache %s (%s); the runtimes will be timed again", self.path, exc)


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
class OrtBackend:
    """onnxruntime on the CPU or CUDA provider.

    Args:
        path: ONNX file.
        cuda: use the CUDA provider (CPU as onnxruntime's fallback for unsupported nodes).
        threads: intra-op threads (0 = onnxruntime's default, one per core).
    """

    path: Path
    cuda: bool = False
    threads: int = 0
    name: str = field(init=False)
    label: str = field(init=False)
    metadata: dict[str, str] = field(init=False)
    input_names: list[str] = field(init=False)
    input_shape: tuple[int | None, ...] = field(init=False)
    output_names: list[str] = field(init=False)
    batch: int | None = field(init=False)
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
                raise ModelError(f"the CUDA provider failed ({_first_line(exc)}); use --provider auto or cpu") from exc
            raise ModelError(f"{self.path} is not a usable ONNX model ({_first_line(exc)}); check --model") from exc
        if self.cuda and self.session.get_providers()[0] != ORT_CUDA:
            raise ModelError(
                "--provider cuda was asked for but the CUDA provider did not initialise (no usable GPU or "
                "CUDA libraries); use --provider auto or cpu"
            )
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
class OpenVinoBackend:
    """The OpenVINO runtime on the CPU, latency hint, dynamic batch.

    Floating-point layers run in fp32 (never bf16); a quantised (int8) graph runs its
    quantised layers in int8.

    Compiled networks are cached in ``cache_dir/<model file name>`` (OpenVINO's own model
    cache), checked against the digests kept beside them (:func:`verify_compiled_cache`). When the
    model's metadata is passed in as well (kept from an earlier load), the ONNX file is
    not parsed at all: OpenVINO loads the compiled network from its cache, which roughly
    halves the start-up time.

    Args:
        path: ONNX file.
        cache_dir: OpenVINO model cache folder, or ``None`` for none.
        threads: inference threads (0 = OpenVINO's default).
        precision: ``"int8"`` when ``path`` is the statically quantised graph (shown in the
            label), else ``"fp32"``.
        known_metadata: the model's ONNX metadata when already known, else ``None``.
    """

    path: Path
    cache_dir: Path | None = None
    threads: int = 0
    precision: str = "fp32"
    known_metadata: InitVar[dict[str, str] | None] = None
    name: str = field(init=False, default="openvino")
    label: str = field(init=False)
    metadata: dict[str, str] = field(init=False)
    input_names: list[str] = field(init=False)
    input_shape: tuple[int | None, ...] = field(init=False)
    output_names: list[str] = field(init=False)
    batch: int | None = field(init=False)

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
        try:
            if known_metadata is not None and "CACHE_DIR" in config:
                self.metadata = dict(known_metadata)
                compiled = core.compile_model(str(self.path), "CPU", config)
            else:
                model = core.read_model(str(self.path))
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
            raise ModelError(f"OpenVINO cannot load {self.path} ({_first_line(exc)}); use --provider cpu") from exc
        if "CACHE_DIR" in config and not cache_sound and model_cache is not None:
            record_compiled_cache(model_cache)
        self._compiled = compiled
        # One infer request serves every call; a request runs one inference at a time, and the
        # GUI embeds from its worker and from the GUI thread (enrolment, "Not X").
        self._request_lock = threading.Lock()
        self._request = compiled.create_infer_request()
        self._output = compiled.output(0)
        self.label = f"OpenVINO {ov.get_version().split('-')[0]} CPU" + (" int8" if self.precision == "int8" else "")

    def use_output(self, name: str) -> None:
        self._output = self._compiled.output(name)

    def run(self, x: np.ndarray) -> np.ndarray:
        with self._request_lock:
            return np.array(self._request.infer({0: x})[self._output])  # a copy: the request's buffer is reused

    def run_all(self, x: np.ndarray) -> list[np.ndarray]:
        with self._request_lock:
            result = self._request.infer({0: x})
            return [np.array(result[out]) for out in self._compiled.outputs]

    def output_index(self, name: str) -> int:
        # A compiled output can carry several tensor names (the ONNX output's and an inner
        # node's); ``output_names`` shows one of them.
        for i, out in enumerate(self._compiled.outputs):
            if name in out.get_names():
                return i
        raise ValueError(f"no output called {name!r}")


Opener = Callable[[str], Backend]


def time_backends(backends: Sequence[Backend], x: np.ndarray, rounds: int = 15, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per run of each backend on ``x``, the backends interleaved.

    Interleaving makes a burst of load from another process hit every backend alike.
    """
    times: dict[str, list[float]] = {b.name: [] for b in backends}
    for b in backends:
        for _ in range(warmup):
            b.run(x)
    for _ in range(rounds):
        for b in backends:
            t0 = time.perf_counter()
            b.run(x)
            times[b.name].append((time.perf_counter() - t0) * 1e3)
    return {k: float(np.median(v)) for k, v in times.items()}


@dataclass(frozen=True)
class Selection:
    """The backend in use and why it was picked.

    Attributes:
        backend: the loaded network.
        note: one line for ``faceapp-cli info`` and the GUI, e.g.
            ``"OpenVINO 2026.4.1 CPU (auto: 8.1 ms vs onnxruntime CPU 16.0 ms, measured ...)"``.
        timings_ms: the batch-1 medians the choice rests on (empty when nothing was timed).
    """

    backend: Backend
    note: str
    timings_ms: dict[str, float]


def select(requested: str, open_runtime: Opener, *, avail: Availability, model_sha256: str,
           cache: RuntimeCache | None, probe: Callable[[Backend], np.ndarray] | None = None,
           machine: str | None = None) -> Selection:
    """Open the runtime ``requested`` stands for, timing the candidates when it must.

    Args:
        requested: ``"auto"``, ``"cuda"``, ``"openvino"`` or ``"cpu"``.
        open_runtime: loads the model on one runtime (``"cpu"``, ``"openvino"``, ``"cuda"``).
        avail: what is installed.
        model_sha256: the model's hash, part of the cache key.
        cache: where measured choices are kept (``None`` = always measure).
        probe: makes one batch-1 model input for a loaded backend to time on; required when
            there is something to time.
        machine: the machine key (default :func:`machine_key`).

    Raises:
        ModelError: the requested runtime is missing or cannot load the model.
    """
    candidates = plan(requested, avail)
    if requested == "auto" and candidates == ["cuda"]:
        try:
            b = open_runtime("cuda")
            return Selection(b, f"{b.label} (auto: GPU found)", {})
        except ModelError as exc:
            log.warning("CUDA did not work (%s); using the CPU", exc)
            candidates = plan("auto", Availability(cuda=False, openvino=avail.openvino))
    if len(candidates) == 1:
        b = open_runtime(candidates[0])
        why = "" if requested != "auto" else " (auto: the only CPU runtime installed)"
        return Selection(b, f"{b.label}{why}", {})
    machine = machine or machine_key()
    record = cache.get(model_sha256, machine) if cache is not None else None
    if record is not None and record["runtime"] in candidates:
        try:
            b = open_runtime(record["runtime"])
            return Selection(b, _note(b, record["timings_ms"], record.get("measured_at", "")), record["timings_ms"])
        except ModelError as exc:
            log.warning("cached runtime %s failed (%s); timing the runtimes again", record["runtime"], exc)
    opened: list[Backend] = []
    for name in candidates:
        try:
            opened.append(open_runtime(name))
        except ModelError as exc:
            if name == "cpu":
                raise
            log.warning("%s runtime unusable (%s)", name, exc)
    if len(opened) == 1:
        return Selection(opened[0], f"{opened[0].label} (auto: the other CPU runtime failed to load)", {})
    if probe is None:
        raise ValueError("select() needs a probe input to time the runtimes")
    timings = time_backends(opened, probe(opened[0]))
    winner = fastest(timings)
    chosen = next(b for b in opened if b.name == winner)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if cache is not None:
        cache.put(model_sha256, machine, winner, timings)
    log.info("runtime timings %s -> %s", timings, winner)
    return Selection(chosen, _note(chosen, timings, stamp), timings)


def _note(b: Backend, timings: Mapping[str, float], stamp: str) -> str:
    others = ", ".join(f"{_LABELS.get(k, k)} {v:.1f} ms" for k, v in timings.items() if k != b.name)
    return f"{b.label} (auto: {timings.get(b.name, float('nan')):.1f} ms vs {others}, batch 1, timed {stamp})"


_LABELS = {"cpu": "onnxruntime CPU", "openvino": "OpenVINO CPU", "cuda": "onnxruntime CUDA"}
