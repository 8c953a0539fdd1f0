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

from faceapp.images import person_folders

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


def from_photo_folder(root: Path, cache_dir: Path | None = None, detector: str = "full") -> FaceCrops:
    """Detect and align the main face of every photo in ``root/<person>/``, with a cache."""
    from tqdm import tqdm

    from faceapp.config import Settings
    from faceapp.errors import FaceappError
    from faceapp.pipeline import Pipeline

    items = _tree(Path(root))
    key = hashlib.sha256(json.dumps(
        [detector] + [(n, str(f), f.stat().st_size, f.stat().st_mtime_ns) for n, f in items]
    ).encode()).hexdigest()[:16]
    cache = (Path(cache_dir) if cache_dir else Path(root)) / f".faceapp-crops-{key}.npz"
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


def from_aligned_folder(root: Path, size: int = 112) -> FaceCrops:
    """Crops already aligned to the template, ``root/<person>/*.png``; resized when needed."""
    import cv2

    from faceapp.errors import ImageError
    from faceapp.images import load_image

    entries, failed = [], []
    for name, f in _tree(Path(root)):
        try:
            img = load_image(f)
        except ImageError as exc:
            failed.append((str(f), str(exc)))
            continue
        if img.shape[:2] != (size, size):
            img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        entries.append((name, img, str(f)))
    return _labelled(entries, failed)


def from_gallery(gallery_dir: Path) -> FaceCrops:
    """The aligned face crops stored in a faceapp gallery, labelled by person."""
    from faceapp.gallery import Gallery
    from faceapp.pipeline import decode_thumbnail

    with Gallery(Path(gallery_dir)) as g:
        entries = [(name, decode_thumbnail(blob), f"gallery:{tid}") for name, tid, blob in g.all_thumbnails()]
    return _labelled(entries, [])


def split_by_identity(data: FaceCrops, val_fraction: float, seed: int = 0) -> tuple[FaceCrops, FaceCrops]:
    """Disjoint identities for training and validation."""
    if not 0 < val_fraction < 1:
        raise ValueError("val_fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    ids = rng.permutation(data.num_classes).tolist()
    n_val = max(2, int(round(val_fraction * len(ids))))
    if len(ids) - n_val < 2:
        raise ValueError(f"{data.num_classes} identities are too few to split into train and validation")
    return data.subset(sorted(ids[n_val:])), data.subset(sorted(ids[:n_val]))


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
