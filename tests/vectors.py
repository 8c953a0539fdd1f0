"""Stand-in embeddings for the tests: random or given vectors scaled to unit length."""

import numpy as np


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random float32 vectors of ``dim`` components, each of length 1."""
    return normalise(rng.standard_normal((n, dim)))


def normalise(v) -> np.ndarray:
    """``v`` (one vector, or one per row) as float32 scaled to unit length."""
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v, axis=-1, keepdims=True)
