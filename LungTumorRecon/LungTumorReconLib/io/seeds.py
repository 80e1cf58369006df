"""Seeds from a Slicer markups file (``.mrk.json``): what each control point is, in LPS."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry, ras_to_lps
from LungTumorReconLib.errors import InputError

TUMOR = "tumor"
RIGHT_LUNG = "right lung"
LEFT_LUNG = "left lung"
SEED_LABELS = (TUMOR, RIGHT_LUNG, LEFT_LUNG)
_ALIASES = {"tumour": TUMOR, "right_lung": RIGHT_LUNG, "left_lung": LEFT_LUNG}


@dataclass(frozen=True)
class Seed:
    label: str  # one of SEED_LABELS
    lps: tuple[float, float, float]


def normalise_label(label: str) -> str | None:
    key = " ".join(str(label).strip().lower().split())
    key = _ALIASES.get(key, key)
    return key if key in SEED_LABELS else None


def read_seeds(path: str | Path) -> list[Seed]:
    """Read every control point of every markup in a ``.mrk.json`` file.

    Positions are converted to LPS from the file's ``coordinateSystem`` (LPS when absent,
    as Slicer's reader assumes). Labels must be ``tumor``, ``right lung`` or ``left lung``.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("no such seeds file", path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"malformed seeds file: not JSON ({exc.__class__.__name__})", path) from None
    markups = doc.get("markups") if isinstance(doc, dict) else None
    if not isinstance(markups, list) or not markups:
        raise InputError("malformed seeds file: no 'markups' list (expected a Slicer .mrk.json)", path)
    seeds: list[Seed] = []
    for m_index, markup in enumerate(markups):
        if not isinstance(markup, dict):
            raise InputError(f"malformed seeds file: markups[{m_index}] is not an object", path)
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise InputError(f"malformed seeds file: unknown coordinateSystem {system!r}", path)
        points = markup.get("controlPoints", [])
        if not isinstance(points, list):
            raise InputError(f"malformed seeds file: markups[{m_index}].controlPoints is not a list", path)
        for p_index, point in enumerate(points):
            where = f"markups[{m_index}].controlPoints[{p_index}]"
            if not isinstance(point, dict):
                raise InputError(f"malformed seeds file: {where} is not an object", path)
            label = normalise_label(point.get("label", ""))
            if label is None:
                raise InputError(
                    f"{where} has label {point.get('label')!r}; use one of: " + ", ".join(SEED_LABELS), path
                )
            position = point.get("position")
            try:
                xyz = np.asarray(position, dtype=float)
            except (TypeError, ValueError):
                xyz = np.zeros(0)
            if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
                raise InputError(f"malformed seeds file: {where}.position must be three numbers", path)
            if system == "RAS":
                xyz = ras_to_lps(xyz)
            seeds.append(Seed(label=label, lps=(float(xyz[0]), float(xyz[1]), float(xyz[2]))))
    return seeds


def check_seeds_in_volume(seeds: list[Seed], geometry: VolumeGeometry, path: str | Path) -> None:
    for seed in seeds:
        if not geometry.contains_lps(np.asarray(seed.lps)):
            x, y, z = seed.lps
            raise InputError(f"seed {seed.label!r} at LPS ({x:.1f}, {y:.1f}, {z:.1f}) mm lies outside the CT", path)


def seeds_to_markups_json(seeds: list[Seed], name: str = "Seeds") -> dict:
    """A minimal Slicer markups document (LPS) holding the seeds, for tests and scripts."""
    return {
        "@schema": "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#",
        "markups": [
            {
                "type": "Fiducial",
                "name": name,
                "coordinateSystem": "LPS",
                "controlPoints": [
                    {"id": str(i + 1), "label": s.label, "position": list(s.lps)} for i, s in enumerate(seeds)
                ],
            }
        ],
    }
