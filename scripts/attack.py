"""Attacks on a folder gallery, each tried many times; prints tries / survived / lost per attack.

* ``kill``: a writer enrolling people is killed with SIGKILL at a random moment; survived when
  the database checks ok, every committed person is there whole, and nobody is half enrolled.
* ``bitflip``: one random bit of one stored template is flipped behind faceapp's back;
  survived when the template is listed as damaged and never returned by a search, and no
  similarity is outside [-1, 1].
* ``copy``: ``gallery copy`` into a folder is killed at a random moment; survived when
  nothing at the destination opens as a gallery and running the copy again gives every person.
* ``copy-pg``: the same into a new PostgreSQL database of a throwaway server (started with the
  tests' ``tests/pgserver.py``; skipped when PostgreSQL is not installed); survived when the
  database opens as the whole copy, as the empty gallery it was, or not at all (an interrupted
  copy), never as part of the copy, and running the copy again gives every person.
* ``names``: look-alike names (Cyrillic letters, invisible fillers, case beyond ASCII,
  compatibility forms) are enrolled beside the names they imitate; survived when each is
  refused or folded into the same person.

    python scripts/attack.py --tries 50

Keys, settings and caches are kept in the temporary folder of the run, not the user's.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from faceapp.errors import GalleryError
from faceapp.gallery.gallery import Gallery

ROOT = Path(__file__).resolve().parents[1]
MODEL = "a" * 64
DIM = 16
# Helper processes import the same faceapp as this one (PYTHONPATH, else this checkout).
ENV = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH") or str(ROOT)}

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from faceapp.gallery.gallery import Gallery
    g = Gallery(sys.argv[1], lock_timeout=30)
    rng = np.random.default_rng(int(sys.argv[2]))
    for i in range(100000):
        e = rng.standard_normal((3, 16)).astype(np.float32)
        g.add_templates(f"p{i:05d}", e / np.linalg.norm(e, axis=1, keepdims=True), model_id="a" * 64)
        print(i, flush=True)
""")

COPIER = textwrap.dedent("""
    import sys
    from faceapp.cli import main
    sys.exit(main(["gallery", "copy", sys.argv[1], sys.argv[2]]))
""")


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def attack_kill(tries: int, rng: random.Random, work: Path) -> dict[str, int]:
    survived = 0
    for t in range(tries):
        folder = work / f"kill{t}"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(t)], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, env=ENV)
        committed = -1
        want = rng.randint(1, 40)
        while committed < want:
            committed = int(proc.stdout.readline())  # type: ignore[union-attr]
        time.sleep(rng.random() * 0.05)  # somewhere inside a later transaction, or between two
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with Gallery(folder) as g:
            people = g.list_persons()
            whole = all(p.templates == 3 for p in people)
            survived += g.check() == "ok" and whole and len(people) >= committed + 1
    return {"tries": tries, "survived": survived, "lost": tries - survived}


def attack_bitflip(tries: int, rng: random.Random, work: Path) -> dict[str, int]:
    nrng = np.random.default_rng(rng.randint(0, 2**31))
    folder = work / "flip"
    vectors = _unit(nrng, 20)
    with Gallery(folder) as g:
        for i in range(20):
            g.add_templates(f"p{i:02d}", vectors[i:i + 1], model_id=MODEL)
    con = sqlite3.connect(folder / "gallery.sqlite3")
    rows = con.execute("SELECT id, embedding FROM templates").fetchall()
    survived = 0
    for _ in range(tries):
        tid, blob = rows[rng.randrange(len(rows))]
        data = bytearray(blob)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        con.execute("UPDATE templates SET embedding = ? WHERE id = ?", (bytes(data), tid))
        con.commit()
        with Gallery(folder) as g:
            hits = [h for row in g.search(vectors, 3, model_id=MODEL) for h in row]
            listed = getattr(g, "damaged_templates", lambda: [])()  # an older faceapp lists nothing
            caught = [d.row_id for d in listed] == [tid]
            survived += caught and tid not in {h.template_id for h in hits} and all(
                -1.0 <= h.similarity <= 1.0 for h in hits)
        con.execute("UPDATE templates SET embedding = ? WHERE id = ?", (blob, tid))  # put it back
        con.commit()
    con.close()
    return {"tries": tries, "survived": survived, "lost": tries - survived}


def _copy_source(work: Path) -> Path:
    src = work / "copysrc"
    if not src.exists():
        nrng = np.random.default_rng(1)
        with Gallery(src) as g:
            for i in range(112):
                g.add_templates(f"p{i:03d}", _unit(nrng, 2), model_id=MODEL, crops=[b"crop" * 500] * 2)
    return src


