"""End-to-end on real photos committed under tests/data (see data/SOURCES.md)."""

import dataclasses

import numpy as np
import pytest
from PIL import Image

from faceapp.errors import ManyFacesError, NoFaceError
from faceapp.types import Decision
from faceapp.vision.images import load_image


def test_same_person_scores_high_and_different_low(pipeline, faces):
    same = float(faces["obama.jpg"].embedding @ faces["obama2.jpg"].embedding)
    diff = float(faces["obama.jpg"].embedding @ faces["biden.jpg"].embedding)
    thr = pipeline.verify_threshold()
    assert same >= thr > diff
    v = pipeline.verify(pipeline_data("obama.jpg"), pipeline_data("biden.jpg"))
    assert not v.same and v.similarity == pytest.approx(diff, abs=1e-5)


def pipeline_data(name):
    from conftest import DATA

    return DATA / name


def test_face_geometry_is_sane(faces):
    f = faces["obama.jpg"]
    x0, y0, x1, y1 = f.detection.box
    k = f.detection.keypoints
    assert x0 < k[0, 0] < k[1, 0] < x1  # the image-left eye comes first
    assert y0 < k[0, 1] < k[3, 1] < y1  # eyes above the mouth
    assert f.crop.shape == (112, 112, 3)
    assert abs(f.quality.roll) < 15 and f.quality.face_size > 50
    assert np.linalg.norm(f.embedding) == pytest.approx(1.0, abs=1e-5)


