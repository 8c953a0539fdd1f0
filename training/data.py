"""Training data: aligned 112x112 face crops with identity labels.

Three sources, all ending as :class:`FaceCrops`:

* :func:`from_photo_folder`: a folder-per-identity tree of ordinary photos; faces are
  detected and aligned once with faceapp's own pipeline and cached in an ``.npz`` file;
  photos without a usable face are reported, not fatal;
* :func:`from_aligned_folder`: a folder-per-identity tree of crops already aligned;
* :func:`from_gallery`: the face crops stored in a faceapp gallery.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from faceapp.vision.images import person_folders

log = logging.getLogger(__name__)



@dataclass
class FaceCrops:
    """Aligned crops ``(N, 112, 112, 3)`` RGB uint8 with labels ``(N,)`` into ``names``."""

    crops: np.ndarray
    labels: np.ndarray
    names: list[str]
    files: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def subset(self, identities: list[int]) -> FaceCrops:
        """Only the given identities, relabelled 0..len(identities)-1."""
        remap = {old: new for new, old in enumerate(identities)}
        keep = np.isin(self.labels, identities)
        files = [f for f, k in zip(self.files, keep) if k] if self.files else []
        return FaceCrops(
            crops=self.crops[keep], labels=np.array([remap[int(x)] for x in self.labels[keep]], np.int64),
            names=[self.names[i] for i in identities], files=files,
        )

    def select(self, names: list[str]) -> FaceCrops:
        """Only the identities called ``names`` (in that order), relabelled from 0.

        Raises:
            ValueError: a name is not in this set.
        """
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise ValueError(f"{len(missing)} identities of the split are not in the data (e.g. {missing[0]!r}); "
                             "give the data the run was trained on")
        return self.subset([index[n] for n in names])

    def summary(self) -> dict[str, object]:
        return {"images": len(self), "identities": self.num_classes, "failed": len(self.failed)}


def _tree(root: Path) -> list[tuple[str, Path]]:
    return [(name, f) for name, photos in person_folders(root) for f in photos]


def _labelled(entries: list[tuple[str, np.ndarray, str]], failed: list[tuple[str, str]]) -> FaceCrops:
    names = sorted({n for n, _, _ in entries})
    index = {n: i for i, n in enumerate(names)}
    if not entries:
        raise ValueError("no usable faces")
    return FaceCrops(
        crops=np.stack([c for _, c, _ in entries]).astype(np.uint8),
        labels=np.array([index[n] for n, _, _ in entries], np.int64),
        names=names, files=[f for _, _, f in entries], failed=failed,
    )


def _align_photos(items: list[tuple[str, Path]], cache: Path, detector: str) -> FaceCrops:
    """Detect and align the main face of each ``(identity, photo)``, cached in ``cache``."""
    from tqdm import tqdm

    from faceapp.config import Settings
    from faceapp.errors import FaceappError
    from faceapp.pipeline import Pipeline

    key = hashlib.sha256(json.dumps(
        [detector] + [(n, str(f), f.stat().st_size, f.stat().st_mtime_ns) for n, f in items]
    ).encode()).hexdigest()[:16]
    cache = cache / f".faceapp-crops-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            log.info("using cached crops %s", cache)
            return FaceCrops(z["crops"], z["labels"], meta["names"], meta["files"], [tuple(x) for x in meta["failed"]])
    entries: list[tuple[str, np.ndarray, str]] = []
    failed: list[tuple[str, str]] = []
    with Pipeline(Settings(detector=detector)) as pipe:
        for name, f in tqdm(items, desc="aligning", unit="img"):
            try:
                entries.append((name, pipe.main_face(f).crop, str(f)))
            except FaceappError as exc:
                failed.append((str(f), str(exc)))
    for f, why in failed:
        log.warning("skipped %s: %s", f, why)
    data = _labelled(entries, failed)
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"names": data.names, "files": data.files, "failed": data.failed})
        np.savez_compressed(cache, crops=data.crops, labels=data.labels, meta=np.array(meta))
    except OSError as exc:
        log.warning("could not write the crop cache %s (%s)", cache, exc)
    return data


def from_photo_folder(root: Path, cache_dir: Path | None = None, detector: str = "full") -> FaceCrops:
    """Detect and align the main face of every photo in ``root/<person>/``, with a cache.

    Args:
        root: folder-per-person tree of photos.
        cache_dir: where the aligned crops are cached (default: ``root`` itself).
        detector: faceapp's detector setting.
    """
    return _align_photos(_tree(Path(root)), Path(cache_dir) if cache_dir else Path(root), detector)


def from_stranger_folder(root: Path, cache_dir: Path | None = None, detector: str = "full",
                         aligned: bool = False) -> FaceCrops:
    """Photos of people who are in no person folder, one identity per photo (``root/*.jpg``).

    Args:
        root: flat folder of photos, each of a different person.
        cache_dir: where the aligned crops are cached (default: ``root`` itself).
        detector: faceapp's detector setting.
        aligned: the files are crops already aligned to the template (no detection).

    Raises:
        ValueError: ``root`` is not a folder or holds no photos.
    """
    from faceapp.vision.images import IMAGE_SUFFIXES

    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"strangers: {root} is not a folder; give a folder of photos of people not in the data")
    photos = sorted(f for f in root.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not photos:
        raise ValueError(f"strangers: {root} holds no photos (expected {root}/*.jpg)")
    items = [(f.stem, f) for f in photos]
    if aligned:
        return _read_aligned(items)
    return _align_photos(items, Path(cache_dir) if cache_dir else root, detector)


def _read_aligned(items: list[tuple[str, Path]], size: int = 112) -> FaceCrops:
    """Crops already aligned to the template, one ``(identity, file)`` each; resized when needed."""
    import cv2

    from faceapp.errors import ImageError
    from faceapp.vision.images import load_image

    entries, failed = [], []
    for name, f in items:
        try:
            img = load_image(f)
        except ImageError as exc:
            failed.append((str(f), str(exc)))
            continue
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        entries.append((name, img, str(f)))
    return _labelled(entries, failed)


def from_aligned_folder(root: Path, size: int = 112) -> FaceCrops:
    """Crops already aligned to the template, ``root/<person>/*.png``; resized when needed."""
    return _read_aligned(_tree(Path(root)), size)


def from_gallery(gallery_dir: Path) -> FaceCrops:
    """The aligned face crops stored in a faceapp gallery, labelled by person."""
    from faceapp.gallery.gallery import Gallery
    from faceapp.vision.images import decode_crop

    with Gallery(Path(gallery_dir)) as g:
        entries = [(name, decode_crop(blob), f"gallery:{tid}") for name, tid, blob in g.all_crops()]
    return _labelled(entries, [])


@dataclass(frozen=True)
class Split:
    """Identity-disjoint train / validation / test names, and strangers for validation and test.

    Written to a run folder as ``split.json`` when training starts; export and evaluation
    read it back and never split again, so test identities cannot leak into training.
    """

    train: list[str]
    val: list[str]
    test: list[str]
    val_strangers: list[str] = field(default_factory=list)
    test_strangers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test,
                "val_strangers": self.val_strangers, "test_strangers": self.test_strangers}

    def save(self, path: Path) -> None:
        """Write the split as JSON to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")


def load_split(run: Path) -> Split:
    """The split a run was trained with (``RUN/split.json``).

    Raises:
        FileNotFoundError: the run folder has no ``split.json``.
    """
    path = Path(run) / "split.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: give a run folder written by faceapp-train finetune")
    d = json.loads(path.read_text(encoding="utf-8"))
    return Split(d["train"], d["val"], d.get("test", []), d.get("val_strangers", []), d.get("test_strangers", []))


def split_identities(names: list[str], val_fraction: float, test_fraction: float, seed: int = 0,
                     strangers: list[str] | None = None) -> Split:
    """Shuffle identities into disjoint train, validation and test sets.

    Args:
        names: identity names.
        val_fraction: share of identities for validation (at least 2 of them).
        test_fraction: share for the final test (0 = no test set).
        seed: shuffling seed.
        strangers: names of one-photo stranger identities, split half and half between
            validation and test (all to validation when there is no test set).

    Raises:
        ValueError: fractions out of range, or too few identities for the split.
    """
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction must be in (0, 1), test_fraction in [0, 1), and together below 1")
    rng = np.random.default_rng(seed)
    ids = [names[i] for i in rng.permutation(len(names))]
    n_val = max(2, int(round(val_fraction * len(ids))))
    n_test = max(2, int(round(test_fraction * len(ids)))) if test_fraction > 0 else 0
    if len(ids) - n_val - n_test < 2:
        raise ValueError(f"{len(names)} identities are too few to split into train, validation and test")
    st = [strangers[i] for i in rng.permutation(len(strangers))] if strangers else []
    half = len(st) // 2 if n_test else len(st)
    return Split(train=sorted(ids[n_val + n_test:]), val=sorted(ids[:n_val]), test=sorted(ids[n_val:n_val + n_test]),
                 val_strangers=sorted(st[:half]), test_strangers=sorted(st[half:]))


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations applied to training crops (probabilities per sample)."""

    flip: float = 0.5
    colour: float = 0.3
    blur: float = 0.1
    downscale: float = 0.1
    jpeg: float = 0.1


def augment(img: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation of a ``(112, 112, 3)`` RGB uint8 crop."""
    import cv2

    out = img
    if rng.random() < cfg.flip:
        out = out[:, ::-1]
    if rng.random() < cfg.colour:
        f = out.astype(np.float32)
        grey = f.mean(axis=2, keepdims=True)
        f = grey + (f - grey) * rng.uniform(0.6, 1.4)  # saturation
        f = (f - f.mean()) * rng.uniform(0.7, 1.3) + f.mean()  # contrast
        f = f * rng.uniform(0.7, 1.3)  # brightness
        out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < cfg.blur:
        out = cv2.GaussianBlur(np.ascontiguousarray(out), (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < cfg.downscale:
        s = int(rng.integers(24, 80))
        out = cv2.resize(cv2.resize(np.ascontiguousarray(out), (s, s), interpolation=cv2.INTER_AREA), (112, 112))
    if rng.random() < cfg.jpeg:
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 70))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return np.ascontiguousarray(out)


class CropDataset(Dataset):
    """Torch view of :class:`FaceCrops`: ``(3, 112, 112)`` float 0-255 RGB and the label."""

    def __init__(self, data: FaceCrops, aug: AugmentConfig | None = None, seed: int = 0) -> None:
        self.data = data
        self.aug = aug
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.data.crops[i]
        if self.aug is not None:
            rng = np.random.default_rng((self.seed, self.epoch, i))
            img = augment(img, self.aug, rng)
        return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float(), int(self.data.labels[i])
