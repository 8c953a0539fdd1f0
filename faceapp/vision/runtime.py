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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from faceapp import private
from faceapp.errors import Fix, ModelError
from faceapp.vision.backends import ORT_CUDA, Backend

log = logging.getLogger(__name__)

RUNTIMES = ("auto", "cuda", "openvino", "cpu")
CPU_RUNTIMES = ("cpu", "openvino")
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
        raise ModelError("the CUDA provider was asked for but onnxruntime has no CUDA provider", Fix.CUDA_OR_AUTO)
    if requested == "openvino" and not avail.openvino:
        raise ModelError("the OpenVINO provider was asked for but OpenVINO is not installed", Fix.OPENVINO_OR_AUTO)
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