def test_group_photo_finds_several_faces(pipeline, data_dir):
    faces, times = pipeline.analyze(data_dir / "t1.jpg")
    assert len(faces) >= 3
    areas = [f.detection.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert times.detect > 0 and times.embed > 0
    with pytest.raises(ManyFacesError, match="faces of similar size"):
        pipeline.main_face(data_dir / "t1.jpg")


def test_no_face(pipeline):
    blank = np.full((300, 300, 3), 200, np.uint8)
    assert pipeline.analyze(blank)[0] == []
    with pytest.raises(NoFaceError, match="no face found"):
        pipeline.main_face(blank)


def test_huge_image_is_downscaled_and_boxes_map_back(pipeline, data_dir, faces):
    img = load_image(data_dir / "obama.jpg")
    big = np.asarray(Image.fromarray(img).resize((img.shape[1] * 3, img.shape[0] * 3)))
    assert max(big.shape) > pipeline.settings.max_detect_side
    face = pipeline.main_face(big)
    small = faces["obama.jpg"].detection.box
    np.testing.assert_allclose(face.detection.box, np.array(small) * 3, atol=3 * 6)
    assert float(face.embedding @ faces["obama.jpg"].embedding) > 0.9


def test_grey_and_rotated_inputs(pipeline, data_dir, faces, tmp_path):
    img = load_image(data_dir / "obama.jpg")
    grey = img.mean(axis=2).astype(np.uint8)
    assert len(pipeline.analyze(grey)[0]) == 1
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated; displayed upright
    path = tmp_path / "rotated.jpg"
    Image.fromarray(img).rotate(-90, expand=True).save(path, exif=exif, quality=95)
    face = pipeline.main_face(path)
    assert float(face.embedding @ faces["obama.jpg"].embedding) > 0.9


def test_match_against_gallery(tmp_path, data_dir, faces):
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    with Pipeline(Settings(gallery=tmp_path)) as pipe:
        assert pipe.match_image(data_dir / "obama2.jpg").faces[0].match.decision is Decision.UNKNOWN
        pipe.enroll("Barack Obama", [faces["obama.jpg"]], sources=["obama.jpg"])
        pipe.enroll("Joe Biden", [faces["biden.jpg"]])
        res = pipe.match_image(data_dir / "obama2.jpg")
        m = res.faces[0].match
        assert m.decision is Decision.MATCH and m.person == "Barack Obama"
        assert [c.name for c in m.candidates] == ["Barack Obama", "Joe Biden"]
        strict = pipe.match_image(data_dir / "obama2.jpg", threshold=0.99).faces[0].match
        assert strict.decision is Decision.UNKNOWN
        # the pipeline's own embedding: another pipeline may have timed and picked another runtime
        probe = pipe.main_face(data_dir / "obama2.jpg")
        from faceapp.recognise.samples import EnrolSample, Provenance

        review = pipe.enrolment().review("someone new", [EnrolSample.from_face(probe, Provenance.photo("obama2.jpg"))])
        assert [(lk.name, lk.similarity) for lk in review.lookalikes] == [("Barack Obama", pytest.approx(m.similarity))]
        assert review.lookalikes[0].face  # their stored face, to show beside the samples
        assert pipe.gallery.samples("Barack Obama")[0].source == "photo obama.jpg"
        thumbs = list(pipe.gallery.all_crops())
        assert len(thumbs) == 2


def test_track_frame_follows_a_face_and_names_it_once_settled(tmp_path, data_dir, faces):
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline
    from faceapp.recognise.track import Tracker, TrackerConfig

    frame = load_image(data_dir / "obama2.jpg")
    with Pipeline(Settings(gallery=tmp_path)) as pipe:
        pipe.enroll("Barack Obama", [faces["obama.jpg"]])
        pipe.enroll("Joe Biden", [faces["biden.jpg"]])
        tracker = Tracker(TrackerConfig(stable_evaluations=2, reembed_every=4))
        out = [pipe.track_frame(np.roll(frame, 3 * k, axis=1), tracker) for k in range(8)]
    assert all(len(r) == 1 for r in out)
    assert len({r[0].track_id for r in out}) == 1
    assert out[0][0].match is None and out[0][0].latest.person == "Barack Obama"
    assert all(r[0].match.person == "Barack Obama" for r in out[1:])
    # Frames 1-2 until settled, then every 4th frame: 1, 2, 6.
    assert [k + 1 for k, r in enumerate(out) if r[0].reembedded] == [1, 2, 6]
    assert tracker.embedded == 3


def test_a_live_view_tracker_knows_the_match_threshold(pipeline):
    """The tracker needs the threshold to ask a little more of a name it has not shown yet."""
    config = pipeline.new_tracker().config
    assert config.threshold == pipeline.thresholds().match
    assert config.name_from == pipeline.thresholds().match + config.name_margin


def test_a_live_view_trackers_name_bar_follows_a_threshold_changed_while_it_runs(pipeline, data_dir, monkeypatch):
    """The window's threshold control changes the settings of a running live view."""
    tracker = pipeline.new_tracker()
    monkeypatch.setattr(pipeline, "settings", dataclasses.replace(pipeline.settings, threshold=0.61))
    pipeline.track_frame(load_image(data_dir / "obama.jpg"), tracker)
    assert tracker.config.threshold == 0.61
    pipeline.track_frame(load_image(data_dir / "obama.jpg"), tracker, threshold=0.52)
    assert tracker.config.threshold == 0.52


def test_faces_of_several_photos_are_embedded_in_one_call(pipeline, data_dir, faces, monkeypatch):
    """import embeds a person's photos together; a photo's other faces are never embedded."""
    calls = []
    real = pipeline.embedder.embed_aligned  # faces aligned from a photo carry a crop per network's template
    monkeypatch.setattr(pipeline.embedder, "embed_aligned", lambda crops: calls.append(len(crops[0])) or real(crops))
    bare = [pipeline.main_face(data_dir / name, embed=False) for name in ("obama.jpg", "obama2.jpg", "biden.jpg")]
    assert calls == [] and all(f.embedding is None for f in bare)
    done = pipeline.embed_faces(bare)
    assert calls == [3]
    for f, name in zip(done, ("obama.jpg", "obama2.jpg", "biden.jpg")):
        assert float(f.embedding @ faces[name].embedding) > 0.9999
    assert pipeline.embed_faces(done) == done and calls == [3]  # already embedded: nothing to do
    pipeline.main_face(data_dir / "obama.jpg")
    assert calls == [3, 1]


def test_match_photos_embeds_a_batch_together_and_keeps_order_and_errors(tmp_path, data_dir, faces, monkeypatch):
    from faceapp.config import Settings
    from faceapp.errors import ImageError
    from faceapp.pipeline import Pipeline
    from faceapp.vision.images import Loaded, prefetch

    names = ["obama2.jpg", "t1.jpg", "missing.jpg", "biden.jpg", "obama.jpg"]
    with Pipeline(Settings(gallery=tmp_path)) as pipe:
        pipe.enroll("Barack Obama", [pipe.main_face(data_dir / "obama.jpg")])
        calls = []
        real = pipe.embedder.embed_aligned
        monkeypatch.setattr(pipe.embedder, "embed_aligned", lambda crops: calls.append(len(crops[0])) or real(crops))
        photos = prefetch((data_dir / n for n in names), pipe.load_photo)
        out = list(pipe.match_photos(photos, batch=3))
        assert [item.source.name for item, _ in out] == names
        assert isinstance(out[2][1], ImageError)  # the missing file keeps its place
        alone = [pipe.match_image(data_dir / n) for n in names if n != "missing.jpg"]
        together = [r for _, r in out if not isinstance(r, Exception)]
        for a, b in zip(alone, together):
            assert [f.match.person for f in a.faces] == [f.match.person for f in b.faces]
            np.testing.assert_allclose([f.match.similarity for f in a.faces], [f.match.similarity for f in b.faces],
                                       atol=1e-4)
        faces_per_photo = [len(r.faces) for r in together]
        # two batches (3 photos, then 2): one embedder call each
        assert calls[:2] == [sum(faces_per_photo[:2]), sum(faces_per_photo[2:])]
        assert list(pipe.match_photos([Loaded(tmp_path / "x.jpg", None, OSError("gone"))]))[0][1].args == ("gone",)
