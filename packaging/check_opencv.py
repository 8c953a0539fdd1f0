"""Check that the OpenCV in this environment has what faceapp calls.

The installers bundle an OpenCV built with a few modules only (``packaging/build_opencv.sh``).
This reads every ``cv2.NAME`` (and ``cv2.a.b``) that the app's code uses and looks each up in the
``cv2`` that Python imports here, and checks that video files and cameras have their backends
(FFmpeg and V4L2 on Linux). It prints what is missing and exits with 1, so a call to a module the
build leaves out fails the build instead of the user's session.

    python packaging/check_opencv.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent
VIDEO_BACKENDS = {"linux": ("FFMPEG", "V4L2")}


def dotted(node: ast.AST) -> str | None:
    """``cv2.a.b`` as ``"a.b"``, or None when the expression is not an attribute chain on ``cv2``."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "cv2" and parts:
        return ".".join(reversed(parts))
    return None


def used_names(package: Path) -> set[str]:
    """Every attribute chain on ``cv2`` in the package's modules (the longest chain of each use)."""
    names: set[str] = set()
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        inner = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        names |= {name for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and id(n) not in inner and (name := dotted(n))}
    return names


def missing(cv2: ModuleType, names: set[str]) -> list[str]:
    """The names that ``cv2`` lacks, sorted."""
    def has(name: str) -> bool:
        obj: object = cv2
        for part in name.split("."):
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return sorted(n for n in names if not has(n))


def missing_backends(cv2: ModuleType, platform: str = sys.platform) -> list[str]:
    """The video backends the app needs on this platform that ``cv2`` was built without.

    Only built-in backends count: OpenCV also lists backends it would look for as plugin
    libraries at run time (FFmpeg among them when it was built without it), and faceapp
    ships no such plugins."""
    registry = cv2.videoio_registry
    wanted = next((b for p, b in VIDEO_BACKENDS.items() if platform.startswith(p)), ())
    have = {registry.getBackendName(b) for b in registry.getBackends() if registry.isBackendBuiltIn(b)}
    return [b for b in wanted if b not in have]


def main() -> int:
    import cv2

    names = used_names(ROOT / "faceapp")
    gaps = missing(cv2, names) + [f"video backend {b}" for b in missing_backends(cv2)]
    if gaps:
        print(f"OpenCV {cv2.__version__} lacks what faceapp uses: {', '.join(gaps)}; "
              "add the module to packaging/build_opencv.sh", file=sys.stderr)
        return 1
    print(f"OpenCV {cv2.__version__} has the {len(names)} names faceapp uses and its video backends")
    return 0


if __name__ == "__main__":
    sys.exit(main())
