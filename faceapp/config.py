"""Settings: one dataclass, in three layers.

1. **Defaults**: the dataclass defaults; a value left unset (``None``) falls back to the
   model's recommendation (thresholds) or to the platform default (gallery location).
2. **Saved settings**: the TOML file in the user's config directory (``platformdirs``),
   or where ``FACEAPP_CONFIG`` points. The CLI and the GUI read the same file.
3. **This run's command-line flags**: they apply to this run only and are never saved.

:class:`SettingsLayers` keeps the layers apart, so that the GUI saves only what the user
changed in it (:meth:`SettingsLayers.change`) and never a one-off flag.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import tomllib

from faceapp import private
from faceapp.errors import SettingsError

log = logging.getLogger(__name__)

APP_NAME = "faceapp"
MAX_PIXELS = 100_000_000  # default pixel budget for one decoded image (~300 MB): Settings.max_image_pixels
DEFAULT_FOLDER_FPS = 2.0  # images a second when a folder of images is played as a video: Settings.folder_fps
PROVIDERS = ("auto", "cuda", "openvino", "cpu")
DETECTORS = ("full", "short")
PRECISIONS = ("int8", "fp32")
# The one range of each numeric setting: Settings refuses values outside it (on load, on save
# and for flags), and the GUI's sliders and spin boxes take their ranges from here, so a widget
# can always show the value in force.
LIMITS: dict[str, tuple[float, float]] = {
    "threshold": (0.0, 1.0),
    "verify_threshold": (-1.0, 1.0),
    "uncertain_band": (0.0, 0.5),
    "margin": (0.0, 1.0),
    "min_detection_confidence": (0.05, 1.0),
    "min_face_size": (0.0, 500.0),
}


@dataclass(frozen=True)
class Settings:
    """Everything a user can tune.

    Attributes:
        gallery: gallery folder, or a PostgreSQL address (``postgresql://user@host/db``
            or ``host=... dbname=...``, never with a password); ``None`` = a folder in the
            platform's user data directory.
        model: embedder: an ONNX file with faceapp's contract, or a fused model's ``.json``;
            ``None`` = the bundled model (SFace fused with Open Model Zoo's
            face-reidentification-retail-0095).
        detector: ``"full"`` (full-range, finds small and distant faces) or ``"short"``
            (selfie distance, faster).
        provider: where the embedder runs: ``"auto"`` (CUDA when it works, else the faster
            of onnxruntime and OpenVINO on the CPU, timed once and cached), ``"cuda"``,
            ``"openvino"`` or ``"cpu"`` (onnxruntime).
        precision: ``"int8"`` (OpenVINO runs the bundled statically quantised embedder,
            about twice as fast; its embeddings keep a cosine of at least 0.99 to fp32) or
            ``"fp32"``. onnxruntime and CUDA always run fp32.
        threads: CPU threads for the embedder; 0 = automatic (every core, except that the
            GUI's live view leaves one free on machines with up to 4 cores).
        threshold: cosine similarity at or above which a face is a match; ``None`` =
            the model's calibrated 1:N threshold (:mod:`faceapp.vision.calibration`).
        uncertain_band: width of the band below ``threshold`` reported as uncertain;
            ``None`` = the model's recommendation, ``0`` = no band.
        verify_threshold: threshold for 1:1 ``verify``; ``None`` = the model's.
        margin: the best person must beat the second-best by this much (cosine
            similarity) to be named, else the face is "ambiguous"; ``None`` = the
            model's recommendation, ``0`` = off.
        min_face_size: faces whose inter-ocular distance is below this (pixels) are ignored.
        min_detection_confidence: detector score below which a face is dropped.
        max_detect_side: images larger than this (pixels, longest side) are downscaled
            for detection; boxes are mapped back to the original.
        max_image_pixels: image files whose header claims more pixels than this are
            refused before decoding (a 100-megapixel photo takes ~300 MB to decode).
        top_k: how many candidate people to report per face.
        store_thumbnails: keep each template's aligned face crop in the gallery (needed
            to re-embed the gallery when the model changes).
        index: gallery search index: ``"auto"`` (exact up to 20,000 templates, hnswlib
            above), ``"exact"`` or ``"hnsw"``.
        camera_index: default camera for the GUI.
        folder_fps: images a second when the live view plays a folder of images (a video
            file plays at its own frame rate).
        camera_width: requested capture width for the GUI.
        camera_height: requested capture height for the GUI.
        inbox: keep faces the live view could not name in the unknown-faces inbox
            (opt-in: they are biometric data).
        inbox_retention_days: inbox faces older than this are erased.
        record_events: the live view keeps each settled track decision in the gallery's
            event history, as ``watch --record`` does (opt-in; a folder keeps it in its
            database, a PostgreSQL gallery in the shared one; a read-only gallery keeps none).
        event_retention_days: recorded events older than this are deleted.
    """

    gallery: Path | str | None = None
    model: Path | None = None
    detector: str = "full"
    provider: str = "auto"
    precision: str = "int8"
    threads: int = 0
    threshold: float | None = None
    uncertain_band: float | None = None
    verify_threshold: float | None = None
    margin: float | None = None
    min_face_size: float = 0.0
    min_detection_confidence: float = 0.5
    max_detect_side: int = 1920
    max_image_pixels: int = MAX_PIXELS
    top_k: int = 3
    store_thumbnails: bool = True
    index: str = "auto"
    camera_index: int = 0
    folder_fps: float = DEFAULT_FOLDER_FPS
    camera_width: int = 640
    camera_height: int = 480
    inbox: bool = False
    inbox_retention_days: int = 30
    record_events: bool = False
    event_retention_days: int = 30

    def __post_init__(self) -> None:
        if self.provider not in PROVIDERS:
            raise SettingsError(f"provider must be one of {', '.join(PROVIDERS)}, not {self.provider!r}")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.detector not in DETECTORS:
            raise SettingsError(f"detector must be one of {', '.join(DETECTORS)}, not {self.detector!r}")
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise SettingsError(f"{name} must be between {low:g} and {high:g}, not {value:g}")
        if self.index not in ("auto", "exact", "hnsw"):
            raise SettingsError(f"index must be one of auto, exact, hnsw, not {self.index!r}")
        if self.top_k < 1:
            raise SettingsError("top_k must be at least 1")
        if self.threads < 0:
            raise SettingsError("threads must be 0 (automatic) or a positive number of CPU threads")
        if self.max_detect_side < 64:
            raise SettingsError("max_detect_side must be at least 64")
        if self.camera_index < 0:
            raise SettingsError("camera_index must be 0 or more")
        if not 0.0 < self.folder_fps <= 1000.0:
            raise SettingsError("folder_fps must be more than 0 and at most 1000 images a second")
        if not (16 <= self.camera_width <= 8192 and 16 <= self.camera_height <= 8192):
            raise SettingsError("camera_width and camera_height must be between 16 and 8192 pixels")
        if self.inbox_retention_days < 1:
            raise SettingsError("inbox_retention_days must be at least 1 day")
        if not isinstance(self.record_events, bool):
            raise SettingsError("record_events must be true or false")
        if self.event_retention_days < 1:
            raise SettingsError("event_retention_days must be at least 1 day")
        if self.max_image_pixels < 64 * 64:
            raise SettingsError("max_image_pixels must be at least 4096")

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied; ``None`` values leave a field unchanged."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def gallery_dir(self) -> Path:
        """The folder for the gallery's files on this device.

        A folder gallery's own folder (the setting, else the platform default). For a
        PostgreSQL gallery, the folder this device keeps beside it (the unknown-faces inbox):
        under the data folder, named by a digest of the address, so no part of the address
        becomes a folder name.
        """
        address = self.gallery_address()
        if address.folder is not None:
            return address.folder
        return default_data_dir() / "databases" / address.digest()

    def gallery_spec(self) -> Path | str:
        """The gallery to open: a PostgreSQL address as given, else :meth:`gallery_dir`."""
        address = self.gallery_address()
        return address.dsn if address.dsn is not None else self.gallery_dir()

    def gallery_address(self) -> GalleryAddress:
        """The ``gallery`` setting parsed (the platform's default folder when unset)."""
        return GalleryAddress.parse(self.gallery if self.gallery is not None else default_data_dir() / "gallery")


_DSN_SCHEMES = ("postgresql://", "postgres://")
_DSN_KEYS = ("host", "hostaddr", "port", "dbname", "user", "password", "service", "sslmode", "passfile")


@dataclass(frozen=True)
class GalleryAddress:
    """Where a gallery lives: a folder, or a PostgreSQL database. The one place that tells them apart.

    A text is a database address when it starts with ``postgresql://`` or ``postgres://``
    (in any case) or is a libpq ``key=value`` string (``host=... dbname=...``, keys in any
    case); anything else, and any :class:`~pathlib.Path`, is a folder. ``str()`` of an
    address never shows a password (see :func:`redact`).

    Attributes:
        folder: the gallery folder, or ``None`` for a database.
        dsn: the database address as libpq takes it (the scheme in lower case), or ``None``.
    """

    folder: Path | None = None
    dsn: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, spec: str | Path) -> GalleryAddress:
        """Parse a ``gallery`` setting or ``--gallery`` value."""
        if isinstance(spec, Path):
            return cls(folder=spec.expanduser())
        text = str(spec).strip()
        lower = text.lower()
        for scheme in _DSN_SCHEMES:
            if lower.startswith(scheme):
                return cls(dsn=scheme + text[len(scheme):])
        if "=" in text and any(lower.startswith(k + "=") or f" {k}=" in lower for k in _DSN_KEYS):
            return cls(dsn=text)
        return cls(folder=Path(str(spec)).expanduser())

    def spec(self) -> Path | str:
        """What opens it: the folder, or the address text."""
        return self.dsn if self.dsn is not None else self.folder  # type: ignore[return-value]

    def digest(self) -> str:
        """16 hex digits naming this gallery without showing any part of its address."""
        import hashlib

        return hashlib.sha256(str(self).encode("utf-8")).hexdigest()[:16]

    def __str__(self) -> str:
        return redact(self.dsn) if self.dsn is not None else str(self.folder)


