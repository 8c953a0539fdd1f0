import io

import numpy as np
import pytest
from PIL import Image

from faceapp.errors import ImageError
from faceapp.images import as_rgb8, decode_image, load_image


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_exif_orientation_is_applied():
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = _encode(Image.fromarray(arr), "JPEG", exif=exif, quality=95)
    out = decode_image(data)
    assert out.shape == (40, 20, 3)
    assert out[:20].mean() > 200 and out[20:].mean() < 50  # white half now on top


def test_grey_alpha_16bit_and_palette():
    grey = decode_image(_encode(Image.new("L", (8, 6), 77), "PNG"))
    assert grey.shape == (6, 8, 3) and (grey == 77).all()
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert (decode_image(_encode(rgba, "PNG")) == 255).all()  # flattened onto white
    deep = Image.fromarray(np.full((5, 5), 65535, np.uint16))
    out16 = decode_image(_encode(deep, "PNG"))
    assert out16.dtype == np.uint8 and (out16 == 255).all()
    pal = Image.new("P", (3, 3), 1)
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    assert tuple(decode_image(_encode(pal, "PNG"))[0, 0]) == (10, 20, 30)


def test_bad_files_raise_one_clear_error(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "empty.jpg")
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageError, match="not an image"):
        load_image(tmp_path / "text.jpg")
    good = _encode(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)), "JPEG")
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_image(tmp_path / "cut.jpg")


def test_real_photo_loads(data_dir):
    img = load_image(data_dir / "32bit.png")
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3


def test_as_rgb8_accepts_arrays():
    assert as_rgb8(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_rgb8(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert as_rgb8(np.ones((2, 2, 3), np.float32)).max() == 255
    with pytest.raises(ImageError):
        as_rgb8(np.zeros((4,), np.uint8))
