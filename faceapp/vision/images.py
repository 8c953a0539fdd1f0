"""Reading images from disk into RGB uint8 arrays.

Honours EXIF orientation; turns grey, palette, CMYK, alpha (flattened onto white),
16-bit and float images into 8-bit RGB. Truncated and corrupt files raise
:class:`~faceapp.errors.ImageError` instead of decoding to a half-grey picture.

Files are untrusted input, so reading is bounded: only regular files are opened (a FIFO,
a device or a folder is refused, never read), at most ``MAX_FILE_BYTES`` are read, only
the formats in :data:`PIL_FORMATS` are parsed, and the dimensions in the header are
checked against a pixel budget before any pixel is decoded.
"""

from __future__ import annotations

import errno
import io
import os
import queue
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np

from faceapp.config import MAX_PIXELS
from faceapp.errors import ImageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"})
# The Pillow plugins that may parse a file; nothing else is tried (no EPS/Ghostscript, ...).
PIL_FORMATS = ("JPEG", "PNG", "BMP", "WEBP", "TIFF", "GIF")
MAX_FILE_BYTES = 256 * 1024 * 1024  # no photo faceapp can use is larger than this on disk

# What Pillow's decoders raise on damaged data (the fuzz test in tests/ exercises them).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError,
                  struct.error, ZeroDivisionError, OverflowError, MemoryError)


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


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _stat_error(p: Path, exc: OSError) -> ImageError:
    """One line for a path that cannot be looked at."""
    if exc.errno == errno.ELOOP:
        return ImageError(f"{p} is a symlink loop; point it at a real image file")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        if p.is_symlink():
            return ImageError(f"{p} is a broken symlink (to {os.readlink(p)}); fix the link or give the image itself")
        return ImageError(f"{p} does not exist; check the path")
    if exc.errno == errno.EACCES:
        return ImageError(f"{p} cannot be read (permission denied); check its permissions")
    if exc.errno == errno.ENAMETOOLONG:
        return ImageError(f"{str(p)[:80]}... is not a usable path (name too long)")
    return ImageError(f"{p} cannot be read ({exc.strerror}); check the path and its permissions")


