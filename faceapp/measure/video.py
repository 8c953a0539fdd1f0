"""``faceapp-cli evaluate-video``: how the live view names faces in synthetic videos.

Videos are composed from labelled photos: each person's face (a square around the face
the photo is about, with any other face in it covered) is pasted into plain 640x480 frames
and moved about. The first photo
of each person in the people folder is enrolled; their second photo (another day; the
first when there is only one) is the one that appears in the videos. Strangers (one photo
each) are never enrolled. Every video is watched through the live view's own path, one
fresh tracker per video, and every shown name is compared with who is really there.

The videos (scenarios):

* ``cuts``: everyone in turn at the same place, cut from one to the next without a gap
  (what a door camera sees when one person replaces another);
* ``walk``: people walking in from the left and out at the right, one after another;
* ``crossing``: two people walking towards each other and crossing;
* ``scale``: a face coming close to the camera and going back;
* ``blur``: a face moving fast, with motion blur over the middle third of its frames.

A face is *present* in a frame when it is not hidden by a face in front of it; a shown
name belongs to the present face whose box overlaps it most. Figures:

* face-frames with a wrong name: a name on a face that is someone else (a stranger
  named, or another enrolled person), or on no face at all;
* after a cut, frames where the face shows the previous person's name;
* name switches: a face's shown name changing from one person to another;
* named within 10 frames: of the enrolled faces that the still-photo evaluation names
  (their video photo matched on its own), the share shown with their own name within
  their first 10 frames; time to name: frames until then;
* strangers named: stranger face-frames (and stranger appearances) that showed any name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from faceapp.errors import FaceappError
from faceapp.measure.evaluate import labelled_photos, subject_face
from faceapp.recognise.track import TrackResult, iou
from faceapp.types import Box, Decision
from faceapp.vision.images import load_image

log = logging.getLogger(__name__)

SCENARIOS = ("cuts", "walk", "crossing", "scale", "blur")
FRAME_W, FRAME_H = 640, 480
NAME_WITHIN = 10  # frames within which an enrolled face should be named
CUT_SURVIVAL_LIMIT = 2  # frames a previous name may still show after a cut
PATCH_SIDE = 256  # pixels of the square kept around each face
PATCH_FACE_RATIO = 2.2  # patch side over the face box's longer side
MIN_BOX_OVERLAP = 0.3  # a shown face and a present face are the same when their boxes overlap this much

StepFn = Callable[[np.ndarray], Sequence[TrackResult]]  # one frame -> the live view's faces


@dataclass(frozen=True)
class Actor:
    """A person as they appear in the videos.

    Attributes:
        label: the identity (folder or file name).
        name: the enrolled name, or ``None`` for a stranger.
        patch: ``(PATCH_SIDE, PATCH_SIDE, 3)`` RGB square around the face.
        face: the face's box in patch pixels.
        still_named: the still-photo evaluation names this photo as ``name``.
    """

    label: str
    name: str | None
    patch: np.ndarray = field(repr=False)
    face: Box
    still_named: bool


@dataclass(frozen=True)
class Placement:
    """One actor in one frame.

    Attributes:
        actor: index into the actors.
        segment: the appearance this placement belongs to.
        x: patch centre, pixels from the left.
        y: patch centre, pixels from the top.
        size: patch side in pixels.
        blur: length of horizontal motion blur in pixels (0: sharp).
    """

    actor: int
    segment: int
    x: float
    y: float
    size: float
    blur: int = 0


@dataclass(frozen=True)
class Segment:
    """One appearance of one actor in one video.

    Attributes:
        id: unique over all videos.
        scenario: the video's scenario.
        actor: index into the actors.
        previous: the actor in the same place just before, when this appearance is a cut.
    """

    id: int
    scenario: str
    actor: int
    previous: int | None = None


@dataclass
class Script:
    """One synthetic video: per frame, the placements in paint order (the last is in front)."""

    scenario: str
    frames: list[list[Placement]] = field(default_factory=list)


# ---------------------------------------------------------------------- actors


def cover(image: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """``image`` with each box (and 15 % around it) painted in the image's mean colour; a copy when any."""
    if not boxes:
        return image
    image = image.copy()
    fill = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    for b in boxes:
        mx, my = 0.15 * (b[2] - b[0]), 0.15 * (b[3] - b[1])
        x0, y0 = max(0, int(b[0] - mx)), max(0, int(b[1] - my))
        image[y0 : max(y0, int(b[3] + my)), x0 : max(x0, int(b[2] + mx))] = fill
    return image


