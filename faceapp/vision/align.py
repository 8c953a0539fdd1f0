"""Alignment of a detected face onto the 112x112 ArcFace template, and quality measures.

MediaPipe gives 6 keypoints but no mouth corners, so the fit uses 4 points: both eyes,
the nose tip, and the mouth centre matched to the mean of the template's two mouth
corners. The transform is a least-squares similarity (rotation, uniform scale,
translation; Umeyama 1991), so the face is never sheared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from faceapp.types import Quality

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


def align_face(image: np.ndarray, keypoints: np.ndarray,
               template: Sequence[Sequence[float]], size: int = CROP_SIZE) -> np.ndarray:
    """Warp the face onto the template.

    Args:
        image: RGB uint8 ``(H, W, 3)``.
        keypoints: ``(6, 2)`` MediaPipe keypoints in ``image`` pixels.
        template: the 5-point template for a ``size`` x ``size`` crop.
        size: crop side in pixels.

    Returns:
        ``(size, size, 3)`` RGB uint8 crop.
    """
    import cv2

    m = similarity_transform(keypoints4(keypoints), template_points4(template) * (size / CROP_SIZE))
    return cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


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
