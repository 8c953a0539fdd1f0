"""A PostgreSQL gallery restored from an older backup: a device that synced the discarded
history notices that the server's history is not the one it synced, and rebuilds from it."""

import pytest
from vectors import unit_vectors

from faceapp.gallery.gallery import open_gallery

pytestmark = pytest.mark.postgres
MODEL = "r" * 64
DIM = 16


def _names(g, probes):
    return [h[0].name if h and h[0].similarity > 0.99 else None for h in g.search(probes, 1, model_id=MODEL)]


@pytest.mark.parametrize("index", ["exact", "hnsw"])
def test_a_device_notices_a_restored_server_and_rebuilds(pg_server, tmp_path, rng, monkeypatch, index):
    dsn = pg_server.new_database()
    db = dsn.rsplit("/", 1)[1]
    ada, ben, cy = unit_vectors(rng, 3, DIM)[:, None]

    def device(name):
        monkeypatch.setenv("FACEAPP_CACHE_DIR", str(tmp_path / name))
        return open_gallery(dsn, index=index)

    with device("desk") as desk:
        desk.add_templates("Ada", ada, model_id=MODEL)
    pg_server.sql("postgres", f"CREATE DATABASE {db}_backup TEMPLATE {db}")  # the backup: Ada only
    with device("desk") as desk:
        desk.add_templates("Ben", ben, model_id=MODEL)  # generation 2 of the history to be discarded
    door = device("door")
    assert _names(door, ben) == ["Ben"]
    if index == "hnsw":
        assert door._keeper.wait_idle(60)  # its saved index is of generation 2 of that history
    door.close()

    # The server is restored from the backup, and someone is enrolled there: generation 2 again.
    pg_server.sql("postgres", f"DROP DATABASE {db}")
    pg_server.sql("postgres", f"CREATE DATABASE {db} TEMPLATE {db}_backup")
    with device("desk") as desk:
        desk.add_templates("Cy", cy, model_id=MODEL)
        history = desk.info()["history"]

    door = device("door")
    try:
        assert _names(door, cy) == ["Cy"]  # not hidden from the device
        assert _names(door, ben) == [None]  # and nobody from the discarded history
        assert door.info()["history"] == history
    finally:
        door.close()
