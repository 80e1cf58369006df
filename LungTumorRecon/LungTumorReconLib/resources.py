"""Where the module's Resources/ folder is: beside the library in Slicer and in a source
checkout, inside the package in an installed wheel."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    for candidate in (_HERE.parent / "Resources", _HERE / "Resources"):
        if (candidate / "Schemas").is_dir():
            return candidate
    raise FileNotFoundError("LungTumorRecon Resources folder not found")


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
