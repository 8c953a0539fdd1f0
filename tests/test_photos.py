"""Fast photo reading: JPEG draft-mode decoding, full resolution for small faces, prefetching."""

import threading

import numpy as np
import pytest
from PIL import Image

from faceapp import pipeline as pipeline_module
from faceapp.errors import ImageError
from faceapp.vision.align import align_face
from faceapp.vision.images import load_image, load_photo, prefetch


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory, data_dir):
    """obama.jpg upscaled to a 1350-pixel-wide JPEG."""
    img = Image.open(data_dir / "obama.jpg").convert("RGB")
    w, h = img.size
    path = tmp_path_factory.mktemp("big") / "big.jpg"
    img.resize((1350, round(1350 * h / w)), Image.BICUBIC).save(path, quality=92)
    return path


def test_jpeg_is_decoded_at_a_reduced_scale_no_smaller_than_asked(big_jpeg):
    photo = load_photo(big_jpeg, 640)
    full = load_image(big_jpeg)
    assert photo.scale == 0.5 and max(photo.image.shape[:2]) >= 640
    assert photo.image.shape[1] == full.shape[1] // 2
    np.testing.assert_array_equal(photo.full(), full)
    assert load_photo(big_jpeg, 2000).scale == 1.0


def test_other_formats_and_bad_files(tmp_path, data_dir):
    small = load_photo(data_dir / "32bit.png", 64)  # other formats are reduced by a whole factor
    assert small.scale < 1.0 and max(small.image.shape[:2]) >= 64
    np.testing.assert_array_equal(small.full(), load_image(data_dir / "32bit.png"))
    bad = tmp_path / "cut.jpg"
    bad.write_bytes((data_dir / "obama.jpg").read_bytes()[:5000])
    with pytest.raises(ImageError, match="damaged or truncated"):
        load_photo(bad, 640)
    with pytest.raises(ImageError, match="does not exist"):
        load_photo(tmp_path / "none.jpg", 640)


def _same_identity(face, faces):
    """The face is Obama's: closer to the other Obama photo than to Biden, by a clear margin."""
    to_obama = float(face.embedding @ faces["obama2.jpg"].embedding)
    to_biden = float(face.embedding @ faces["biden.jpg"].embedding)
    return to_obama, to_biden


def test_draft_decoded_photo_matches_the_full_decode(pipeline, big_jpeg, faces):
    fast = pipeline.main_face(big_jpeg)  # a path: decoded at half scale for detection
    full = pipeline.main_face(load_image(big_jpeg))
    np.testing.assert_allclose(fast.detection.box, full.detection.box, atol=12)  # full-resolution pixels
    assert fast.quality.face_size == pytest.approx(full.quality.face_size, rel=0.05)
    fast_obama, fast_biden = _same_identity(fast, faces)
    full_obama, full_biden = _same_identity(full, faces)
    assert fast_obama > pipeline.thresholds().match > fast_biden
    assert abs(fast_obama - full_obama) < 0.05 and abs(fast_biden - full_biden) < 0.05


def test_small_faces_are_aligned_from_the_full_resolution(pipeline, big_jpeg, monkeypatch):
    photo = load_photo(big_jpeg, 640)
    reloads = []
    real_region = type(photo).region

    def counted(self, box):
        reloads.append(1)
        return real_region(self, box)

    monkeypatch.setattr(type(photo), "region", counted)
    reduced = pipeline.main_face(photo)
    assert not reloads  # the face is large in the reduced image: no second decode
    face_width = reduced.detection.width * photo.scale  # in reduced pixels
    monkeypatch.setattr(pipeline_module, "FULL_RES_FACE_RATIO", 1.05 * face_width / 112)
    small = pipeline.main_face(photo)
    assert reloads == [1]
    assert small.detection.box == pytest.approx(reduced.detection.box)
    # the crop is cut from the full-resolution pixels, at the full-resolution keypoints
    template = pipeline.embedder.contract.template
    whole = align_face(load_image(big_jpeg), small.detection.keypoints, template, 112)
    assert np.abs(small.crop.astype(int) - whole).max() <= 1  # the region holds every pixel the crop takes
    assert not np.array_equal(small.crop, reduced.crop)


def test_prefetch_keeps_order_hands_over_errors_and_overlaps(tmp_path):
    paths = [tmp_path / f"{i}.jpg" for i in range(6)]
    started = {p.name: threading.Event() for p in paths}

    def load(p):
        started[p.name].set()
        if p.name == "3.jpg":
            raise ImageError("broken")
        return p.name

    got = []
    overlapped = []
    for item in prefetch(paths, load, depth=2):
        if item.source.name == "0.jpg":
            # the consumer still holds the first item: the loader goes on with the next one
            overlapped.append(started["1.jpg"].wait(timeout=60))
        got.append(item.value if item.error is None else str(item.error))
    assert got == ["0.jpg", "1.jpg", "2.jpg", "broken", "4.jpg", "5.jpg"]
    assert overlapped == [True]


def test_prefetch_stops_its_thread_when_abandoned(tmp_path):
    before = threading.active_count()
    it = prefetch((tmp_path / f"{i}" for i in range(1000)), lambda p: p.name, depth=2)
    assert next(it).value == "0"
    it.close()
    assert threading.active_count() == before


def test_a_large_png_is_reduced_right_after_decoding(tmp_path, data_dir, monkeypatch):
    from faceapp.vision import images

    big = tmp_path / "big.png"
    face = Image.open(data_dir / "obama.jpg").convert("RGB")
    Image.new("RGB", (4000, 3000), (90, 120, 150)).save(big)  # 12 megapixels
    with Image.open(big) as canvas:
        canvas.paste(face, (100, 100))
        canvas.save(big)
    arrays = []
    real = images.to_rgb8
    monkeypatch.setattr(images, "to_rgb8", lambda img: arrays.append(img.size) or real(img))
    photo = load_photo(big, 640)
    # no array of the full photo is made: one RGB copy of 12 megapixels would be 36 MB more
    assert arrays and max(w * h for w, h in arrays) < 4000 * 3000 // 4
    assert photo.scale == 1 / 6 and max(photo.image.shape[:2]) >= 640
    np.testing.assert_array_equal(photo.full(), load_image(big))  # the full photo stays reachable
