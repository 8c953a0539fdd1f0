"""Draw docs/architecture.png from the code: faceapp's parts, their layers and who imports whom.

The layers are read from the import-linter contract in pyproject.toml and the arrows from the
package's real imports (grimp, which import-linter uses), so the picture cannot drift from the
code: run it again after a change of layout.

Usage: python scripts/architecture.py [OUT.png]
"""

from __future__ import annotations

import sys
import textwrap
from collections import defaultdict
from pathlib import Path

import grimp
import matplotlib
import tomllib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LAYER_CONTRACT = "Layers"


def layers() -> list[list[str]]:
    """The layer contract's layers, top first, each a list of sibling modules."""
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for contract in conf["tool"]["importlinter"]["contracts"]:
        if contract["type"] == "layers" and contract["name"].startswith(LAYER_CONTRACT):
            return [[m.strip() for m in layer.split("|")] for layer in contract["layers"]]
    raise SystemExit("pyproject.toml has no layers contract")


def part_of(module: str, parts: list[str]) -> str | None:
    for p in parts:
        if module == p or module.startswith(p + "."):
            return p
    return None


def part_imports(parts: list[str]) -> dict[str, set[str]]:
    """For each part, the other parts it imports directly."""
    sys.path.insert(0, str(ROOT))
    graph = grimp.build_graph("faceapp")
    edges: dict[str, set[str]] = defaultdict(set)
    for mod in graph.modules:
        src = part_of(mod, parts)
        if src is None:
            continue
        for imported in graph.find_modules_directly_imported_by(mod):
            dst = part_of(imported, parts)
            if dst is not None and dst != src:
                edges[src].add(dst)
    return edges


def reduce(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The transitive reduction: a -> c is dropped where a reaches c through another part."""
    def reach(a: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [b for b in edges.get(a, ()) if (a, b) != skip]
        while todo:
            b = todo.pop()
            if b not in seen:
                seen.add(b)
                todo.extend(edges.get(b, ()))
        return seen

    return {a: {c for c in cs if c not in reach(a, (a, c))} for a, cs in edges.items()}


def modules_in(part: str) -> list[str]:
    path = ROOT / Path(*part.split("."))
    if path.is_dir():
        return sorted(p.stem for p in path.glob("*.py") if p.stem != "__init__")
    return []


def draw(out: Path) -> None:
    rows = layers()
    parts = [m for row in rows for m in row]
    edges = reduce(part_imports(parts))
    fig, ax = plt.subplots(figsize=(11, 1.0 * len(rows) + 0.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.3, len(rows))
    ax.axis("off")
    centre: dict[str, tuple[float, float]] = {}
    for r, row in enumerate(rows):
        y = len(rows) - r - 0.5
        width = 9.4 / len(row)
        for i, part in enumerate(row):
            x0 = 0.3 + i * width
            inner = modules_in(part)
            label = part.removeprefix("faceapp.") + ("/" if inner else ".py")
            text = label + ("\n" + textwrap.fill(", ".join(inner), width=int(width * 14)) if inner else "")
            ax.add_patch(FancyBboxPatch((x0 + 0.05, y - 0.4), width - 0.1, 0.8, boxstyle="round,pad=0.02",
                                        fc="#e8f0fb" if inner else "#f4f4f4", ec="#3b5b8c"))
            ax.text(x0 + width / 2, y, text, ha="center", va="center", fontsize=8 if text.count("\n") > 2 else 8.5)
            centre[part] = (x0 + width / 2, y)
    for src, dsts in edges.items():
        for dst in dsts:
            (x1, y1), (x2, y2) = centre[src], centre[dst]
            upward = y2 > y1
            ax.add_patch(FancyArrowPatch((x1, y1 - 0.4), (x2, y2 + 0.4), arrowstyle="-|>", mutation_scale=8,
                                         color="#c0392b" if upward else "#7a8aa6", lw=0.6, alpha=0.7,
                                         connectionstyle="arc3,rad=0.08"))
    note = ("arrows: imports read from the code (an arrow is left out where a longer path already connects "
            "the two); layers: import-linter's contract in pyproject.toml, imports only go down")
    ax.text(0.3, -0.2, note, fontsize=8, color="#555")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    draw(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "architecture.png")
