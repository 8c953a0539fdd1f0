"""Photo throughput of ``faceapp-cli import`` and ``match``, and ``match`` against face_recognition.

Both figures leave the cold start out: each command is run on N photos and on 1 photo,
and the per-photo time is the difference divided by N - 1.

* ``import``: a folder-per-person tree of 1350-pixel JPEGs (LFW photos, or the committed
  test photos, upscaled), enrolled with ``faceapp-cli import``: photos per second.
* ``match``: a folder of 640x480 one-face photos, matched with ``faceapp-cli match``,
  and (when ``--fr-python`` names a Python with ``face_recognition`` installed, or it is
  importable here) encoded with face_recognition's HOG detector and dlib encoder, the
  same photos in one warm process: milliseconds per photo and the ratio.

Usage::

    python scripts/bench_photos.py import [--photos 120]
    python scripts/bench_photos.py match [--photos 60] [--fr-python /path/to/venv/bin/python]

The faceapp commands run as ``python -m faceapp.cli`` with this interpreter and the
caller's ``PYTHONPATH``, so the same script times any checkout.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "faces" / "lfw" / "people"

FR_SCRIPT = r"""
import sys, time, json
import face_recognition
paths = sys.argv[1:]
def one(p):
    img = face_recognition.load_image_file(p)
    locs = face_recognition.face_locations(img)  # HOG, one upsample: the library's defaults
    return face_recognition.face_encodings(img, locs)
one(paths[0])  # warm-up: models are loaded at import, this warms caches
t0 = time.perf_counter()
found = sum(len(one(p)) > 0 for p in paths)
print(json.dumps({"seconds": time.perf_counter() - t0, "photos": len(paths), "found": found}))
"""


def sources(n: int) -> list[Path]:
    """Photos with one face: LFW people when present, else the committed test photos."""
    if LFW.is_dir():
        return sorted(LFW.glob("*/*.jpg"))[:n]
    data = ROOT / "tests" / "data"
    base = [data / f for f in ("obama.jpg", "obama2.jpg", "biden.jpg")]
    return [base[i % len(base)] for i in range(n)]


def make_photos(src: list[Path], out: Path, size: tuple[int, int], per_person: bool) -> list[Path]:
    """Resize ``src`` to ``size`` (letterboxed on grey) as JPEGs under ``out``."""
    from PIL import Image

    made = []
    for i, p in enumerate(src):
        img = Image.open(p).convert("RGB")
        w, h = size
        scale = min(w / img.width, h / img.height)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
        canvas = Image.new("RGB", size, (120, 120, 120))
        canvas.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
        folder = out
        if per_person:
            folder = out / (p.parent.name if LFW.is_dir() else f"person{i // 4:03d}")
        folder.mkdir(parents=True, exist_ok=True)
        dst = folder / f"{i:04d}_{p.stem}.jpg"
        canvas.save(dst, quality=92)
        made.append(dst)
    return made


def cli(*args: str | Path) -> float:
    """Seconds to run ``faceapp-cli ARGS`` in a fresh process."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "faceapp.cli", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bench_import(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = make_photos(sources(n), root / "many", (1350, 1350), per_person=True)
        one = root / "one" / "solo"
        one.mkdir(parents=True)
        os.link(photos[0], one / photos[0].name)
        t_one = cli("--gallery", root / "g1", "import", root / "one")
        t_many = cli("--gallery", root / "g2", "import", root / "many")
    per = (t_many - t_one) / (len(photos) - 1)
    return {"photos": len(photos), "side_px": 1350, "run_1_s": t_one, f"run_{len(photos)}_s": t_many,
            "ms_per_photo": per * 1e3, "photos_per_s": 1.0 / per}


def bench_match(n: int, fr_python: str | None) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photos = make_photos(sources(n), root / "photos", (640, 480), per_person=False)
        t_one = cli("--gallery", root / "g", "match", photos[0])
        t_many = cli("--gallery", root / "g", "match", *photos)
        per = (t_many - t_one) / (len(photos) - 1)
        out: dict[str, object] = {"photos": len(photos), "size": "640x480", "faceapp_ms_per_photo": per * 1e3,
                                  "faceapp_run_1_s": t_one, f"faceapp_run_{len(photos)}_s": t_many}
        python = fr_python or sys.executable
        proc = subprocess.run([python, "-c", FR_SCRIPT, *map(str, photos)], capture_output=True, text=True)
        if proc.returncode != 0:
            out["face_recognition"] = f"skipped: not importable with {python} ({proc.stderr.strip().splitlines()[-1:]})"
            return out
        fr = json.loads(proc.stdout.strip().splitlines()[-1])
        fr_ms = fr["seconds"] / fr["photos"] * 1e3
        out.update({"face_recognition_ms_per_photo": fr_ms, "face_recognition_found": fr["found"],
                    "speedup": fr_ms / (per * 1e3)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["import", "match"])
    ap.add_argument("--photos", type=int, default=None, help="photos to use (import: 120, match: 60)")
    ap.add_argument("--fr-python", help="a Python interpreter that has face_recognition installed")
    args = ap.parse_args()
    if args.what == "import":
        doc = bench_import(args.photos or 120)
    else:
        doc = bench_match(args.photos or 60, args.fr_python)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
