"""Shared fixtures.

Tests never read the user's own settings or gallery: ``FACEAPP_CONFIG`` and
``FACEAPP_DATA_DIR`` (and the runtime cache, ``FACEAPP_CACHE_DIR``) point into a temporary folder for the whole session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"
SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(autouse=True, scope="session")
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("user")
    os.environ["FACEAPP_CONFIG"] = str(home / "settings.toml")
    os.environ["FACEAPP_DATA_DIR"] = str(home / "data")
    os.environ["FACEAPP_CACHE_DIR"] = str(home / "cache")


@pytest.fixture(autouse=True)
def _no_key_unsealed_by_another_test():
    """Each test asks for a key's passphrase afresh (the app keeps an unsealed key for its run)."""
    from faceapp.gallery import keys

    yield
    keys.forget_unsealed()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture
def rng(request: pytest.FixtureRequest):
    """A random generator seeded by the test module's ``SEED`` (0 where it sets none), so the
    stand-in embeddings are the same on every run."""
    import numpy as np

    return np.random.default_rng(getattr(request.module, "SEED", 0))


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    if not SHARED_FACES.is_dir():
        pytest.skip("../shared/faces is not present")
    return SHARED_FACES


@pytest.fixture
def labelled_folders(tmp_path: Path, data_dir: Path) -> tuple[Path, Path]:
    """``(people, strangers)`` folders from the committed photos: ``people/obama`` (two photos),
    ``people/biden`` (one), and the group photo ``t1.jpg`` as a stranger."""
    import shutil

    people, strangers = tmp_path / "people", tmp_path / "strangers"
    for who, files in {"obama": ["obama.jpg", "obama2.jpg"], "biden": ["biden.jpg"]}.items():
        (people / who).mkdir(parents=True)
        for f in files:
            shutil.copy(data_dir / f, people / who / f)
    strangers.mkdir()
    shutil.copy(data_dir / "t1.jpg", strangers / "t1.jpg")  # a group photo: its most central face
    return people, strangers


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    """One pipeline with loaded models for the session (its gallery is per-session too)."""
    from faceapp.config import Settings
    from faceapp.pipeline import Pipeline

    pipe = Pipeline(Settings(gallery=tmp_path_factory.mktemp("session_gallery")))
    yield pipe
    pipe.close()


@pytest.fixture(scope="session")
def faces(pipeline, data_dir):
    """Main faces of the committed photos, embedded."""
    return {name: pipeline.main_face(data_dir / name) for name in ("obama.jpg", "obama2.jpg", "biden.jpg")}


def _started_pg_server():  # type: ignore[no-untyped-def]
    """A new PostgreSQL server in a temporary folder, or a skip saying why there is none."""
    from pgserver import PgServer, find_bindir

    pytest.importorskip("psycopg", reason="psycopg is not installed: pip install -e '.[postgres]'")
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed; apt install postgresql")
    server = PgServer(bindir)
    try:
        server.init()
    except Exception as exc:  # noqa: BLE001 - report why the server could not start
        server.destroy()
        pytest.skip(f"could not start a PostgreSQL server: {exc}; see {server.log}")
    return server


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the session (see ``tests/pgserver.py``); skipped when not installed."""
    server = _started_pg_server()
    yield server
    server.destroy()


@pytest.fixture
def own_pg_server():
    """A PostgreSQL server for one test alone: its data directory holds only what that test wrote
    (the session's server also holds other tests' data, plain galleries made on purpose among them)."""
    server = _started_pg_server()
    yield server
    server.destroy()


@pytest.fixture
def pg_dsn(pg_server) -> str:
    """A fresh, empty database on the session's server."""
    return pg_server.new_database()


@pytest.fixture
def rotated_model(tmp_path: Path) -> Path:
    """The bundled embedder followed by a fixed random rotation: a model with another embedding space."""
    import numpy as np

    onnx = pytest.importorskip("onnx")
    from onnx import helper, numpy_helper

    from faceapp.vision import models

    m = onnx.load(str(models.check(models.bundled_path(models.ROLE_SFACE)).path))
    out = m.graph.output[0]
    dim = out.type.tensor_type.shape.dim[-1].dim_value
    q, _ = np.linalg.qr(np.random.default_rng(5).standard_normal((dim, dim)))
    m.graph.initializer.append(numpy_helper.from_array(q.astype(np.float32), "faceapp_rotation"))
    old = out.name
    for node in m.graph.node:
        node.output[:] = [o if o != old else old + "_raw" for o in node.output]
    m.graph.node.append(helper.make_node("MatMul", [old + "_raw", "faceapp_rotation"], [old]))
    path = tmp_path / "rotated.onnx"
    onnx.save(m, str(path))
    return path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    session.config.stash[_EXIT_STATUS] = int(exitstatus)


_EXIT_STATUS = pytest.StashKey[int]()


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave the test process without native libraries' static destructors.

    After every result has been reported, the interpreter's own shutdown tears down the
    native runtimes loaded by hundreds of tests (onnxruntime, OpenVINO's thread pools, Qt).
    Once in several full runs that teardown aborted ("terminate called without an active
    exception") after all tests had passed, turning a green run red. The exit status is
    pytest's own; set ``FACEAPP_TEST_NATIVE_TEARDOWN=1`` to run the full teardown instead.
    """
    status = config.stash.get(_EXIT_STATUS, None)
    if status is None or os.environ.get("FACEAPP_TEST_NATIVE_TEARDOWN"):
        return
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """``faceapp-cli`` in-process on a gallery of the test's own: ``cli(*args) -> (exit code, stdout, stderr)``."""
    from faceapp.cli import main

    gallery = tmp_path / "gallery"

    def run(*args):  # type: ignore[no-untyped-def]
        code = main(["--gallery", str(gallery), *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err

    run.gallery = gallery  # type: ignore[attr-defined]
    return run
