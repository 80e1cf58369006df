"""The DICOM slices a CT was read from, in the order of the CT array's k axis.

A DICOM SEG or SR must reference the very instances the CT came from. ``read_ct`` sorts
the slices along the slice normal (and may resample an irregular series), so the slices are
sorted the same way here, and each is matched to the nearest k of the CT's grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.ct import CTVolume


@dataclass
class SourceSeries:
    """The CT's slices (headers only, no pixel data), sorted along the slice normal.

    ``grid_k[s]`` is the k of the CT's grid that slice ``s`` lies on (equal to ``s`` unless
    ``read_ct`` resampled the series).
    """

    datasets: list
    grid_k: np.ndarray

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    def frames(self, mask: np.ndarray) -> np.ndarray:
        """A (k, j, i) mask on the CT's grid as one frame per source slice."""
        return mask[self.grid_k]


def is_dicom_ct(ct: CTVolume) -> bool:
    """True when the CT was read from a DICOM series (only then is DICOM written)."""
    return bool(ct.series_uid) and bool(ct.path)


def source_series(ct: CTVolume, files: list[str | Path] | None = None) -> SourceSeries:
    """Read the headers of ``ct``'s series again, from the folder (or file) it was read from,
    or from ``files`` (e.g. a DICOM database's files of the series).

    Raises
    ------
    InputError
        If the CT did not come from DICOM, or its slices are no longer where it was read from.
    """
    import pydicom

    if not ct.series_uid or not (ct.path or files):
        raise InputError("the CT was not read from DICOM: no DICOM series to reference", ct.path or None)
    root = Path(ct.path)
    if files is not None:
        files = [Path(f) for f in files]
    else:
        files = [root] if root.is_file() else [p for p in sorted(root.rglob("*")) if p.is_file()]
    datasets = []
    for f in files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM: skipped, as read_ct does
            continue
        if str(getattr(ds, "SeriesInstanceUID", "")) == ct.series_uid and "ImagePositionPatient" in ds:
            datasets.append(ds)
    if len(datasets) < 2:
        raise InputError(f"the CT's DICOM series {ct.series_uid} is no longer there", root)
    normal = ct.geometry.direction_matrix[:, 2]
    heights = np.array([np.asarray(ds.ImagePositionPatient, float) @ normal for ds in datasets])
    order = np.argsort(heights)
    datasets = [datasets[i] for i in order]
    origin_height = np.asarray(ct.geometry.origin, float) @ normal
    grid_k = np.rint((heights[order] - origin_height) / ct.geometry.spacing[2]).astype(int)
    grid_k = np.clip(grid_k, 0, ct.geometry.size[2] - 1)
    return SourceSeries(datasets=datasets, grid_k=grid_k)
