"""Reading images from disk into RGB uint8 arrays.

Honours EXIF orientation; turns grey, palette, CMYK, alpha (flattened onto white),
16-bit and float images into 8-bit RGB. Truncated and corrupt files raise
:class:`~faceapp.errors.ImageError` instead of decoding to a half-grey picture.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from .errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
MAX_PIXELS = 400_000_000  # ~20000 x 20000; beyond that decoding alone would need >1 GB


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        return np.clip(arr.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":
        hi = float(np.nanmax(arr)) if arr.size else 1.0
        scale = 255.0 if hi <= 1.0 else 255.0 / hi
        return np.clip(np.nan_to_num(arr) * scale, 0, 255).astype(np.uint8)
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    return np.clip(arr, 0, 255).astype(np.uint8)


def to_rgb8(pil_image: PIL.Image.Image) -> np.ndarray:  # type: ignore[name-defined]  # noqa: F821
    """Convert any Pillow image to an ``(H, W, 3)`` RGB uint8 array."""
    from PIL import Image

    img = pil_image
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img).convert("RGB")
    elif img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        grey = _to_uint8(np.asarray(img))
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    elif img.mode != "RGB":
        img = img.convert("RGB")
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8))


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to ``(H, W, 3)`` RGB uint8.

    Raises:
        ImageError: the bytes are not a complete image Pillow can read.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    if not data:
        raise ImageError(f"{name} is empty (0 bytes); use a JPEG or PNG photo")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            return to_rgb8(upright)
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image faceapp can read; use a JPEG or PNG photo") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large ({exc}); downscale it below {MAX_PIXELS // 1_000_000} megapixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name} is damaged or truncated ({exc}); re-export or re-copy the file") from exc


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file into ``(H, W, 3)`` RGB uint8, EXIF orientation applied.

    Raises:
        ImageError: missing, unreadable, not an image, truncated or corrupt.
    """
    p = Path(path)
    return decode_image(_read_file(p), str(p))


def _read_file(p: Path) -> bytes:
    if not p.exists():
        raise ImageError(f"{p} does not exist; check the path")
    if p.is_dir():
        raise ImageError(f"{p} is a folder, not an image")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p} cannot be read ({exc.strerror}); check its permissions") from exc


@dataclass(frozen=True)
class Photo:
    """A photo decoded for detection, possibly at a reduced JPEG scale.

    Attributes:
        image: ``(h, w, 3)`` RGB uint8, EXIF orientation applied.
        scale: ``image`` size over the full-resolution size (1.0, 1/2, 1/4 or 1/8).
        path: the file, to decode again at full resolution when a face is small.
    """

    image: np.ndarray = field(repr=False)
    scale: float
    path: Path

    def full(self) -> np.ndarray:
        """The photo at full resolution (decoded again when ``scale`` < 1)."""
        return self.image if self.scale == 1.0 else load_image(self.path)


def load_photo(path: str | Path, min_side: int) -> Photo:
    """Read a photo, letting JPEGs decode at a reduced scale (Pillow's draft mode).

    A JPEG is decoded at the smallest DCT scale (1, 1/2, 1/4, 1/8) whose longer side is
    still at least ``min_side`` pixels, which is several times faster than a full decode.
    Other formats are decoded in full.

    Args:
        path: the image file.
        min_side: the longer side the caller needs (for example the detector's working size).

    Raises:
        ImageError: as :func:`load_image`.
    """
    from PIL import Image, ImageOps

    p = Path(path)
    data = _read_file(p)
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                return Photo(decode_image(data, str(p)), 1.0, p)
            full_w, full_h = img.size
            # draft() picks the largest scale reduction that keeps both requested sides.
            ratio = min_side / max(full_w, full_h)
            if ratio < 1.0:
                img.draft("RGB", (max(1, int(full_w * ratio)), max(1, int(full_h * ratio))))
            scale = img.size[0] / full_w
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            return Photo(to_rgb8(upright), scale, p)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return Photo(decode_image(data, str(p)), 1.0, p)  # the full decoder's checks and messages


T = TypeVar("T")


@dataclass(frozen=True)
class Loaded(Generic[T]):
    """One item of :func:`prefetch`: the source, and the loaded value or the error it raised."""

    source: Path
    value: T | None
    error: Exception | None


def prefetch(paths: Iterable[Path], load: Callable[[Path], T], depth: int = 2) -> Iterator[Loaded[T]]:
    """Load ``paths`` on a background thread, ``depth`` ahead of the consumer, in order.

    Decoding (which releases the GIL in Pillow) overlaps with the caller's inference.
    An exception from ``load`` is handed over with its path instead of stopping the run.
    Stopping the iteration early stops the thread.
    """
    q: queue.Queue[Loaded[T] | None] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: Loaded[T] | None) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for path in paths:
                if stop.is_set():
                    return
                try:
                    put(Loaded(Path(path), load(Path(path)), None))
                except Exception as exc:  # handed to the consumer with its path
                    put(Loaded(Path(path), None, exc))
        finally:
            put(None)

    thread = threading.Thread(target=work, name="faceapp-prefetch", daemon=True)
    thread.start()
    try:
        while (got := q.get()) is not None:
            yield got
    finally:
        stop.set()
        thread.join(timeout=5)


def person_folders(root: str | Path) -> list[tuple[str, list[Path]]]:
    """``(name, photos)`` for each ``root/<name>/`` folder holding images, by name.

    Raises:
        ImageError: ``root`` is not a folder, or no sub-folder holds an image.
    """
    root = Path(root)
    if not root.is_dir():
        raise ImageError(f"{root} is not a folder; give a folder with one sub-folder of photos per person")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        photos = sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            out.append((d.name, photos))
    if not out:
        raise ImageError(f"{root} has no person folders with images (expected {root}/<name>/*.jpg)")
    return out


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """Accept an array from a caller and return a contiguous ``(H, W, 3)`` RGB uint8 view.

    Grey ``(H, W)`` and ``(H, W, 1)`` arrays become RGB, RGBA drops alpha, other dtypes
    are scaled to 8 bits.

    Raises:
        ImageError: the array is not an image shape.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ImageError(f"expected an (H, W, 3) RGB image array, got shape {arr.shape}")
    arr = _to_uint8(arr)
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    elif arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)