def attack_copy(tries: int, rng: random.Random, work: Path) -> dict[str, int]:
    src = _copy_source(work)
    survived = 0
    for t in range(tries):
        dst = work / f"copy{t}"
        proc = subprocess.Popen([sys.executable, "-c", COPIER, str(src), str(dst)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=ENV)
        time.sleep(0.5 + rng.random() * 2.0)  # start-up, then somewhere in the copy (or after it)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        complete = False
        if dst.exists():  # killed after publishing: the whole copy is there
            with Gallery(dst) as g:
                complete = len(g) == 112
        partial = dst.exists() and not complete  # something that opens as a smaller gallery
        if not complete:
            subprocess.run([sys.executable, "-c", COPIER, str(src), str(dst)], capture_output=True, env=ENV)
        with Gallery(dst) as g:
            whole = len(g) == 112  # the copy, or running it again, gives everyone
        survived += not partial and whole
    return {"tries": tries, "survived": survived, "lost": tries - survived}


def attack_copy_pg(tries: int, rng: random.Random, work: Path) -> dict[str, int]:
    sys.path.insert(0, str(ROOT / "tests"))
    from pgserver import PgServer, find_bindir

    from faceapp.gallery.gallery import open_gallery

    bindir = find_bindir()
    if bindir is None:
        return {"tries": 0, "survived": 0, "lost": 0, "skipped": "PostgreSQL is not installed"}  # type: ignore[dict-item]
    src = _copy_source(work)
    server = PgServer(bindir)
    server.init()
    survived = refused = 0
    try:
        for _ in range(tries):
            dsn = server.new_database("attack")
            proc = subprocess.Popen([sys.executable, "-c", COPIER, str(src), dsn], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env=ENV)
            time.sleep(0.5 + rng.random() * 3.0)  # start-up, then somewhere in the copy (or after it)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            try:
                with open_gallery(dsn) as g:
                    found = len(g)
            except GalleryError as exc:  # the rest of an interrupted copy: refused
                found = -1 if "interrupted copy" in str(exc) else -2
            partial = found == -2 or 0 < found < 112
            refused += found == -1
            if found != 112:
                subprocess.run([sys.executable, "-c", COPIER, str(src), dsn], capture_output=True, env=ENV)
            with open_gallery(dsn) as g:
                whole = len(g) == 112
            survived += not partial and whole
    finally:
        server.destroy()
    return {"tries": tries, "survived": survived, "lost": tries - survived, "killed_part_way": refused}


LOOKALIKES = [("Obama", "\u041ebama"), ("Obama", "Obam\u0430"), ("Obama", "Obama\u3164"), ("Obama", "\u115fObama"),
              ("Barack Obama", "Barack\u00a0Obama"), ("\u00e9mile", "\u00c9mile"), ("Bill", "BiII"),
              ("Ann", "\uff21nn"), ("Paypal", "Pay\u0440al"), ("Zoe", "Zo\u0435"), ("Ada", "A\u200bda"),
              ("Ada", "Ad\u00ada"), ("Chloe", "Chlo\u0435"), ("Olga", "\u039flga"), ("rn", "m")]


def attack_names(tries: int, rng: random.Random, work: Path) -> dict[str, int]:
    nrng = np.random.default_rng(2)
    survived = 0
    for t, (real, fake) in enumerate(LOOKALIKES):
        with Gallery(work / f"names{t}") as g:
            g.add_templates(real, _unit(nrng, 1), model_id=MODEL)
            try:
                g.add_templates(fake, _unit(nrng, 1), model_id=MODEL)
            except GalleryError:
                pass
            survived += len(g) == 1
    return {"tries": len(LOOKALIKES), "survived": survived, "lost": len(LOOKALIKES) - survived}


ATTACKS = {"kill": attack_kill, "bitflip": attack_bitflip, "copy": attack_copy, "copy-pg": attack_copy_pg,
           "names": attack_names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=50, help="tries per attack (names: its fixed list)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("attacks", nargs="*", default=list(ATTACKS), choices=list(ATTACKS))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        home = {"FACEAPP_CONFIG": str(Path(tmp) / "user" / "settings.toml"),
                "FACEAPP_DATA_DIR": str(Path(tmp) / "user" / "data"), "FACEAPP_CACHE_DIR": str(Path(tmp) / "user" / "cache")}
        os.environ.update(home)  # keys, settings and caches of this run stay in its folder (helpers' too)
        ENV.update(home)
        for name in args.attacks:
            print(json.dumps({"attack": name, **ATTACKS[name](args.tries, rng, Path(tmp))}), flush=True)


if __name__ == "__main__":
    main()
