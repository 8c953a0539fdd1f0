import io

import numpy as np
import pytest
from PIL import Image

from faceapp.errors import ImageError
from faceapp.vision.images import as_rgb8, decode_image, load_image


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


# ---------------------------------------------------------------- untrusted files


def _png_header_claiming(width: int, height: int) -> bytes:
    """A tiny, valid-looking PNG whose header claims ``width`` x ``height`` (CRCs correct)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit grey: compresses to nothing
    idat = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_pixel_budget_is_checked_on_the_header_before_decoding(monkeypatch):
    from PIL import ImageFile

    bomb = _png_header_claiming(28000, 28000)  # 784 megapixels in a few hundred bytes
    decoded = []
    real_load = ImageFile.ImageFile.load

    def counted_load(self):
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted_load)
    with pytest.raises(ImageError, match="784 megapixels, over the limit of 100"):
        decode_image(bomb, "bomb.png")
    assert decoded == []  # refused on the header: no pixel was decoded
    small = _encode(Image.new("RGB", (300, 200)), "PNG")
    assert decode_image(small, max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(ImageError, match="max_image_pixels"):
        decode_image(small, "small.png", max_pixels=59_999)


def test_pixel_budget_setting_reaches_the_pipeline(tmp_path, data_dir):
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(gallery=tmp_path / "g", max_image_pixels=100_000)) as pipe:
        with pytest.raises(ImageError, match="megapixels"):
            pipe.analyze(data_dir / "obama.jpg")


def test_only_regular_files_are_read(tmp_path):
    import os
    import threading

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            load_image(fifo)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "reading a FIFO hung"
    assert isinstance(outcome[0], ImageError) and "FIFO" in str(outcome[0])
    if os.path.exists("/dev/zero"):
        with pytest.raises(ImageError, match="is a device, not an image file"):
            load_image("/dev/zero")
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        load_image(tmp_path)


def test_symlinks(tmp_path, data_dir):
    loop_a, loop_b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    with pytest.raises(ImageError, match="symlink loop"):
        load_image(loop_a)
    dangling = tmp_path / "gone.jpg"
    dangling.symlink_to(tmp_path / "nowhere.jpg")
    with pytest.raises(ImageError, match="broken symlink"):
        load_image(dangling)
    good = tmp_path / "photo.jpg"
    good.symlink_to(data_dir / "obama2.jpg")
    assert load_image(good).ndim == 3


def test_byte_cap(tmp_path):
    from faceapp.vision.images import read_image_bytes

    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * 5000)
    assert len(read_image_bytes(big, max_bytes=5000)) == 5000
    with pytest.raises(ImageError, match="more than faceapp reads"):
        read_image_bytes(big, max_bytes=4999)


def test_formats_outside_the_list_are_not_parsed():
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # would start Ghostscript
    with pytest.raises(ImageError, match="not an image faceapp can read"):
        decode_image(eps, "x.eps")


def test_cli_refuses_bad_inputs_with_one_line_and_exit_2(tmp_path, capsys):
    import os

    from faceapp.cli import main

    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    code = main(["--gallery", str(tmp_path / "g"), "match", str(fifo)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == "" and err.count("\n") == 1 and "FIFO" in err  # the error is one line on stderr
