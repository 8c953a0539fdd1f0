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
