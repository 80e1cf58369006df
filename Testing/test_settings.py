"""The user's settings file, shared by every front end: where it is, what a damaged one reads as,
and that a bad PACS destination is refused and leaves the file as it was."""

from __future__ import annotations

import json

import pytest

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.settings import CONFIG_ENV, Settings, load_settings, save_settings, settings_path


@pytest.fixture
def config(tmp_path, monkeypatch):
    path = tmp_path / "conf" / "settings.json"
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return path


def test_where_the_file_is(tmp_path, monkeypatch):
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert settings_path() == tmp_path / "xdg" / "lungtumorrecon" / "settings.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert settings_path() == tmp_path / "home" / ".config" / "lungtumorrecon" / "settings.json"
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "mine.json"))
    assert settings_path() == tmp_path / "mine.json"


def test_saved_settings_read_back_and_other_keys_are_kept(config):
    assert load_settings() == Settings()  # no file yet
    config.parent.mkdir()
    config.write_text(json.dumps({"later_setting": 3}))
    saved = save_settings(Settings(pacs_destination=" ORTHANC@127.0.0.1:4242 ", export_folder="/data/dicom"))
    assert saved == config and not [p for p in config.parent.iterdir() if p != config]  # no partial file left
    assert load_settings() == Settings("ORTHANC@127.0.0.1:4242", "/data/dicom")
    assert json.loads(config.read_text())["later_setting"] == 3
    save_settings(Settings(pacs_destination="https://pacs.example.org/dicom-web/"))
    assert load_settings().pacs_destination == "https://pacs.example.org/dicom-web/"
    save_settings(Settings())  # no destination is allowed
    assert load_settings() == Settings()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"pacs_destination": 42, "export_folder": "/x"}', ""])
def test_a_damaged_file_reads_as_the_defaults(config, text):
    config.parent.mkdir()
    config.write_text(text)
    expected = Settings(export_folder="/x") if "export_folder" in text else Settings()
    assert load_settings() == expected


def test_a_bad_destination_is_refused_and_the_file_is_unchanged(config):
    save_settings(Settings(pacs_destination="PACS@host:104"))
    before = config.read_bytes()
    with pytest.raises(InputError, match="is not a PACS address"):
        save_settings(Settings(pacs_destination="pacs.example.org"))
    with pytest.raises(InputError, match="a port is 1 to 65535"):
        save_settings(Settings(pacs_destination="PACS@host:70000"))
    assert config.read_bytes() == before


def test_an_unwritable_place_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "a file"
    blocker.write_text("")
    monkeypatch.setenv(CONFIG_ENV, str(blocker / "settings.json"))  # its folder is a file
    with pytest.raises(InputError, match="cannot save the settings") as refused:
        save_settings(Settings(export_folder="/x"))
    assert refused.value.path == str(blocker / "settings.json")
    assert load_settings() == Settings()
