"""faceapp-cli through its entry point, in-process (and once as a real subprocess)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from faceapp.cli import main
from faceapp.vision import models


def test_enroll_match_list_rename_remove(cli, data_dir):
    assert cli("enroll", "Obama", data_dir / "obama.jpg")[0] == 0
    assert cli("enroll", "Biden", data_dir / "biden.jpg")[0] == 0
    code, out, err = cli("enroll", "Obama", data_dir / "obama2.jpg")
    assert code == 2 and "already exists; use --add" in err and err.count("\n") == 1
    assert cli("enroll", "--add", "Obama", data_dir / "obama2.jpg")[0] == 0

    code, out, _ = cli("--json", "match", data_dir / "obama_partial_face.jpg", data_dir / "missing.jpg")
    doc = json.loads(out)
    assert code == 2  # one image failed, the other still ran
    assert doc[0]["error"] is None and doc[0]["faces"][0]["person"] == "Obama"
    assert doc[0]["faces"][0]["decision"] == "match" and len(doc[0]["faces"][0]["box"]) == 4
    assert "does not exist" in doc[1]["error"] and doc[1]["faces"] == []

    code, out, _ = cli("match", "--threshold", "0.999", "--require-match", data_dir / "obama_partial_face.jpg")
    assert code == 1 and "unknown" in out

    code, out, _ = cli("--json", "list")
    assert {(p["person"], p["templates"]) for p in json.loads(out)} == {("Obama", 2), ("Biden", 1)}
    assert cli("rename", "Biden", "Joe Biden")[0] == 0
    code, out, err = cli("remove", "Nobody")
    assert code == 2 and "no person named 'Nobody'" in err
    assert cli("remove", "Obama")[0] == 0
    code, out, _ = cli("list")
    assert "Joe Biden" in out and "Obama" not in out


def test_reject_keeps_a_negative_that_stops_the_name(cli, data_dir):
    assert cli("enroll", "Obama", data_dir / "obama.jpg")[0] == 0
    code, out, _ = cli("--json", "match", data_dir / "obama2.jpg")
    assert json.loads(out)[0]["faces"][0]["person"] == "Obama"
    code, out, _ = cli("--json", "reject", data_dir / "obama2.jpg", "--not", "Obama")
    doc = json.loads(out)
    assert code == 0 and doc["before"]["person"] == "Obama" and doc["now"]["person"] is None
    code, out, _ = cli("--json", "match", data_dir / "obama2.jpg")
    face = json.loads(out)[0]["faces"][0]
    assert face["person"] is None and face["decision"] != "match"
    code, out, _ = cli("--json", "match", data_dir / "obama.jpg")
    assert json.loads(out)[0]["faces"][0]["person"] == "Obama"  # still named on the enrolled photo
    code, _, err = cli("reject", data_dir / "obama2.jpg", "--not", "Nobody")
    assert code == 2 and "Nobody" in err and err.count("\n") == 1
    code, out, _ = cli("--json", "remove", "Obama")
    assert json.loads(out)["negatives"] == 1


def test_verify_exit_codes(cli, data_dir):
    code, out, _ = cli("verify", data_dir / "obama.jpg", data_dir / "obama2.jpg")
    assert code == 0 and out.startswith("same person")
    code, out, _ = cli("--json", "verify", data_dir / "obama.jpg", data_dir / "biden.jpg")
    assert code == 1 and json.loads(out)["same"] is False


@pytest.mark.parametrize("kind", ["no_face", "many_faces", "corrupt", "not_image"])
def test_bad_enrolment_inputs_leave_the_gallery_untouched(cli, data_dir, tmp_path, kind):
    assert cli("enroll", "Keep", data_dir / "biden.jpg")[0] == 0
    before = (cli.gallery / "gallery.sqlite3").read_bytes()
    bad = tmp_path / f"{kind}.jpg"
    if kind == "no_face":
        from PIL import Image

        Image.new("RGB", (200, 200), (90, 90, 90)).save(bad)
    elif kind == "many_faces":
        shutil.copy(data_dir / "t1.jpg", bad)
    elif kind == "corrupt":
        bad.write_bytes((data_dir / "obama.jpg").read_bytes()[:5000])
    else:
        bad.write_text("not an image")
    code, out, err = cli("enroll", "New", data_dir / "obama.jpg", bad)
    assert code == 2 and err.startswith("faceapp-cli: error:") and err.count("\n") == 1
    assert (cli.gallery / "gallery.sqlite3").read_bytes() == before
    assert "New" not in cli("list")[1]


def test_import_folder_per_person(cli, data_dir, tmp_path):
    root = tmp_path / "people"
    (root / "obama").mkdir(parents=True)
    (root / "biden").mkdir()
    (root / "nobody").mkdir()
    shutil.copy(data_dir / "obama.jpg", root / "obama" / "1.jpg")
    shutil.copy(data_dir / "obama2.jpg", root / "obama" / "2.jpg")
    shutil.copy(data_dir / "biden.jpg", root / "biden" / "1.jpg")
    (root / "obama" / "broken.jpg").write_bytes(b"garbage")
    from PIL import Image

    Image.new("RGB", (100, 100)).save(root / "nobody" / "blank.png")
    code, out, err = cli("--json", "import", root)
    doc = json.loads(out)
    assert code == 0
    assert {e["person"]: e["added"] for e in doc["enrolled"]} == {"obama": 2, "biden": 1}
    assert [s["person"] for s in doc["skipped_people"]] == ["nobody"]
    assert len(doc["bad_images"]) == 2
    code, out, _ = cli("--json", "import", root)  # again: already enrolled people are skipped
    assert {s["person"] for s in json.loads(out)["skipped_people"]} == {"obama", "biden", "nobody"}
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = cli("import", empty)
    assert code == 2 and "no person folders" in err


def test_enrol_refuses_photos_of_two_people_and_stores_nothing(cli, data_dir):
    code, out, err = cli("enroll", "Mix", data_dir / "obama.jpg", data_dir / "obama2.jpg", data_dir / "biden.jpg")
    assert code == 2 and err.count("\n") == 1
    assert "biden.jpg is unlike the other samples" in err and "obama" not in err.split("unlike")[0]
    assert "Mix" not in cli("list")[1]


def test_enrol_of_someone_already_enrolled_needs_an_explicit_choice(cli, data_dir, tmp_path):
    assert cli("enroll", "Obama", data_dir / "obama.jpg")[0] == 0
    code, out, err = cli("enroll", "John McCain", data_dir / "obama2.jpg")
    assert code == 2 and err.count("\n") == 1
    assert "match 'Obama'" in err and "--despite-match" in err and "--add" in err
    assert "John McCain" not in cli("list")[1]
    # the explicit choice: a different person who happens to look alike
    code, out, err = cli("--json", "enroll", "--despite-match", "John McCain", data_dir / "obama2.jpg")
    doc = json.loads(out)
    assert code == 0 and doc["person"] == "John McCain" and doc["also_matches"][0]["person"] == "Obama"
    assert doc["samples"] == [{"source": "photo obama2.jpg"}]


def test_import_leaves_out_photos_of_someone_else_and_people_already_enrolled_under_another_name(cli, data_dir, tmp_path):
    assert cli("enroll", "Joe Biden", data_dir / "biden.jpg")[0] == 0
    root = tmp_path / "people"
    (root / "obama").mkdir(parents=True)
    (root / "joe").mkdir()
    shutil.copy(data_dir / "obama.jpg", root / "obama" / "1.jpg")
    shutil.copy(data_dir / "obama2.jpg", root / "obama" / "2.jpg")
    shutil.copy(data_dir / "biden.jpg", root / "obama" / "3.jpg")  # misfiled
    shutil.copy(data_dir / "biden.jpg", root / "joe" / "1.jpg")  # Joe Biden under another name
    code, out, err = cli("--json", "import", root)
    doc = json.loads(out)
    assert code == 0
    assert {e["person"]: e["added"] for e in doc["enrolled"]} == {"obama": 2}
    assert [r["image"].endswith("3.jpg") for r in doc["refused"]] == [True]
    assert [s["person"] for s in doc["skipped_people"]] == ["joe"]
    assert "Joe Biden" in doc["skipped_people"][0]["reason"]


def test_damaged_model_is_one_line(cli, data_dir, tmp_path, monkeypatch):
    dst = tmp_path / "models"
    shutil.copytree(models.models_dir(), dst)
    with open(dst / "sface_fp32.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    monkeypatch.setenv("FACEAPP_MODELS_DIR", str(dst))
    models.models_dir.cache_clear()
    models.manifest.cache_clear()
    try:
        code, out, err = cli("match", data_dir / "obama.jpg")
    finally:
        models.models_dir.cache_clear()
        models.manifest.cache_clear()
    assert code == 2 and "damaged or was modified" in err and err.count("\n") == 1


def test_damaged_gallery_is_one_line(cli, data_dir):
    cli.gallery.mkdir()
    (cli.gallery / "gallery.sqlite3").write_bytes(b"\x00" * 4096 + b"junk")
    code, out, err = cli("list")
    assert code == 2 and "is damaged" in err and err.count("\n") == 1


def test_usage_error_exit_code(cli):
    with pytest.raises(SystemExit) as exc:
        main(["match"])
    assert exc.value.code == 2


def test_info(cli):
    code, out, _ = cli("--json", "info")
    doc = json.loads(out)
    assert code == 0 and doc["embedder"]["bundled"] and len(doc["embedder"]["sha256"]) == 64
    assert doc["provider"] in ("cpu", "cuda", "openvino") and doc["gallery"]["people"] == 0
    assert doc["runtime"].split()[0] in ("onnxruntime", "OpenVINO") and doc["runtime"] in doc["provider_note"]
    assert 0 < doc["thresholds"]["match"] < 1


def test_console_script_cold_start(tmp_path, data_dir):
    exe = shutil.which("faceapp-cli", path=os.path.dirname(sys.executable)) or shutil.which("faceapp-cli")
    if exe is None:
        pytest.skip("faceapp-cli is not installed as a console script")
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "--gallery", str(tmp_path), "--json", "match", str(data_dir / "obama.jpg")],
                          capture_output=True, text=True, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc[0]["faces"][0]["decision"] == "unknown"  # empty gallery
    print(f"cold start: {elapsed:.2f} s")


def test_reembed_moves_a_gallery_to_a_new_model(cli, data_dir, tmp_path, rotated_model):
    assert cli("enroll", "Obama", data_dir / "obama.jpg")[0] == 0
    assert cli("enroll", "Biden", data_dir / "biden.jpg")[0] == 0
    new = rotated_model
    code, _, err = cli("--model", new, "match", data_dir / "obama2.jpg")
    assert code == 2 and "faceapp-cli reembed" in err and err.count("\n") == 1
    code, out, err = cli("--model", new, "--json", "reembed")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["embedded"] == 2 and doc["erased"] == 2 and doc["needs_reenrolment"] == []
    code, out, _ = cli("--model", new, "--json", "match", data_dir / "obama2.jpg")
    assert code == 0 and json.loads(out)[0]["faces"][0]["person"] == "Obama"
    # The old model no longer matches this gallery.
    assert cli("match", data_dir / "obama2.jpg")[0] == 2


def test_info_and_remove_report_the_gallery(cli, data_dir):
    assert cli("enroll", "Obama", data_dir / "obama.jpg", data_dir / "obama2.jpg")[0] == 0
    code, out, _ = cli("--json", "info")
    g = json.loads(out)["gallery"]
    assert code == 0 and len(g["gallery_id"]) == 32 and g["generation"] >= 1
    assert g["index_kind"] == "exact" and g["templates"] == 2 and list(g["model_ids"].values()) == [2]
    if os.name == "posix":
        assert g["private"] is True and g["permissions"]["."] == "0o700"
    code, out, _ = cli("remove", "Obama")
    assert code == 0 and "erased 2 template(s), 2 face crop(s)" in out


def test_text_output_names_nobody_without_a_match(cli, data_dir):
    assert cli("enroll", "Obama", data_dir / "obama.jpg")[0] == 0
    code, out, _ = cli("match", data_dir / "biden.jpg")
    assert code == 0 and "unknown" in out and "Obama" not in out
    code, out, _ = cli("--json", "match", data_dir / "obama2.jpg")
    sim = json.loads(out)[0]["faces"][0]["similarity"]
    code, out, _ = cli("match", "--threshold", f"{sim + 0.02:.3f}", data_dir / "obama2.jpg")  # inside the band
    assert "[uncertain]" in out and "Obama" not in out
    code, out, _ = cli("match", data_dir / "obama2.jpg")
    assert "-> Obama similarity" in out
