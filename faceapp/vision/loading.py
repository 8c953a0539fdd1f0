"""Loading a network, one way for the face detector and the embedder.

Every network goes through the same four steps: **resolve** its file, **verify** it (a
bundled file's sha256 must be the manifest's, :func:`faceapp.vision.models.check`; the
sha256 also keys the cached runtime choice), **choose the runtime**
(:func:`faceapp.vision.runtime.select`: the one named, or both CPU runtimes timed once per
model and machine and the choice cached) and **open** it on that runtime
(:mod:`faceapp.vision.backends`). What differs between networks is said by :class:`Graphs`:
which graph each runtime loads, whether CUDA may run it, and onnxruntime's threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceapp.errors import ModelError
from faceapp.vision import models
from faceapp.vision.backends import Backend
from faceapp.vision.runtime import Selection

# A graph a runtime loads instead of the model file, or a callable giving it (or None) when
# that runtime is opened, so that a variant is looked up and hash-checked only when it is used.
GraphPath = Path | Callable[[], Path | None] | None
# The precision a float graph runs at on OpenVINO for each precision asked for: a network that
# ships no int8 graph runs in bf16 where int8 is asked for (embeddings within a cosine of 0.9997
# of fp32 on real faces, see README "Performance").
_FLOAT = {"int8": "bf16", "fp32": "fp32"}


@dataclass(frozen=True)
class Graphs:
    """How one network runs: the graph each runtime loads, and where it may run.

    Attributes:
        onnxruntime: the graph onnxruntime loads (default: the model file).
        openvino: the graph OpenVINO loads (default: the model file).
        precision: the precision asked for on OpenVINO: ``"int8"`` runs the ``openvino`` graph
            (the int8 one) where one is given, else the model's float layers in bf16 where the
            CPU has bf16 instructions; ``"fp32"`` runs fp32. It keys the cached choice. ``None``:
            the network has one graph, run in fp32, and its choice is keyed by the thread setting alone.
        cuda: the network may run on onnxruntime's CUDA provider (the detector never does:
            ``cuda`` and ``auto`` then choose between the CPU runtimes).
        onnxruntime_threads: onnxruntime's threads when they are not the ``threads`` asked for.
    """

    onnxruntime: GraphPath = None
    openvino: GraphPath = None
    precision: str | None = None
    cuda: bool = True
    onnxruntime_threads: int | None = None


def _graph(graph: GraphPath, model: Path) -> tuple[Path, bool]:
    """The file a runtime loads, and whether it is a variant rather than the model itself."""
    variant = graph() if callable(graph) else graph
    return (Path(variant), True) if variant is not None else (model, False)


def open_graph(model: Path, runtime_name: str, graphs: Graphs = Graphs(), *, threads: int = 0,
               cache_dir: Path | None = None, model_sha256: str | None = None) -> Backend:
    """Open ``model`` on one runtime: ``"cpu"`` (onnxruntime), ``"cuda"`` or ``"openvino"``.

    Args:
        model: the model file.
        runtime_name: the runtime.
        graphs: which graph the runtime loads, and its threads.
        threads: inference threads (0 = the runtime's default, every core).
        cache_dir: the cache folder: OpenVINO's compiled networks go in ``openvino/`` under
            it, the model's metadata in its ``runtime.json`` (``None``: no cache).
        model_sha256: the model's hash, the key of its recorded metadata.

    Raises:
        ModelError: the runtime cannot load the graph.
    """
    from faceapp.vision import backends, runtime

    if runtime_name != "openvino":
        path, _ = _graph(graphs.onnxruntime, model)
        ort_threads = graphs.onnxruntime_threads if graphs.onnxruntime_threads is not None else threads
        return backends.OrtBackend(path, cuda=runtime_name == "cuda", threads=ort_threads)
    cache = runtime.RuntimeCache(cache_dir / "runtime.json") if cache_dir is not None and model_sha256 else None
    known = cache.get_metadata(model_sha256) if cache is not None and model_sha256 else None
    path, variant = _graph(graphs.openvino, model)
    precision = "fp32" if graphs.precision is None else graphs.precision if variant else _FLOAT.get(graphs.precision, "fp32")
    backend = backends.OpenVinoBackend(path, cache_dir=cache_dir / "openvino" if cache_dir is not None else None,
                                       threads=threads, precision=precision, known_metadata=known)
    if cache is not None and model_sha256 and known is None and backend.metadata:
        cache.put_metadata(model_sha256, backend.metadata)
    return backend


def load_network(model: Path, requested: str = "auto", graphs: Graphs = Graphs(), *,
                 model_sha256: str | None = None, threads: int = 0, cache_dir: Path | None = None,
                 probe: Callable[[Backend], np.ndarray] | None = None) -> Selection:
    """Resolve, verify, choose the runtime for and open one network.

    Args:
        model: the model file.
        requested: ``"auto"``, ``"cuda"``, ``"openvino"`` or ``"cpu"``.
        graphs: how the network runs.
        model_sha256: the model's hash when the file was already verified
            (:func:`faceapp.vision.models.check`); otherwise it is verified here.
        threads: inference threads (0 = every core).
        cache_dir: where timed choices, metadata and compiled networks are kept (default: the
            user cache directory).
        probe: a batch-1 input for a loaded backend, to time the runtimes on.

    Raises:
        ModelError: the file is missing, damaged or not a network the runtime can load, or the
            requested runtime is missing.
    """
    from faceapp.vision import runtime

    model = Path(model)
    if model_sha256 is None:
        model_sha256 = models.check(model).sha256
    elif not model.is_file():
        raise models.missing_file(model)
    try:
        avail = runtime.availability()
    except ImportError as exc:  # pragma: no cover - dependency missing
        raise ModelError(f"onnxruntime is not installed ({exc}); reinstall faceapp") from exc
    if not graphs.cuda:
        avail = runtime.Availability(cuda=False, openvino=avail.openvino)
        requested = requested if requested in runtime.CPU_RUNTIMES else "auto"
    if cache_dir is None:
        from faceapp.config import default_cache_dir

        cache_dir = default_cache_dir()
    sha, root = model_sha256, cache_dir
    key = f"{runtime.machine_key()}|threads={threads}" + (f"|precision={graphs.precision}" if graphs.precision else "")
    return runtime.select(
        requested, lambda name: open_graph(model, name, graphs, threads=threads, cache_dir=root, model_sha256=sha),
        avail=avail, model_sha256=sha, cache=runtime.RuntimeCache(cache_dir / "runtime.json"), probe=probe,
        machine=key,
    )
