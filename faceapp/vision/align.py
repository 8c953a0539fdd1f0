"""Alignment of a detected face onto a network's template, and quality measures.

MediaPipe gives 6 keypoints but no mouth corners, so the fit uses 4 points: both eyes,
the nose tip, and the mouth centre matched to the mean of the template's two mouth
corners. The transform is a least-squares similarity (rotation, uniform scale,
translation; Umeyama 1991) onto the template's face, so the face is never sheared there;
a network whose input has another shape than its template's face (Open Model Zoo's 96x112
face in a 128x128 input) gets that face stretched to its input, as it was trained.

A crop aligned for one network can be turned into another network's crop
(:func:`realign`): the first template's points, where they lie in the crop, play the part
of the keypoints. This is how faces stored as 112x112 ArcFace crops feed every network.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faceapp.types import Quality
from faceapp.vision.contract import Alignment

CROP_SIZE = 112


def template_points4(template: Sequence[Sequence[float]]) -> np.ndarray:
    """The 4 template points used with MediaPipe keypoints: eyes, nose, mouth centre."""
    t = np.asarray(template, dtype=np.float64)
    return np.stack([t[0], t[1], t[2], (t[3] + t[4]) / 2.0]).astype(np.float32)


def keypoints4(keypoints: np.ndarray) -> np.ndarray:
    """Eyes, nose tip and mouth centre out of MediaPipe's 6 keypoints: ``(4, 2)``."""
    return np.asarray(keypoints, dtype=np.float32)[:4]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity mapping ``src`` points onto ``dst`` points.

    Args:
        src: ``(N, 2)`` points, N >= 2.
        dst: ``(N, 2)`` points.

    Returns:
        ``(2, 3)`` float64 affine matrix ``M`` with ``dst ~= M @ [x, y, 1]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need matching (N, 2) point sets, got {src.shape} and {dst.shape}")
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    var_s = (s**2).sum() / len(src)
    if var_s < 1e-12:
        raise ValueError("source points coincide")
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = u @ np.diag(sign) @ vt
    scale = (sig * sign).sum() / var_s
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - scale * rot @ mu_s
    return m


def _warp(image: np.ndarray, points4: np.ndarray, alignment: Alignment) -> np.ndarray:
    """Warp ``image`` so that its 4 ``points4`` land on the alignment's template, at its input size."""
    import cv2

    (th, tw), (h, w) = alignment.template_size, alignment.input_size
    sx, sy = w / tw, h / th
    dst = template_points4(alignment.template)
    if sx == sy:
        m = similarity_transform(points4, dst * sx)
    else:  # similarity onto the template's face, then that face stretched to the input
        m = np.diag([sx, sy]) @ similarity_transform(points4, dst)
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def align_face(image: np.ndarray, keypoints: np.ndarray,
               template: Sequence[Sequence[float]] | Alignment, size: int = CROP_SIZE) -> np.ndarray:
    """Warp the face onto the template.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        keypoints: ``(6, 2)`` MediaPipe keypoints in ``image`` pixels.
        template: a network's :class:`~faceapp.vision.contract.Alignment`, or a 5-point
            template for a 112x112 face, cropped at ``size`` x ``size``.
        size: crop side in pixels when ``template`` is a plain template.

    Returns:
        ``(h, w, 3)`` RGB uint8 crop (the alignment's input size, or ``size`` x ``size``).
    """
    if not isinstance(template, Alignment):
        pts = tuple((float(p[0]), float(p[1])) for p in template)
        template = Alignment(pts, (CROP_SIZE, CROP_SIZE), (size, size))
    return _warp(image, keypoints4(keypoints), template)


def realign(crops: np.ndarray, source: Alignment, target: Alignment) -> np.ndarray:
    """Crops aligned for ``source`` turned into crops aligned for ``target``.

    Args:
        crops: ``(N, h, w, 3)`` RGB uint8, aligned for ``source`` (``h, w`` its input size).
        source: the alignment the crops were made with.
        target: the alignment wanted.

    Returns:
        ``(N, h', w', 3)`` RGB uint8 crops at ``target``'s input size.
    """
    if source == target:
        return np.asarray(crops)
    (th, tw), (h, w) = source.template_size, source.input_size
    points = template_points4(source.template) * np.array([w / tw, h / th], np.float32)
    out = [_warp(np.ascontiguousarray(c), points, target) for c in crops]
    return np.stack(out) if out else np.zeros((0, *target.input_size, 3), np.uint8)


def face_quality(keypoints: np.ndarray, crop: np.ndarray) -> Quality:
    """Quality measures for one face.

    Args:
        keypoints: ``(6, 2)`` MediaPipe keypoints in source pixels.
        crop: the ``(112, 112, 3)`` RGB uint8 aligned crop.
    """
    import cv2

    k = np.asarray(keypoints, dtype=np.float64)
    eye_l, eye_r, nose = k[0], k[1], k[2]
    ear_l, ear_r = k[4], k[5]
    eye_vec = eye_r - eye_l
    inter_ocular = float(np.hypot(*eye_vec))
    roll = math.degrees(math.atan2(eye_vec[1], eye_vec[0]))
    # Turning the head brings the nose towards one ear tragion and away from the other.
    d_l = float(np.hypot(*(nose - ear_l)))
    d_r = float(np.hypot(*(nose - ear_r)))
    ratio = (d_l - d_r) / max(d_l + d_r, 1e-6)
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, ratio))))
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    brightness = float(grey.mean())
    return Quality(face_size=inter_ocular, sharpness=sharpness, yaw=yaw, roll=roll, brightness=brightness)
