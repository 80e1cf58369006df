"""The user's settings, one file for every front end: the PACS to send to and the DICOM export folder.

JSON in ``$LUNGTUMORRECON_CONFIG``, else ``$XDG_CONFIG_HOME/lungtumorrecon/settings.json``
(``~/.config/lungtumorrecon/settings.json`` by default). Written atomically (a temporary file
moved into place); a missing or damaged file reads as the defaults.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from LungTumorReconLib.errors import InputError

CONFIG_ENV = "LUNGTUMORRECON_CONFIG"


@dataclass
class Settings:
    """``pacs_destination``: ``AET@HOST:PORT`` or a DICOMweb URL ("" for none);
    ``export_folder``: where "Export DICOM" writes by default ("" for the front end's own)."""

    pacs_destination: str = ""
    export_folder: str = ""


def settings_path() -> Path:
    """The settings file: ``$LUNGTUMORRECON_CONFIG``, else under ``$XDG_CONFIG_HOME`` (or ``~/.config``)."""
    explicit = os.environ.get(CONFIG_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME", "").strip() or Path.home() / ".config"
    return Path(base).expanduser() / "lungtumorrecon" / "settings.json"


def _read() -> dict:
    try:
        data = json.loads(settings_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet, unreadable or not JSON: the defaults
        return {}
    return data if isinstance(data, dict) else {}


def load_settings() -> Settings:
    """The saved settings; the defaults for a missing, damaged or unreadable file (never an error)."""
    data = _read()
    return Settings(**{f.name: data[f.name] for f in fields(Settings) if isinstance(data.get(f.name), str)})


def save_settings(settings: Settings) -> Path:
    """Save ``settings`` (other keys in the file are kept) and return the file.

    Raises
    ------
    InputError
        The PACS destination is neither ``AET@HOST:PORT`` nor a DICOMweb URL, or the file
        cannot be written; the file is then left as it was.
    """
    settings = Settings(pacs_destination=str(settings.pacs_destination).strip(),
                        export_folder=str(settings.export_folder).strip())
    if settings.pacs_destination:
        from LungTumorReconLib.dicom.pacs import parse_address

        parse_address(settings.pacs_destination)
    path = settings_path()
    data = {**_read(), **asdict(settings)}
    partial = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(partial, path)
        partial = None
    except OSError as exc:
        raise InputError(f"cannot save the settings ({exc.strerror or type(exc).__name__})", path) from None
    finally:
        if partial is not None:
            Path(partial).unlink(missing_ok=True)
    return path
