"""A gallery address is parsed in one place: folder or PostgreSQL database, in any case, and
a password never becomes a folder name or part of a message."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceapp.config import GalleryAddress, Settings, gallery_arg
from faceapp.errors import SettingsError


@pytest.mark.parametrize("text", ["postgresql://u@h/db", "POSTGRESQL://u@h/db", "Postgres://u@h/db",
                                  "host=h dbname=db", "HOST=h DBNAME=db", "dbname=db host=h",
                                  "  postgresql://u@h/db"])
def test_database_addresses_in_any_case(text):
    address = GalleryAddress.parse(text)
    assert address.folder is None
    assert address.dsn is not None and not address.dsn.startswith(("POSTGRES", "Postgres"))
    assert isinstance(gallery_arg(text), str)


@pytest.mark.parametrize("text", ["gallery", "some/folder", "~/faces", "postgresql", "a=b"])
def test_folders(text):
    address = GalleryAddress.parse(text)
    assert address.dsn is None and address.folder == Path(text).expanduser()
    assert gallery_arg(text) == Path(text).expanduser()


def test_a_path_is_always_a_folder():
    assert GalleryAddress.parse(Path("postgresql:/u@h/db")).folder == Path("postgresql:/u@h/db")


def test_a_password_never_shows_nor_names_a_folder(tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    from faceapp.gallery.gallery import open_gallery

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path / "data"))
    for text in ("POSTGRESQL://u:hunter2@h/db", "HOST=h PASSWORD=hunter2 DBNAME=db"):
        settings = Settings(gallery=gallery_arg(text))
        assert "hunter2" not in str(settings.gallery_address())
        folder = settings.gallery_dir()
        assert "hunter2" not in str(folder) and folder.parent == tmp_path / "data" / "databases"
        with pytest.raises(SettingsError) as err:
            open_gallery(settings.gallery_spec())
        assert "hunter2" not in str(err.value) and "hunter2" not in repr(err.value.__cause__)
    assert list(tmp_path.iterdir()) == []  # nothing was created, least of all a folder named by the address


def test_the_folder_beside_a_database_depends_on_the_address_only(tmp_path, monkeypatch):
    pytest.importorskip("psycopg")
    monkeypatch.setenv("FACEAPP_DATA_DIR", str(tmp_path))
    a = Settings(gallery="postgresql://u@h/db").gallery_dir()
    assert a == Settings(gallery="POSTGRESQL://u@h/db").gallery_dir()
    assert a != Settings(gallery="postgresql://u@h/other").gallery_dir()
