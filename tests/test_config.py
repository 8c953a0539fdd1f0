from pathlib import Path

import pytest

from faceapp.config import Settings, load_settings, save_settings
from faceapp.errors import SettingsError


def test_round_trip(tmp_path):
    path = tmp_path / "s.toml"
    s = Settings(threshold=0.55, provider="cpu", gallery=Path("/tmp/g"), top_k=5, store_thumbnails=False)
    save_settings(s, path)
    assert load_settings(path) == s


def test_missing_file_gives_defaults(tmp_path):
    assert load_settings(tmp_path / "none.toml") == Settings()


@pytest.mark.parametrize("text", ['threshold = "high"', "provider = 'tpu'", "threshold = 3.0", "top_k = 0", "[[[",
                                  "threads = -1"])
def test_bad_values_raise(tmp_path, text):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(SettingsError):
        load_settings(path)


def test_unknown_keys_are_ignored(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text("future_option = 1\nthreshold = 0.6\n")
    assert load_settings(path).threshold == 0.6


def test_replace_ignores_none():
    s = Settings(threshold=0.5)
    assert s.replace(threshold=None, provider="cpu") == Settings(threshold=0.5, provider="cpu")


def test_layers_flags_override_saved_and_are_never_saved(tmp_path):
    from faceapp.config import SettingsLayers

    path = tmp_path / "s.toml"
    save_settings(Settings(gallery=Path("/saved/gallery"), camera_index=2), path)
    layers = SettingsLayers(path, flags={"gallery": Path("/tmp/one-off"), "provider": "cpu", "model": None})
    assert layers.effective.gallery == Path("/tmp/one-off") and layers.effective.provider == "cpu"
    assert layers.effective.camera_index == 2
    layers.change(threshold=0.6)  # the user moves the slider
    saved = load_settings(path)
    assert saved.threshold == 0.6 and saved.uncertain_band is None  # only what was touched
    assert saved.gallery == Path("/saved/gallery") and saved.provider == "auto"  # no one-off flag saved
    assert layers.effective.gallery == Path("/tmp/one-off")


def test_layers_reset_goes_back_to_the_model_default(tmp_path):
    from faceapp.config import SettingsLayers

    path = tmp_path / "s.toml"
    layers = SettingsLayers(path)
    layers.change(threshold=0.6, uncertain_band=0.1)
    assert layers.change(threshold=None, uncertain_band=None).threshold is None
    assert "threshold" not in path.read_text()


def test_a_gui_change_replaces_the_flag_for_this_run(tmp_path):
    from faceapp.config import SettingsLayers

    layers = SettingsLayers(tmp_path / "s.toml", flags={"gallery": Path("/tmp/flag")})
    assert layers.change(gallery=Path("/chosen")).gallery == Path("/chosen")
    assert load_settings(tmp_path / "s.toml").gallery == Path("/chosen")


@pytest.mark.parametrize("change", [{"threshold": 3.0}, {"camera_width": 0}, {"inbox_retention_days": 0},
                                    {"provider": "tpu"}, {"nonsense": 1}])
def test_invalid_changes_are_refused_before_saving(tmp_path, change):
    from faceapp.config import SettingsLayers

    path = tmp_path / "s.toml"
    save_settings(Settings(threshold=0.5), path)
    before = path.read_text()
    layers = SettingsLayers(path)
    with pytest.raises(SettingsError):
        layers.change(**change)
    assert path.read_text() == before and layers.effective.threshold == 0.5


def test_a_bad_value_costs_only_that_setting(tmp_path):
    from faceapp.config import read_saved_checked

    path = tmp_path / "s.toml"
    path.write_text('threshold = 1.7\ncamera_index = 2\nuncertain_band = "high"\n')
    values, problems = read_saved_checked(path)
    assert values == {"camera_index": 2}
    assert [p.key for p in problems] == ["threshold", "uncertain_band"]
    assert "threshold must be between 0 and 1, not 1.7" in problems[0].message


def test_lenient_layers_start_with_defaults_for_what_is_wrong_and_forget_fixes_the_file(tmp_path):
    from faceapp.config import SettingsLayers

    path = tmp_path / "s.toml"
    path.write_text("threshold = 1.7\ncamera_index = 2\n")
    with pytest.raises(SettingsError):
        SettingsLayers(path)
    layers = SettingsLayers(path, lenient=True)
    assert layers.effective.threshold is None and layers.effective.camera_index == 2
    assert layers.forget(layers.problems[0]) is None
    assert layers.problems == [] and load_settings(path) == Settings(camera_index=2)


def test_an_unreadable_file_is_moved_aside(tmp_path):
    from faceapp.config import SettingsLayers

    path = tmp_path / "s.toml"
    path.write_text("[[[")
    layers = SettingsLayers(path, lenient=True)
    assert [p.key for p in layers.problems] == [None] and layers.effective == Settings()
    aside = layers.forget(layers.problems[0])
    assert aside == tmp_path / "s.toml.bad" and aside.read_text() == "[[[" and not path.exists()
    assert layers.problems == []


@pytest.mark.parametrize("name", ["threshold", "uncertain_band", "min_detection_confidence", "min_face_size"])
def test_one_range_for_saving_and_loading(tmp_path, name):
    """A value outside the setting's range is refused when saved and when read back."""
    from faceapp.config import LIMITS, SettingsLayers

    low, high = LIMITS[name]
    layers = SettingsLayers(tmp_path / "s.toml")
    with pytest.raises(SettingsError):
        layers.change(**{name: high + 0.1})
    assert layers.change(**{name: high}) == Settings(**{name: high})
    (tmp_path / "s.toml").write_text(f"{name} = {high + 0.1}\n")
    with pytest.raises(SettingsError):
        load_settings(tmp_path / "s.toml")