def face_patch(image: np.ndarray, box: Box, hide: Sequence[Box] = ()) -> tuple[np.ndarray, Box]:
    """A square of the photo around a face, resized to ``PATCH_SIDE``, and the face box in it.

    Args:
        image: RGB uint8 photo.
        box: the face's box in the photo.
        hide: boxes of other faces in the photo, covered with the photo's mean colour so that
            the patch shows one face only (a news photo often shows someone beside the subject).
    """
    import cv2

    image = cover(image, hide)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = PATCH_FACE_RATIO * max(box[2] - box[0], box[3] - box[1]) / 2
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    side = int(round(2 * half))
    h, w = image.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - w, y0 + side - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    square = src[y0 + pad : y0 + pad + side, x0 + pad : x0 + pad + side]
    patch = cv2.resize(square, (PATCH_SIDE, PATCH_SIDE), interpolation=cv2.INTER_AREA)
    k = PATCH_SIDE / side
    face = ((box[0] - x0) * k, (box[1] - y0) * k, (box[2] - x0) * k, (box[3] - y0) * k)
    return np.ascontiguousarray(patch), face


def prepare_actors(pipe: Any, people: Path, strangers: Path, *, max_people: int | None = None,
                   max_strangers: int | None = None, seed: int = 0) -> list[Actor]:
    """Enrol everyone in ``people`` into ``pipe``'s (empty) gallery and make the videos' actors.

    Args:
        pipe: a :class:`~faceapp.pipeline.Pipeline` whose gallery may be filled.
        people: folder with one sub-folder of photos per person.
        strangers: folder of photos of people not enrolled (one photo of each is used).
        max_people: enrolled people that appear in the videos (a seeded sample; every
            person is enrolled either way).
        max_strangers: strangers that appear (a seeded sample).
        seed: the sample's seed.

    Raises:
        FaceappError: no usable enrolled person or stranger.
    """
    by_person: dict[str, list[Path]] = {}
    for path, name in labelled_photos(people):
        by_person.setdefault(name, []).append(path)
    by_stranger: dict[str, Path] = {}
    for path, name in labelled_photos(strangers):
        by_stranger.setdefault(name, path)
    rng = np.random.default_rng(seed)
    shown_people = sample(sorted(by_person), max_people, rng)
    shown_strangers = sample(sorted(by_stranger), max_strangers, rng)
    probes: list[tuple[str, Any, np.ndarray, Box]] = []  # (name, probe face, its patch, the face box in it)
    for name, paths in sorted(by_person.items()):
        try:
            face = subject_face(pipe, load_image(paths[0]), str(paths[0]))
            # Every folder is someone else: a look-alike of an enrolled person is enrolled all the same.
            pipe.enroll(name, [face], sources=[str(paths[0])], add=True, despite_match=True)
            if name in shown_people:
                probes.append((name, *_subject_patch(pipe, paths[1] if len(paths) > 1 else paths[0])))
        except FaceappError as exc:
            log.warning("skipped %s: %s", name, exc)
    actors = []
    if probes:
        still = pipe.match_embeddings(np.stack([f.embedding for _, f, _, _ in probes]))
        for (name, _, patch, box), m in zip(probes, still):
            actors.append(Actor(name, name, patch, box, m.decision is Decision.MATCH and m.person == name))
    for label in shown_strangers:
        try:
            _, patch, box = _subject_patch(pipe, by_stranger[label])
        except FaceappError as exc:
            log.warning("skipped stranger %s: %s", label, exc)
            continue
        actors.append(Actor(label, None, patch, box, False))
    if not any(a.name for a in actors) or all(a.name for a in actors):
        raise FaceappError(f"need usable photos of enrolled people in {people} and of strangers in {strangers}")
    return actors


