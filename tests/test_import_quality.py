"""Import says how many samples it took are low quality, and why (the CLI and the People view)."""

import json
import os
import shutil

import pytest
from PIL import Image

from faceapp.recognise.quality import QualityGates, low_quality
from faceapp.types import Quality


def small_copy(src, dst, factor: int = 4) -> None:
    """The photo shrunk ``factor`` times: the face gets under 40 px between the eyes."""
    im = Image.open(src)
    im.resize((im.width // factor, im.height // factor), Image.LANCZOS).save(dst)


def test_low_quality_counts_samples_by_the_gate_they_fail():
    good = Quality(face_size=90, sharpness=500, yaw=0, roll=0, brightness=120)
    small = Quality(face_size=20, sharpness=500, yaw=0, roll=0, brightness=120)
    small_blurred = Quality(face_size=20, sharpness=5, yaw=0, roll=0, brightness=120)
    got = low_quality([good, small, small_blurred, None])
    assert (got.flagged, got.total) == (2, 4)
    assert got.reasons == (("face under 40 px between the eyes", 2), ("blurred", 1))
    assert str(got).startswith("2 of 4 sample(s) flagged low quality (2 face under 40 px between the eyes, 1 blurred)")
    assert low_quality([small], QualityGates(min_face_size=10)).flagged == 0


def test_import_reports_low_quality_samples(cli, data_dir, tmp_path):
    root = tmp_path / "people"
    (root / "obama").mkdir(parents=True)
    shutil.copy(data_dir / "obama.jpg", root / "obama" / "1.jpg")
    small_copy(data_dir / "obama2.jpg", root / "obama" / "2.jpg")
    code, out, _ = cli("--json", "import", root)
    assert code == 0
    doc = json.loads(out)
    assert doc["low_quality"] == {"samples": 1, "of": 2, "reasons": {"face under 40 px between the eyes": 1}}
    (root / "biden").mkdir()
    small_copy(data_dir / "biden.jpg", root / "biden" / "1.jpg")
    code, out, _ = cli("import", root)
    assert code == 0
    assert "1 of 1 sample(s) flagged low quality (1 face under 40 px between the eyes)" in out


def test_adding_photos_in_the_people_view_reports_low_quality(qtbot, tmp_path, data_dir):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    from PySide6.QtWidgets import QMessageBox

    from faceapp.config import Settings
    from faceapp.gui.people import PeopleDialog
    from faceapp.pipeline import Pipeline

    small_copy(data_dir / "obama2.jpg", tmp_path / "small.jpg")
    with Pipeline(Settings(gallery=tmp_path / "gallery")) as pipe:
        pipe.enroll("Obama", [pipe.main_face(data_dir / "obama.jpg")])
        dlg = PeopleDialog(pipe)
        qtbot.addWidget(dlg)
        got = dlg.add_samples("Obama", [tmp_path / "small.jpg"], ask=lambda *a: QMessageBox.StandardButton.Yes)
        assert got is not None and got.flagged == 1 and got.reasons[0][0] == "face under 40 px between the eyes"
        dlg.close()