def read_image_bytes(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Read a regular file's bytes, refusing anything that could hang or flood the reader.

    The file is opened non-blocking and checked on the open descriptor, so a FIFO or
    device put in its place between the check and the open is refused too.

    Args:
        path: the file.
        max_bytes: larger files are refused without being read.

    Raises:
        ImageError: missing, a symlink loop, a folder/FIFO/device/socket, unreadable, or
            larger than ``max_bytes``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise _stat_error(p, exc) from exc
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{p} is {_file_kind(st.st_mode)}, not an image file; give a JPEG or PNG photo")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise _stat_error(p, exc) from exc
    with os.fdopen(fd, "rb", buffering=0) as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ImageError(f"{p} is {_file_kind(st.st_mode)}, not an image file; give a JPEG or PNG photo")
        if st.st_size > max_bytes:
            raise ImageError(f"{p} is {st.st_size / 2**20:.0f} MB, more than faceapp reads "
                             f"({max_bytes / 2**20:.0f} MB); use a smaller photo")
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise ImageError(f"{p} cannot be read ({exc.strerror}); check the file and its disk") from exc
    if len(data) > max_bytes:  # the file grew while being read
        raise ImageError(f"{p} is larger than faceapp reads ({max_bytes / 2**20:.0f} MB); use a smaller photo")
    return data


def check_pixel_budget(size: tuple[int, int], max_pixels: int, name: str) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels.

    Raises:
        ImageError: ``width * height > max_pixels``, or a zero dimension.
    """
    w, h = size
    if w < 1 or h < 1:
        raise ImageError(f"{name} says it is {w} x {h} pixels; it is damaged, re-export it")
    if w * h > max_pixels:
        raise ImageError(
            f"{name} is {w} x {h} = {w * h / 1e6:.0f} megapixels, over the limit of {max_pixels / 1e6:.0f}; "
            "downscale it or raise max_image_pixels in the settings"
        )


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to ``(H, W, 3)`` RGB uint8.

    Args:
        data: the encoded file (JPEG, PNG, WebP, BMP, TIFF or GIF; first frame only).
        name: how to call the image in error messages.
        max_pixels: pixel budget, checked on the header before decoding.

    Raises:
        ImageError: the bytes are not a complete image Pillow can read, or are over budget.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name} is empty (0 bytes); use a JPEG or PNG photo")
    # The budget below replaces Pillow's own bomb check, which would refuse before we can
    # say how large the image is, and could not be raised past its fixed limit.
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as img:
                check_pixel_budget(img.size, max_pixels, name)
                img.load()
                upright = ImageOps.exif_transpose(img) or img
                return to_rgb8(upright)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name} is not an image faceapp can read; use a JPEG or PNG photo") from exc
    except Image.DecompressionBombError as exc:
        raise ImageError(f"{name} is too large ({exc}); downscale it below {max_pixels // 1_000_000} megapixels") from exc
    except MemoryError as exc:
        raise ImageError(f"{name} needs more memory to decode than is free; use a smaller photo") from exc
    except _DECODE_ERRORS as exc:
        raise ImageError(f"{name} is damaged or truncated ({type(exc).__name__}: {str(exc)[:120]}); "
                         "re-export or re-copy the file") from exc


def load_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file into ``(H, W, 3)`` RGB uint8, EXIF orientation applied.

    Args:
        path: a regular image file (symlinks are followed).
        max_pixels: pixel budget, checked on the header before decoding.

    Raises:
        ImageError: missing, not a regular file, unreadable, too large, not an image,
            truncated or corrupt.
    """
    return decode_image(read_image_bytes(path), str(path), max_pixels)


@dataclass(frozen=True)
class Photo:
    """A photo decoded for detection, possibly at a reduced JPEG scale.

    Attributes:
        image: ``(h, w, 3)`` RGB uint8, EXIF orientation applied.
        scale: ``image`` size over the full-resolution size (1.0, 1/2, 1/4 or 1/8 for a JPEG,
            1/factor for other formats).
        path: the file, to decode again at full resolution when a face is small.
    """

    image: np.ndarray = field(repr=False)
    scale: float
    path: Path
    max_pixels: int = MAX_PIXELS
    data: bytes = field(default=b"", repr=False)
    # The decoded full-size Pillow image of a photo that is not a JPEG (it cannot be decoded
    # again at a reduced size), kept so that small faces are cut from it without a second decode.
    pil: Any = field(default=None, repr=False, compare=False)

    def full(self) -> np.ndarray:
        """The photo at full resolution (decoded again, from the bytes already read, when ``scale`` < 1)."""
        if self.scale == 1.0:
            return self.image
        if self.pil is not None:
            return to_rgb8(self.pil)
        return decode_image(self.data, str(self.path), self.max_pixels) if self.data else load_image(self.path, self.max_pixels)

    def region(self, box: tuple[float, float, float, float]) -> tuple[np.ndarray, tuple[int, int]]:
        """Full-resolution pixels inside ``box`` (x0, y0, x1, y1 in full-resolution pixels,
        clipped to the photo) and the region's top-left corner, without a full-size array."""
        from PIL import Image, ImageOps

        if self.scale == 1.0:
            source: Any = None
            h, w = self.image.shape[:2]
        elif self.pil is not None:
            source = self.pil
            w, h = source.size
        else:
            with Image.open(io.BytesIO(self.data or read_image_bytes(self.path)), formats=PIL_FORMATS) as img:
                check_pixel_budget(img.size, self.max_pixels, str(self.path))
                img.load()
                source = ImageOps.exif_transpose(img) or img
            w, h = source.size
        x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
        x1, y1 = min(w, int(np.ceil(box[2]))), min(h, int(np.ceil(box[3])))
        if source is None:
            return self.image[y0:y1, x0:x1], (x0, y0)
        return to_rgb8(source.crop((x0, y0, x1, y1))), (x0, y0)


def load_photo(path: str | Path, min_side: int, max_pixels: int = MAX_PIXELS) -> Photo:
    """Read a photo, decoded at a reduced size where it is larger than the caller needs.

    A JPEG is decoded at the smallest DCT scale (1, 1/2, 1/4, 1/8) whose longer side is
    still at least ``min_side`` pixels (Pillow's draft mode), which is several times faster
    than a full decode. Other formats cannot be decoded at a reduced size: they are decoded
    once into Pillow's buffer and reduced by a whole factor at once (:data:`DECODE_MEMORY`
    states the bound), so no full-size array is made unless :meth:`Photo.full` asks for one.

    Args:
        path: the image file.
        min_side: the longer side the caller needs (for example the detector's working size).
        max_pixels: pixel budget of the full-resolution image, checked on the header.

    Raises:
        ImageError: as :func:`load_image`.
    """
    from PIL import Image, ImageOps

    p = Path(path)
    data = read_image_bytes(p)
    Image.MAX_IMAGE_PIXELS = None  # the budget is checked below, on the header
    try:
        with Image.open(io.BytesIO(data), formats=PIL_FORMATS) as img:
            if img.format != "JPEG":
                factor = max(img.size) // max(1, min_side)
                if factor < 2:
                    return Photo(decode_image(data, str(p), max_pixels), 1.0, p, max_pixels)
                check_pixel_budget(img.size, max_pixels, str(p))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    img.load()
                    upright = ImageOps.exif_transpose(img) or img
                    if upright.mode not in _REDUCIBLE_MODES:
                        upright = upright.convert("RGBA" if "A" in upright.mode or "transparency" in upright.info
                                                  else "RGB")
                    small = upright.reduce(factor)  # each pixel the mean of a factor x factor block
                return Photo(to_rgb8(small), 1.0 / factor, p, max_pixels, data, upright)
            check_pixel_budget(img.size, max_pixels, str(p))
            full_w, full_h = img.size
            # draft() picks the largest scale reduction that keeps both requested sides.
            ratio = min_side / max(full_w, full_h)
            if ratio < 1.0:
                img.draft("RGB", (max(1, int(full_w * ratio)), max(1, int(full_h * ratio))))
            scale = img.size[0] / full_w
            img.load()
            upright = ImageOps.exif_transpose(img) or img
            return Photo(to_rgb8(upright), scale, p, max_pixels, data if scale < 1.0 else b"")
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return Photo(decode_image(data, str(p), max_pixels), 1.0, p, max_pixels)  # the full decoder's messages


# Modes Pillow's reduce() works on; others (palette, 16-bit) are converted to RGB(A) first.
_REDUCIBLE_MODES = ("L", "LA", "RGB", "RGBA", "I", "F")
# A photo that is not a JPEG is held once at full size in Pillow's buffer (4 bytes a pixel
# for RGB: 400 MB at the 100-megapixel limit) while its faces are found and cut out; the
# arrays handed on are the reduced photo and the regions around small faces.
DECODE_MEMORY = "4 bytes per pixel of the full photo, once"

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


def encode_crop(crop: np.ndarray) -> bytes:
    """A ``(112, 112, 3)`` RGB uint8 face crop as the JPEG the gallery stores."""
    import cv2

    ok, buf = cv2.imencode(".jpg", crop[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    return buf.tobytes() if ok else b""


def decode_crop(data: bytes) -> np.ndarray:
    """A stored face crop back to ``(112, 112, 3)`` RGB uint8."""
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise ImageError("a stored face crop is damaged")
    return np.ascontiguousarray(arr[:, :, ::-1])