def _subject_patch(pipe: Any, path: Path) -> tuple[Any, np.ndarray, Box]:
    """The face a photo is about (embedded), its patch with every other face covered, and its box in the patch."""
    rgb = load_image(path)
    face = subject_face(pipe, rgb, str(path))
    others = [f.detection.box for f in pipe.analyze(rgb, embed=False)[0] if f.detection.box != face.detection.box]
    patch, box = face_patch(rgb, face.detection.box, others)
    covered = cover(patch, faces_in_frames(pipe, patch, box))
    x0, y0, x1, y1 = (min(max(int(round(v)), 0), PATCH_SIDE) for v in box)
    covered[y0:y1, x0:x1] = patch[y0:y1, x0:x1]  # a neighbour's cover never paints over the subject's face
    return face, covered, box


def faces_in_frames(pipe: Any, patch: np.ndarray, subject: Box, sizes: Sequence[int] = (180, 260)) -> list[Box]:
    """Faces other than ``subject`` that the live view finds in ``patch`` once it stands in a frame.

    A face cut off at the photo's edge can escape detection in the photo and be found in a
    frame, where the live view may name it rightly while the benchmark would count a name on
    no actor's face. Boxes are in ``patch`` pixels.

    Args:
        pipe: a :class:`~faceapp.pipeline.Pipeline`.
        patch: ``(PATCH_SIDE, PATCH_SIDE, 3)`` RGB patch.
        subject: the actor's face box in the patch.
        sizes: the patch sides, in frame pixels, to look at it.
    """
    found: list[Box] = []
    actor = Actor("", None, patch, subject, False)
    for side in sizes:
        frame, _ = render([Placement(0, 0, FRAME_W / 2, FRAME_H / 2, side)], [actor])
        x0, y0 = int(round(FRAME_W / 2 - side / 2)), int(round(FRAME_H / 2 - side / 2))
        k = PATCH_SIDE / side
        for f in pipe.analyze(frame, embed=False, still=False)[0]:
            b = f.detection.box
            box = ((b[0] - x0) * k, (b[1] - y0) * k, (b[2] - x0) * k, (b[3] - y0) * k)
            if iou(box, subject) < MIN_BOX_OVERLAP and all(iou(box, o) < MIN_BOX_OVERLAP for o in found):
                found.append(box)
    return found


def sample(items: list[str], n: int | None, rng: np.random.Generator) -> list[str]:
    """``n`` of ``items`` drawn with ``rng`` (all when ``n`` is ``None``), in the order of ``items``.

    A list, not a set: who appears where must depend on the seed alone, and a set of strings
    iterates in an order that changes with every process's string hashing.
    """
    if n is None or n >= len(items):
        return list(items)
    return [items[i] for i in sorted(rng.choice(len(items), size=n, replace=False))]


# ---------------------------------------------------------------------- scripts


