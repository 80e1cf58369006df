"""``report.json``: what was read, which methods ran, what was measured, how long it took."""

from __future__ import annotations

import json
import platform
from importlib import metadata

from LungTumorReconLib import __version__
from LungTumorReconLib.pipeline.run import PipelineResult
from LungTumorReconLib.resources import resource_path

SCHEMA_PATH = resource_path("Schemas", "report.schema.json")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"lungtumorrecon": __version__, "python": platform.python_version()}
    for dist in ("numpy", "scipy", "SimpleITK", "pydicom", "scikit-image", "vtk", "slicer-core", "torch", "monai"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def build_report(
    result: PipelineResult,
    model: dict | None,
    timings_s: dict[str, float],
    seeds_path: str | None = None,
) -> dict:
    g = result.ct.geometry
    return {
        "input": {
            "path": result.ct.path,
            "size": list(g.size),
            "spacing_mm": list(g.spacing),
            "origin_lps": list(g.origin),
            "direction": list(g.direction),
            "series_uid": result.ct.series_uid,
            "warnings": list(result.warnings),
            "seeds": seeds_path,
        },
        "methods": {**result.methods, "device": result.device},
        "segments": {
            name: {"volume_ml": float(mask.sum()) * g.voxel_volume_ml, "voxels": int(mask.sum())}
            for name, mask in result.segments.items()
        },
        "tumors": [t.as_dict() for t in result.tumors],
        "candidates": list(result.candidates),
        "model": model,
        "timings_s": {k: round(float(v), 4) for k, v in timings_s.items()},
        "versions": package_versions(),
    }


def load_schema() -> dict:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
