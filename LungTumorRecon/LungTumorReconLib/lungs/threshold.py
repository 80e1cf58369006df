"""Threshold baseline for the lungs: the simple method the snake is measured against.

1. air inside the body, airways removed (:func:`lung_air.lung_air`);
2. the largest air components are the lungs; a single component (lungs touching at the
   anterior junction, or joined through the bronchi) is split by a watershed of its
   distance map seeded from the two cores left by erosion;
3. each lung is closed and its holes filled per axial slice, so that vessels and enclosed
   tumours count as lung;
4. right and left are by LPS x: patient right is −x;
5. the indentations a tumour against the pleura makes are bridged (:mod:`lung_border`).
"""

from __future__ import annotations

import numpy as np

from LungTumorReconLib.coordinates import VolumeGeometry, check_volume
from LungTumorReconLib.lungs.air import (
    LungAirParameters,
    close_and_fill,
    largest_components,
    lung_air,
    name_by_side,
    split_in_two,
)
from LungTumorReconLib.lungs.border import bridge_pleural_indentations

ThresholdLungParameters = LungAirParameters


def segment_lungs_threshold(
    hu: np.ndarray, geometry: VolumeGeometry, params: LungAirParameters | None = None
) -> dict[str, np.ndarray]:
    """The lungs by thresholding air (the baseline; steps 1-5 of the module's docstring).

    Parameters
    ----------
    hu : ndarray
        The CT in Hounsfield units, (k, j, i).
    geometry : VolumeGeometry
        The CT's grid; its shape (k, j, i) is ``hu.shape``.
    params : LungAirParameters, optional
        ``LungAirParameters()`` by default.

    Returns
    -------
    dict of str to ndarray
        ``{"right lung": mask, "left lung": mask}`` (bool, (k, j, i)); absent lungs are omitted.

    Raises
    ------
    ValueError
        If ``hu`` is not 3D, its shape is not the geometry's, or the spacing is not positive.

    Examples
    --------
    >>> hu = np.full((8, 32, 48), -1000.0)  # air around the body
    >>> hu[:, 2:30, 2:46] = 40.0  # soft tissue
    >>> hu[1:7, 8:24, 6:20] = hu[1:7, 8:24, 28:42] = -850.0  # two lungs of 6 x 16 x 14 voxels
    >>> g = VolumeGeometry(size=(48, 32, 8), spacing=(5.0, 5.0, 5.0), origin=(-120.0, -80.0, 0.0))
    >>> lungs = segment_lungs_threshold(hu, g)
    >>> {name: int(mask.sum()) for name, mask in lungs.items()}
    {'right lung': 1344, 'left lung': 1344}
    """
    check_volume(hu, geometry)
    params = params or LungAirParameters()
    spacing_kji = np.asarray(geometry.spacing[::-1], dtype=float)
    lungs = largest_components(lung_air(hu, geometry, params), geometry, params)
    if not lungs:
        return {}
    if len(lungs) == 1:
        lungs = split_in_two(lungs[0], spacing_kji, geometry, params) or lungs
    filled = {}
    taken = np.zeros(hu.shape, dtype=bool)
    for name, mask in name_by_side(lungs, geometry).items():
        mask = close_and_fill(mask, spacing_kji, params.closing_radius_mm, params.max_hole_mm2) & ~taken
        taken |= mask
        filled[name] = mask
    return bridge_pleural_indentations(filled, hu, geometry) if params.bridge_pleura else filled