def build_scripts(actors: Sequence[Actor], *, segment_frames: int = 30, per_scenario: int | None = None,
                  scenarios: Sequence[str] = SCENARIOS, seed: int = 0) -> tuple[list[Script], list[Segment]]:
    """The synthetic videos over ``actors``.

    Args:
        actors: who appears.
        segment_frames: frames of one appearance in the ``cuts`` video (the others are a
            little longer, so that faces can cross the frame).
        per_scenario: actors in each video other than ``cuts`` (default: all).
        scenarios: which videos.
        seed: the order in which actors appear.

    Returns:
        The videos and every appearance in them.
    """
    unknown = set(scenarios) - set(SCENARIOS)
    if unknown:
        raise FaceappError(f"unknown scenario {sorted(unknown)[0]!r}; choose from {', '.join(SCENARIOS)}")
    if segment_frames < NAME_WITHIN:
        raise FaceappError(f"segments must be at least {NAME_WITHIN} frames long")
    rng = np.random.default_rng(seed)
    order = [int(i) for i in rng.permutation(len(actors))]
    few = order[: per_scenario if per_scenario is not None else len(order)]
    segments: list[Segment] = []
    scripts = []
    cx, cy = FRAME_W / 2, FRAME_H / 2
    n = segment_frames + 10

    def segment(scenario: str, actor: int, previous: int | None = None) -> int:
        segments.append(Segment(len(segments), scenario, actor, previous))
        return len(segments) - 1

    for scenario in scenarios:
        script = Script(scenario)
        if scenario == "cuts":
            prev = None
            for a in order:
                s = segment(scenario, a, prev)
                prev = a
                script.frames += [[Placement(a, s, cx + 2 * np.sin(k / 3), cy, 220)] for k in range(segment_frames)]
        elif scenario == "walk":
            for a in few:
                s = segment(scenario, a)
                xs = np.linspace(-60, FRAME_W + 60, n)
                script.frames += [[Placement(a, s, float(x), cy, 180)] for x in xs] + [[] for _ in range(5)]
        elif scenario == "crossing":
            for a, b in zip(few[::2], few[1::2]):
                sa, sb = segment(scenario, a), segment(scenario, b)
                xs = np.linspace(110, FRAME_W - 110, n)
                script.frames += [[Placement(a, sa, float(x), cy, 180), Placement(b, sb, float(FRAME_W - x), cy, 180)]
                                  for x in xs] + [[] for _ in range(5)]
        elif scenario == "scale":
            for a in few:
                s = segment(scenario, a)
                sizes = 90 + 260 * np.sin(np.linspace(0, np.pi, n))
                script.frames += [[Placement(a, s, cx, cy, float(z))] for z in sizes] + [[] for _ in range(5)]
        else:  # blur
            for a in few:
                s = segment(scenario, a)
                xs = np.linspace(150, FRAME_W - 150, n)
                script.frames += [[Placement(a, s, float(x), cy, 200, 15 if n // 3 <= k < 2 * n // 3 else 0)]
                                  for k, x in enumerate(xs)] + [[] for _ in range(5)]
        scripts.append(script)
    return scripts, segments


def render(placements: Sequence[Placement], actors: Sequence[Actor],
           background: int = 110) -> tuple[np.ndarray, list[tuple[Placement, Box]]]:
    """One frame and the faces present in it (those not hidden behind a later placement).

    Returns:
        The ``(FRAME_H, FRAME_W, 3)`` RGB frame and ``(placement, face box)`` per present face.
    """
    import cv2

    frame = np.full((FRAME_H, FRAME_W, 3), background, np.uint8)
    rects, boxes = [], []
    for p in placements:
        side = max(8, int(round(p.size)))
        patch = cv2.resize(actors[p.actor].patch, (side, side), interpolation=cv2.INTER_AREA)
        if p.blur > 1:
            patch = cv2.filter2D(patch, -1, np.full((1, p.blur), 1.0 / p.blur, np.float32))
        x0, y0 = int(round(p.x - side / 2)), int(round(p.y - side / 2))
        fx0, fy0 = max(0, x0), max(0, y0)
        fx1, fy1 = min(FRAME_W, x0 + side), min(FRAME_H, y0 + side)
        if fx1 > fx0 and fy1 > fy0:
            frame[fy0:fy1, fx0:fx1] = patch[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
        k = side / PATCH_SIDE
        f = actors[p.actor].face
        rects.append((x0, y0, x0 + side, y0 + side))
        boxes.append((x0 + f[0] * k, y0 + f[1] * k, x0 + f[2] * k, y0 + f[3] * k))
    present = []
    for i, (p, box) in enumerate(zip(placements, boxes)):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        inside = 0 <= cx < FRAME_W and 0 <= cy < FRAME_H
        hidden = any(r[0] <= cx < r[2] and r[1] <= cy < r[3] for r in rects[i + 1 :])
        if inside and not hidden:
            present.append((p, box))
    return frame, present


# ---------------------------------------------------------------------- scoring


@dataclass
class _SegmentScore:
    present: int = 0
    right: int = 0
    wrong: int = 0
    previous_name: int = 0
    first_right: int | None = None
    switches: int = 0
    last_name: str | None = None


@dataclass(frozen=True)
class VideoReport:
    """The figures of one ``evaluate-video`` run (see the module docstring)."""

    frames: int
    face_frames: int
    wrong_name_frames: int
    wrong_name_share: float
    cuts: int
    cuts_previous_name_over_limit: int
    previous_name_frames_max: int
    previous_name_frames: int
    name_switches: int
    enrolled_appearances: int
    still_named_appearances: int
    named_within: float | None
    time_to_name_median: float | None
    time_to_name_p90: float | None
    stranger_face_frames: int
    stranger_named_frames: int
    stranger_appearances: int
    strangers_named: int
    enrolled_face_frames: int
    enrolled_right_frames: int
    by_scenario: dict[str, dict[str, int]]
    embedded_per_frame: float

    def to_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict."""
        import dataclasses

        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """The report as text."""

        def pct(x: float | None) -> str:
            return "n/a" if x is None else f"{100 * x:.1f} %"

        def frames(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.1f}"

        out = [
            f"{self.frames} frames, {self.face_frames} face-frames "
            f"({self.enrolled_face_frames} of enrolled people, {self.stranger_face_frames} of strangers); "
            f"{self.embedded_per_frame:.2f} faces embedded a frame",
            f"face-frames with a wrong name:     {self.wrong_name_frames} ({pct(self.wrong_name_share)})",
            f"previous name after a cut:         at most {self.previous_name_frames_max} frame(s), "
            f"{self.previous_name_frames} in all; {self.cuts_previous_name_over_limit} of {self.cuts} cuts "
            f"over {CUT_SURVIVAL_LIMIT} frames",
            f"name switches on one face:         {self.name_switches}",
            f"named within {NAME_WITHIN} frames:           {pct(self.named_within)} of the "
            f"{self.still_named_appearances} enrolled appearances the still-photo evaluation names "
            f"({self.enrolled_appearances} in all)",
            f"time to name (frames):             median {frames(self.time_to_name_median)}, "
            f"90th percentile {frames(self.time_to_name_p90)}",
            f"enrolled face-frames named right:  {self.enrolled_right_frames} of {self.enrolled_face_frames} "
            f"({pct(self.enrolled_right_frames / self.enrolled_face_frames if self.enrolled_face_frames else None)})",
            f"strangers named:                   {self.stranger_named_frames} face-frames, "
            f"{self.strangers_named} of {self.stranger_appearances} appearances",
            "",
            "by video:          face-frames   wrong   right (enrolled)",
        ]
        for name, s in self.by_scenario.items():
            out.append(f"  {name:<16} {s['face_frames']:>11} {s['wrong']:>7} {s['right']:>8}")
        return out


def _shown_name(r: TrackResult) -> str | None:
    m = r.match
    return m.person if m is not None and m.decision is Decision.MATCH else None


def score_videos(scripts: Sequence[Script], segments: Sequence[Segment], actors: Sequence[Actor],
                 new_step: Callable[[], StepFn], progress: bool = False) -> VideoReport:
    """Play every video through the live view and score what it shows.

    Args:
        scripts: the videos (from :func:`build_scripts`).
        segments: their appearances.
        actors: who appears.
        new_step: a fresh live view for one video: frame -> its faces with their shown decisions.
        progress: show a progress bar on stderr.
    """
    from tqdm import tqdm

    scores = {s.id: _SegmentScore() for s in segments}
    stray_wrong = 0
    by_scenario: dict[str, dict[str, int]] = {}
    embedded = frames = 0
    bar = tqdm(total=sum(len(s.frames) for s in scripts), desc="frames", unit="frame", disable=not progress)
    for script in scripts:
        step = new_step()
        seen: dict[int, int] = {}  # segment -> frames present so far
        tally = by_scenario.setdefault(script.scenario, {"face_frames": 0, "wrong": 0, "right": 0})
        for placements in script.frames:
            image, present = render(placements, actors)
            results = list(step(image))
            frames += 1
            embedded += sum(r.reembedded for r in results)
            owner = _assign(results, present)
            for p, _ in present:
                sc = scores[p.segment]
                offset = seen.get(p.segment, 0)
                seen[p.segment] = offset + 1
                sc.present += 1
                tally["face_frames"] += 1
                shown = owner.get(p.segment)
                truth = actors[p.actor].name
                seg = segments[p.segment]
                if shown is None:
                    continue
                if shown == truth:
                    sc.right += 1
                    tally["right"] += 1
                    if sc.first_right is None:
                        sc.first_right = offset
                else:
                    sc.wrong += 1
                    tally["wrong"] += 1
                if seg.previous is not None and shown == actors[seg.previous].name and shown != truth:
                    sc.previous_name += 1
                if sc.last_name is not None and shown != sc.last_name:
                    sc.switches += 1
                sc.last_name = shown
            named_faces = sum(1 for r in results if _shown_name(r) is not None)
            stray = named_faces - len(owner)
            stray_wrong += stray
            tally["wrong"] += stray
            bar.update(1)
    bar.close()
    return _report(segments, actors, scores, stray_wrong, by_scenario, frames, embedded)


def _assign(results: Sequence[TrackResult], present: Sequence[tuple[Placement, Box]]) -> dict[int, str]:
    """Shown names by segment: each named result goes to the present face it overlaps most."""
    pairs = sorted(((iou(r.box, box), i, j) for i, r in enumerate(results) if _shown_name(r) is not None
                    for j, (_, box) in enumerate(present)), reverse=True)
    owner: dict[int, str] = {}
    used: set[int] = set()
    for overlap, i, j in pairs:
        if overlap < MIN_BOX_OVERLAP:
            break
        seg = present[j][0].segment
        if i in used or seg in owner:
            continue
        name = _shown_name(results[i])
        assert name is not None
        owner[seg] = name
        used.add(i)
    return owner


def _report(segments: Sequence[Segment], actors: Sequence[Actor], scores: dict[int, _SegmentScore], stray_wrong: int,
            by_scenario: dict[str, dict[str, int]], frames: int, embedded: int) -> VideoReport:
    seen = [s for s in segments if scores[s.id].present > 0]
    enrolled = [s for s in seen if actors[s.actor].name is not None]
    strangers = [s for s in seen if actors[s.actor].name is None]
    eligible = [s for s in enrolled if actors[s.actor].still_named]
    within = [s for s in eligible if (f := scores[s.id].first_right) is not None and f < NAME_WITHIN]
    times = [float(f) + 1 for s in eligible if (f := scores[s.id].first_right) is not None]
    cuts = [s for s in seen if s.previous is not None and actors[s.previous].name is not None
            and actors[s.previous].name != actors[s.actor].name]
    face_frames = sum(scores[s.id].present for s in seen)
    wrong = sum(scores[s.id].wrong for s in seen) + stray_wrong
    return VideoReport(
        frames=frames,
        face_frames=face_frames,
        wrong_name_frames=wrong,
        wrong_name_share=wrong / face_frames if face_frames else 0.0,
        cuts=len(cuts),
        cuts_previous_name_over_limit=sum(scores[s.id].previous_name > CUT_SURVIVAL_LIMIT for s in cuts),
        previous_name_frames_max=max((scores[s.id].previous_name for s in cuts), default=0),
        previous_name_frames=sum(scores[s.id].previous_name for s in cuts),
        name_switches=sum(scores[s.id].switches for s in seen),
        enrolled_appearances=len(enrolled),
        still_named_appearances=len(eligible),
        named_within=len(within) / len(eligible) if eligible else None,
        time_to_name_median=float(np.median(times)) if times else None,
        time_to_name_p90=float(np.quantile(times, 0.9)) if times else None,
        stranger_face_frames=sum(scores[s.id].present for s in strangers),
        stranger_named_frames=sum(scores[s.id].wrong for s in strangers),
        stranger_appearances=len(strangers),
        strangers_named=sum(scores[s.id].wrong > 0 for s in strangers),
        enrolled_face_frames=sum(scores[s.id].present for s in enrolled),
        enrolled_right_frames=sum(scores[s.id].right for s in enrolled),
        by_scenario=by_scenario,
        embedded_per_frame=embedded / frames if frames else 0.0,
    )
