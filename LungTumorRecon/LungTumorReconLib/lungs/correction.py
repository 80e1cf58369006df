"""A user's correction of one lung on one axial slice, read from a file and applied.

The correction is either a Slicer markups closed curve (``.mrk.json``; its name, or its
control points' label, says ``right lung`` or ``left lung``) drawn on one axial slice, or a
label image (any readable image, a ``.seg.nrrd`` included) whose voxels lie on one axial
slice. :func:`apply_lung_correction` re-propagates that lung from the corrected slice with
:func:`lungs_snake.repropagate_lung`; the other lung stays exactly as it was.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry, check_volume, ras_to_lps
from LungTumorReconLib.errors import InputError
from LungTumorReconLib.io.seeds import normalise_label
from LungTumorReconLib.io.segmentation import read_segments
from LungTumorReconLib.lungs.snake import LUNGS, SnakeLungParameters, fill_polygon, repropagate_lung


@dataclass
class LungCorrection:
    lung: str  # "right lung" or "left lung"
    k: int  # the axial slice (array index)
    mask: np.ndarray  # (j, i) bool: the lung on that slice


def read_lung_correction(
    path: str | Path, geometry: VolumeGeometry, lungs: dict[str, np.ndarray] | None = None
) -> LungCorrection:
    path = Path(path)
    if not path.is_file():
        raise InputError("no such correction file", path)
    if path.name.lower().endswith(".json"):
        return _from_markups(path, geometry)
    return _from_label_image(path, geometry, lungs or {})


def _from_markups(path: Path, geometry: VolumeGeometry) -> LungCorrection:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        markup = next(m for m in doc["markups"] if len(m.get("controlPoints", [])) >= 3)
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, StopIteration):
        raise InputError("malformed correction: expected a Slicer markups curve with 3 or more points", path) from None
    points = markup["controlPoints"]
    lung = normalise_label(markup.get("name", "")) or normalise_label(points[0].get("label", ""))
    if lung not in LUNGS:
        raise InputError("the curve's name or label must be 'right lung' or 'left lung'", path)
    try:
        xyz = np.array([p["position"] for p in points], dtype=float)
    except (KeyError, TypeError, ValueError):
        raise InputError("malformed correction: every control point needs a position", path) from None
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise InputError("malformed correction: positions must be three numbers", path)
    if str(markup.get("coordinateSystem", "LPS")).upper() == "RAS":
        xyz = ras_to_lps(xyz)
    kji = geometry.lps_to_kji(xyz)
    k = int(np.rint(kji[:, 0].mean()))
    if np.abs(kji[:, 0] - k).max() > 0.5:
        raise InputError("the curve is not drawn on one axial slice", path)
    if not 0 <= k < geometry.shape_kji[0]:
        raise InputError("the curve lies outside the CT", path)
    mask = fill_polygon(kji[:, 1:], geometry.shape_kji[1:])
    if not mask.any():
        raise InputError("the curve encloses no voxel of the CT", path)
    return LungCorrection(lung=lung, k=k, mask=mask)


def _from_label_image(path: Path, geometry: VolumeGeometry, lungs: dict[str, np.ndarray]) -> LungCorrection:
    segments, _ = read_segments(path, geometry)
    named = {name: m for name, m in segments.items() if name in LUNGS and m.any()}
    if len(named) > 1:
        raise InputError("the correction holds both lungs; correct one lung at a time", path)
    if named:
        lung, volume = next(iter(named.items()))
    else:
        volume = np.zeros(geometry.shape_kji, dtype=bool)
        for m in segments.values():
            volume |= m
        if not volume.any():
            raise InputError("the correction image is empty on the CT grid", path)
        overlaps = {name: int((volume & m).sum()) for name, m in lungs.items() if name in LUNGS}
        if overlaps and max(overlaps.values()) > 0:
            lung = max(overlaps, key=overlaps.get)
        else:  # no lung to compare with: the side of the scanner's isocentre
            x = geometry.kji_to_lps(np.argwhere(volume).mean(axis=0))[0]
            lung = LUNGS[0] if x < 0 else LUNGS[1]
    ks = np.flatnonzero(volume.any(axis=(1, 2)))
    if len(ks) != 1:
        raise InputError(f"the correction must lie on one axial slice (it covers {len(ks)})", path)
    return LungCorrection(lung=lung, k=int(ks[0]), mask=volume[ks[0]])


def apply_lung_correction(
    hu: np.ndarray,
    geometry: VolumeGeometry,
    lungs: dict[str, np.ndarray],
    correction: LungCorrection,
    params: SnakeLungParameters | None = None,
) -> dict[str, np.ndarray]:
    """Lungs with ``correction.lung`` re-propagated from the corrected slice; the other untouched.

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    lungs : dict of str to ndarray
        The current lungs, bool masks of ``hu``'s shape (either may be absent).
    correction : LungCorrection
        The corrected lung, its slice and its mask there (:func:`read_lung_correction`).
    params : SnakeLungParameters, optional
        ``SnakeLungParameters()`` by default.

    Returns
    -------
    dict of str to ndarray
        ``lungs`` with the corrected lung re-propagated (:func:`lungs.snake.repropagate_lung`).

    Raises
    ------
    ValueError
        If ``hu`` is not on the geometry's grid, a lung mask is not of ``hu``'s shape, or the
        correction's slice lies outside the volume or its mask is not of one slice's shape.
    InputError
        If the correction names no lung, or its mask is empty.

    Examples
    --------
    >>> from LungTumorReconLib.lungs.snake import segment_lungs_snake
    >>> hu = np.full((8, 32, 48), -1000.0)
    >>> hu[:, 2:30, 2:46] = 40.0
    >>> hu[1:7, 8:24, 6:20] = hu[1:7, 8:24, 28:42] = -850.0
    >>> g = VolumeGeometry(size=(48, 32, 8), spacing=(5.0, 5.0, 5.0), origin=(-120.0, -80.0, 0.0))
    >>> lungs = segment_lungs_snake(hu, g)
    >>> mask = lungs["right lung"][3].copy()
    >>> mask[:, :14] = False
    >>> out = apply_lung_correction(hu, g, lungs, LungCorrection("right lung", 3, mask))
    >>> int(out["right lung"][3].sum()), int(out["left lung"].sum())
    (96, 1344)
    """
    check_volume(hu, geometry)  # the correction's slice and mask are checked by repropagate_lung
    return repropagate_lung(hu, geometry, lungs, correction.lung, correction.k, correction.mask, params)
