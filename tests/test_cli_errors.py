"""What the CLI writes where: errors as one line on stderr, results (JSON included) on stdout,
a reader that goes away ends the run quietly, and an interrupted import says who is enrolled."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_bad_image_is_an_error_on_stderr_only(cli, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    code, out, err = cli("match", empty)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "empty.jpg is empty" in err
    code, out, err = cli("--json", "match", empty)
    doc = json.loads(out)  # stdout stays one JSON document ...
    assert code == 2 and doc[0]["error"]
    assert err.count("\n") == 1 and "empty.jpg is empty" in err  # ... and the error is on stderr too


def test_a_closed_pipe_ends_quietly(tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (``| head``) has gone before anything is written
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        proc = subprocess.run([sys.executable, "-m", "faceapp.cli", "--gallery", str(tmp_path / "g"), "--json", "list"],
                              stdout=write_end, stderr=subprocess.PIPE, text=True, env=env, timeout=300)
    finally:
        os.close(write_end)
    assert proc.stderr == "" and proc.returncode == 141  # 128 + SIGPIPE, as a shell reports ``yes | head``


def test_an_interrupted_import_names_who_was_enrolled(cli, data_dir, tmp_path, monkeypatch):
    from faceapp.recognise.enrol import Enrolment

    root = tmp_path / "people"
    for name, photo in (("biden", "biden.jpg"), ("obama", "obama.jpg")):
        (root / name).mkdir(parents=True)
        shutil.copy(data_dir / photo, root / name / "1.jpg")
    real = Enrolment.enrol

    def interrupted_at_obama(self, name, *a, **k):
        if name == "obama":
            raise KeyboardInterrupt
        return real(self, name, *a, **k)

    monkeypatch.setattr(Enrolment, "enrol", interrupted_at_obama)
    code, out, err = cli("import", root)
    assert code == 130 and out == ""
    assert err.count("\n") == 1 and "interrupted" in err and "1 person enrolled (biden)" in err
    monkeypatch.setattr(Enrolment, "enrol", real)
    code, out, err = cli("import", root)  # run again: who was already there is said, the rest goes on
    assert code == 0 and "skipped biden: already enrolled" in out and "enrolled obama" in out
