"""Gallery addresses: a PostgreSQL address is recognised in any case and is never taken for a
folder; its password is never printed, logged or made into a path."""

import os
from pathlib import Path

import pytest

from faceapp.cli import main
from faceapp.config import Settings, gallery_arg

pytest.importorskip("psycopg")

SECRET = "S3cretPW"


@pytest.mark.parametrize("text", ["POSTGRESQL://faceapp@db.example/faceapp", "Postgres://faceapp@db.example/faceapp",
                                  "HOST=db.example DBNAME=faceapp", "dbname=faceapp Host=db.example"])
def test_addresses_in_any_case_are_addresses(text):
    for spec in (gallery_arg(text), Settings(gallery=text).gallery_spec()):
        assert isinstance(spec, str) and not isinstance(spec, Path)
        if "://" in text:
            assert spec.startswith(("postgresql://", "postgres://"))  # libpq reads the scheme in lower case only


@pytest.mark.parametrize("text", [f"POSTGRESQL://user:{SECRET}@db.invalid/db", f"postgresql://user:{SECRET}@db.invalid/db",
                                  f"HOST=db.invalid DBNAME=db PASSWORD={SECRET}", f"host=db.invalid password={SECRET}"])
@pytest.mark.parametrize("command", [["list"], ["info"], ["--json", "info"]])
def test_a_password_is_refused_and_never_shown_or_made_a_folder(text, command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["-v", "--gallery", text, *command])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and ("contains a password" in err or "not a valid" in err)
    assert SECRET not in out + err
    assert not any(SECRET in str(p) for p in tmp_path.rglob("*"))  # no folder named after the address
    assert not any(SECRET in str(p) for p in Path(os.environ["FACEAPP_DATA_DIR"]).parent.rglob("*"))