def gallery_arg(text: str) -> Path | str:
    """A ``--gallery`` value: a database address stays text, anything else is a folder."""
    return GalleryAddress.parse(text).spec()


def redact(dsn: str) -> str:
    """A database address as it may be shown: ``postgresql://user@host:port/dbname``, never a password."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparsable address is shown as nothing of it
        return "postgresql://(unreadable address)"
    if "service" in parts and "host" not in parts:
        return f"postgresql service {parts['service']}"
    user = f"{parts['user']}@" if parts.get("user") else ""
    host = str(parts.get("host") or parts.get("hostaddr") or "localhost")
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{host}{port}/{parts.get('dbname', '')}"


def check_no_password(dsn: str) -> None:
    """Refuse a database address that is malformed or holds a password.

    Raises:
        SettingsError: with the address shown without its password.
    """
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - psycopg raises ProgrammingError with the text (which may hold the password)
        raise SettingsError(f"the gallery address {redact(dsn)} is not a valid PostgreSQL address; "
                            "write postgresql://user@host:port/dbname or host=... dbname=...") from None
    if parts.get("password"):
        raise SettingsError(
            f"the gallery address {redact(dsn)} contains a password; remove it and put it in ~/.pgpass "
            "(or PGPASSFILE, PGPASSWORD, a service file) instead"
        )


def default_cache_dir() -> Path:
    """Where this device keeps rebuildable data (indexes of shared galleries): ``FACEAPP_CACHE_DIR`` or the platform's."""
    env = os.environ.get("FACEAPP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_data_dir() -> Path:
    env = os.environ.get("FACEAPP_DATA_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def settings_path() -> Path:
    """Where the settings file is read from and written to."""
    env = os.environ.get("FACEAPP_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "settings.toml"


_PATH_FIELDS = {"gallery", "model"}


def _coerce(name: str, value: Any, default: Any) -> Any:
    if name in _PATH_FIELDS:
        if not isinstance(value, str):
            raise SettingsError(f"setting {name} must be a path string")
        if name == "gallery" and value:
            return gallery_arg(value)
        return Path(value).expanduser() if value else None
    if isinstance(default, bool) or name == "store_thumbnails":
        if not isinstance(value, bool):
            raise SettingsError(f"setting {name} must be true or false")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        if not isinstance(value, int) or isinstance(value, bool):
            raise SettingsError(f"setting {name} must be an integer")
        return value
    if default is None or isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise SettingsError(f"setting {name} must be a number")
        return float(value)
    if not isinstance(value, str):
        raise SettingsError(f"setting {name} must be a string")
    return value


def read_saved(path: Path | None = None) -> dict[str, Any]:
    """The saved layer: only the settings present in the file, checked and converted.

    Args:
        path: the settings file (default :func:`settings_path`); a missing file = ``{}``.

    Raises:
        SettingsError: the file is not valid TOML or a value has the wrong type or range.
    """
    values, problems = read_saved_checked(path)
    if problems:
        raise SettingsError(problems[0].message)
    return values


@dataclass(frozen=True)
class SettingProblem:
    """One thing wrong with the settings file.

    Attributes:
        path: the settings file.
        key: the setting whose value is wrong; ``None`` when the whole file cannot be read.
        message: what is wrong, in one line.
    """

    path: Path
    key: str | None
    message: str


def read_saved_checked(path: Path | None = None) -> tuple[dict[str, Any], list[SettingProblem]]:
    """The saved layer without the settings that are wrong, and what is wrong with them.

    Each value is checked on its own (type, then range, by :class:`Settings` itself), so one
    bad value costs only that setting: the rest of the file stays in force. A file that is not
    TOML at all gives no values and one problem with ``key=None``.
    """
    path = path or settings_path()
    if not path.exists():
        return {}, []
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        return {}, [SettingProblem(path, None, f"settings file {path} is unreadable ({exc}); fix or delete it")]
    defaults = Settings()
    known = {f.name for f in fields(Settings)}
    values: dict[str, Any] = {}
    problems: list[SettingProblem] = []
    for key, value in data.items():
        if key not in known:
            log.warning("ignoring unknown setting %r in %s", key, path)
            continue
        try:
            values[key] = _coerce(key, value, getattr(defaults, key))
            Settings(**{key: values[key]})
        except SettingsError as exc:
            values.pop(key, None)
            problems.append(SettingProblem(path, key, f"{path}: {exc}"))
    return values, problems


def forget_saved(key: str | None, path: Path | None = None) -> Path | None:
    """Undo a problem of the settings file: drop ``key`` from it, or (``key=None``) move the
    whole file aside to ``settings.toml.bad`` so that the defaults apply.

    Returns:
        Where an unreadable file was moved, or ``None``.
    """
    path = path or settings_path()
    if not path.parent.is_dir():
        return None
    with private.update_lock(path):  # another process may be saving its own change
        if key is None:
            if not path.exists():
                return None
            aside = path.with_name(path.name + ".bad")
            os.replace(path, aside)
            return aside
        values, _ = read_saved_checked(path)
        values.pop(key, None)
        _write(values, path)
    return None


def load_settings(path: Path | None = None) -> Settings:
    """Defaults overlaid with the saved settings of ``path`` (default :func:`settings_path`).

    Raises:
        SettingsError: the file is not valid TOML or a value has the wrong type.
    """
    return Settings(**read_saved(path))


def _write(values: dict[str, Any], path: Path) -> None:
    import tomli_w

    out = {k: str(v) if isinstance(v, Path) else v for k, v in values.items() if v is not None}
    private.write_atomically(path, tomli_w.dumps(out), mode=None)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write the settings that differ from the defaults to ``path``, atomically."""
    path = path or settings_path()
    defaults = Settings()
    path.parent.mkdir(parents=True, exist_ok=True)
    with private.update_lock(path):
        _write({f.name: getattr(settings, f.name) for f in fields(Settings)
                if getattr(settings, f.name) != getattr(defaults, f.name)}, path)
    return path


def save_changes(changes: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """Merge ``changes`` into the saved settings file and nothing else, atomically.

    A ``None`` value removes the key, so the default (e.g. the model's recommended
    threshold) applies again. Keys not in ``changes`` keep what the file says.

    Args:
        changes: setting name -> new value.
        path: the settings file (default :func:`settings_path`).

    Returns:
        The saved layer after the change.

    Raises:
        SettingsError: an unknown name, or the result is not valid; the file is untouched.
    """
    path = path or settings_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with private.update_lock(path):  # another process may be saving its own change
        saved, problems = read_saved_checked(path)
        for problem in problems:  # not in force: the change replaces the file without them
            log.warning("dropping from the settings file: %s", problem.message)
        saved.update(changes)
        saved = {k: v for k, v in saved.items() if v is not None}
        _validated(saved)  # before anything is written
        _write(saved, path)
    return saved


def _validated(values: dict[str, Any]) -> Settings:
    unknown = sorted(set(values) - {f.name for f in fields(Settings)})
    if unknown:
        raise SettingsError(f"unknown setting {unknown[0]!r}")
    return Settings(**{k: v for k, v in values.items() if v is not None})


@dataclass
class SettingsLayers:
    """Defaults, then saved settings, then this run's flags.

    Args:
        path: the settings file (``None`` = :func:`settings_path`).
        flags: this run's command-line values (``None`` values are ignored); never saved.

        lenient: keep going when the saved file has problems: the wrong settings fall back to
            their defaults and are listed in ``problems`` (the GUI shows them with a fix).

    Raises:
        SettingsError: a flag is invalid, or (unless ``lenient``) the saved file is.
    """

    path: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    saved: dict[str, Any] = field(default_factory=dict)
    lenient: bool = False
    problems: list[SettingProblem] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.flags = {k: v for k, v in self.flags.items() if v is not None}
        self.saved, self.problems = read_saved_checked(self.path)
        if self.problems and not self.lenient:
            raise SettingsError(self.problems[0].message)
        self.effective  # noqa: B018 - a bad flag fails now, not later

    def forget(self, problem: SettingProblem) -> Path | None:
        """Resolve ``problem`` by going back to the default: see :func:`forget_saved`."""
        aside = forget_saved(problem.key, self.path)
        self.saved, self.problems = read_saved_checked(self.path)
        return aside

    @property
    def effective(self) -> Settings:
        """The settings in force: defaults < saved < flags."""
        return Settings(**{**self.saved, **self.flags})

    def change(self, **changes: Any) -> Settings:
        """Apply what the user changed (``None`` = back to the default) and save only that.

        A change the user makes also replaces a flag of the same name for the rest of
        this run, so what they see is what is in force.

        Raises:
            SettingsError: the new value is invalid; nothing is saved or changed.
        """
        _validated({**self.saved, **self.flags, **changes})  # before anything is saved
        self.saved = save_changes(changes, self.path)
        for k in changes:
            self.flags.pop(k, None)
        return self.effective
