"""Fuzz driver for :func:`faceapp.vision.images.decode_image` (run by ``tests/test_images_fuzz.py``).

Seeds are small JPEG, PNG and WebP files made from the committed photos in
``tests/data``; each case is a truncation, a few flipped bits, or overwritten header
bytes of one seed, drawn from a fixed random seed so every run tries the same cases.
Every case must either decode to an ``(H, W, 3)`` uint8 array or raise
:class:`faceapp.errors.ImageError`. Prints one JSON line: the number of cases, the
failures (anything else raised), the slowest case and the peak resident memory.

Usage: ``python tests/fuzz_images.py [CASES] [SEED]``
"""

from __future__ import annotations

import io
import json
import random
import resource
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


def _peak_rss_mb() -> float:
    """This process's own peak resident memory. On Linux ru_maxrss survives exec and so can
    report the parent's size (a large pytest process); /proc's VmHWM starts afresh at exec."""
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def seeds() -> dict[str, bytes]:
    """Small encodings of the committed photos, one per format and flavour."""
    from PIL import Image

    photo = Image.open(DATA / "obama2.jpg").convert("RGB")
    photo.thumbnail((96, 96))
    grey = photo.convert("L")
    out: dict[str, bytes] = {}

    def save(name: str, img: Image.Image, fmt: str, **kw: object) -> None:
        buf = io.BytesIO()
        img.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("baseline.jpg", photo, "JPEG", quality=85)
    save("progressive.jpg", photo, "JPEG", quality=85, progressive=True)
    save("grey.jpg", grey, "JPEG", quality=85)
    save("rgb.png", photo, "PNG")
    save("palette.png", photo.quantize(32), "PNG")
    save("interlaced.png", photo, "PNG", interlace=1)
    save("lossy.webp", photo, "WEBP", quality=80)
    save("lossless.webp", photo, "WEBP", lossless=True)
    return out


def mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One damaged copy of ``data`` and how it was made."""
    kind = rng.choice(("truncate", "flip", "header"))
    buf = bytearray(data)
    if kind == "truncate":
        n = rng.randrange(0, len(buf))
        return f"truncate@{n}", bytes(buf[:n])
    if kind == "flip":
        spots = []
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
            spots.append(i)
        return f"flip@{spots}", bytes(buf)
    # Overwrite bytes in the header, where dimensions, chunk lengths and tables live.
    i = rng.randrange(min(len(buf), 64))
    width = rng.randint(1, 4)
    buf[i:i + width] = bytes(rng.randrange(256) for _ in range(width))
    return f"header@{i}+{width}", bytes(buf)


def run(cases: int, seed: int) -> dict[str, object]:
    import numpy as np

    from faceapp.errors import ImageError
    from faceapp.vision.images import decode_image

    rng = random.Random(seed)
    sources = seeds()
    names = sorted(sources)
    failures: list[str] = []
    slowest = (0.0, "")
    outcomes = {"decoded": 0, "refused": 0}
    for k in range(cases):
        name = names[k % len(names)]
        how, data = mutate(sources[name], rng)
        t0 = time.perf_counter()
        try:
            arr = decode_image(data, f"{name}:{how}")
            if not (isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3):
                failures.append(f"{name} {how}: returned {type(arr).__name__} {getattr(arr, 'shape', '')}")
            outcomes["decoded"] += 1
        except ImageError as exc:
            if "\n" in str(exc):
                failures.append(f"{name} {how}: multi-line message {str(exc)!r}")
            outcomes["refused"] += 1
        except BaseException as exc:  # noqa: BLE001 - the point is to catch anything
            failures.append(f"{name} {how}: {type(exc).__name__}: {exc}")
        dt = time.perf_counter() - t0
        if dt > slowest[0]:
            slowest = (dt, f"{name} {how}")
    peak_mb = _peak_rss_mb()
    return {"cases": cases, "failures": failures, "outcomes": outcomes,
            "slowest_s": round(slowest[0], 3), "slowest_case": slowest[1], "peak_rss_mb": round(peak_mb, 1)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    s = int(sys.argv[2]) if len(sys.argv) > 2 else 20261126
    print(json.dumps(run(n, s)))
